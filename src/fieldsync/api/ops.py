"""Operations endpoints: liveness, readiness (503 naming the failing dependency), metrics."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST

from fieldsync.api.deps import pool_exhausted, runtime_of
from fieldsync.services import duplicates, feed, health, media

CHECK_TIMEOUT_S = 3.0  # per readiness check: a load balancer polls every few seconds


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


class OpsController(Controller):
    tags = ["operations"]
    include_in_schema = True

    @get("/healthz", summary="The process is alive")
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get(
        "/readyz",
        summary="Database and media store are reachable (503 names the failing part)",
        responses={503: ResponseSpec(data_container=Readiness, description="A dependency is unreachable", generate_examples=False)},
    )
    async def readyz(self, state: State) -> Response[Readiness]:
        runtime = runtime_of(state)
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await health.ping_database(runtime.pool)
            checks["database"] = "ok"
        except TimeoutError:
            checks["database"] = (
                f"busy: all {runtime.pool.get_max_size()} pooled connections in use" if pool_exhausted(runtime.pool)
                else "unreachable: TimeoutError"
            )
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure as a check result
            checks["database"] = f"unreachable: {exc.__class__.__name__}"
        if runtime.media is not None:
            try:
                async with asyncio.timeout(CHECK_TIMEOUT_S):
                    await runtime.media.ping()
                checks["media_store"] = "ok"
            except Exception as exc:  # noqa: BLE001
                checks["media_store"] = f"unreachable: {exc.__class__.__name__}"
        # A busy pool is still ready: taking every busy replica out of a load balancer at once
        # would turn a load spike into an outage.
        ready = all(value == "ok" or value.startswith("busy") for value in checks.values())
        return Response(
            Readiness(status="ok" if ready else "unavailable", checks=checks), status_code=200 if ready else 503
        )

    @get("/metrics", summary="Prometheus metrics", media_type=MediaType.TEXT)
    async def metrics(self, state: State) -> Response[bytes]:
        await _refresh_job_gauges(state)
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


JOB_KINDS = (media.DERIVATIVE_JOB, duplicates.DUPLICATES_JOB, feed.RESTAMP_JOB, media.FINGERPRINT_JOB)


async def _refresh_job_gauges(state: State) -> None:
    """Read the job backlog for the scrape; an unreachable or busy database keeps the last values
    (the request metrics still answer)."""
    runtime = runtime_of(state)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            backlog = await health.job_backlog(runtime.pool, now=runtime.clock.now())
    except Exception:  # noqa: BLE001 - metrics must not fail because the database does
        return
    for kind in sorted(set(JOB_KINDS) | set(backlog)):
        queued, waited = backlog.get(kind, (0, 0.0))
        state.metrics.jobs_pending.labels(kind=kind).set(queued)
        state.metrics.jobs_oldest_due_s.labels(kind=kind).set(waited)
