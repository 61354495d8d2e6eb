"""Operations endpoints: liveness, readiness (503 naming the failing dependency), metrics."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fieldsync.api.deps import runtime_of


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
            async with asyncio.timeout(3):
                async with runtime.pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure as a check result
            checks["database"] = f"unreachable: {exc.__class__.__name__}"
        if runtime.media is not None:
            try:
                async with asyncio.timeout(3):
                    await runtime.media.ping()
                checks["media_store"] = "ok"
            except Exception as exc:  # noqa: BLE001
                checks["media_store"] = f"unreachable: {exc.__class__.__name__}"
        ready = all(value == "ok" for value in checks.values())
        return Response(
            Readiness(status="ok" if ready else "unavailable", checks=checks), status_code=200 if ready else 503
        )

    @get("/metrics", summary="Prometheus metrics", media_type=MediaType.TEXT)
    async def metrics(self, state: State) -> Response[bytes]:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
