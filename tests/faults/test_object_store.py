"""SPEC §6: the object store down (the S3 server stopped) and hanging (it accepts connections and
never answers, through the fault proxy).

What a device sees: photo uploads 503 ``dependency.unavailable`` (with ``Retry-After``), fast
when the store is down and within ``FIELDSYNC_STORE_TIMEOUT_S`` when it hangs; report PUTs still
201, naming the photo in ``missing_media``; ``/healthz`` and report PUTs stay fast throughout.
After: uploads succeed again, the reports' ``missing_media`` empties, derivative jobs drain, and
the history checker is clean. Budget: 30 s for both tests.

How they were seen to fail: without the deadline on store calls (the storage package as it was
before ``FIELDSYNC_STORE_TIMEOUT_S``), the hang test's uploads got no answer within the client's
30 s (urllib3 waited 60 s per read, and retried); the health and report probes stayed fast,
because neither touches the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Iterator

import anyio
import httpx
import pytest

from fieldsync import errors
from fieldsync.settings import Settings
from fieldsync.storage import _threads, open_media_store
from tests.faults.checker import check, store_sizes, wait_for_derivatives
from tests.faults.fleet import Fleet, Policy, make_photo, make_report, plan_devices
from tests.faults.harness import Moto, Server, enroll, s3_env
from tests.faults.proxy import FaultProxy, Mode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
TIMEOUT_S = 3


@pytest.fixture
def moto() -> Iterator[Moto]:
    server = Moto()
    try:
        yield server
    finally:
        server.stop()


async def checked_store_sizes(server: Server) -> dict[str, int]:
    env = {k: v for k, v in server.env.items() if k.startswith("FIELDSYNC_")}
    return await store_sizes(await open_media_store(Settings.from_env(env, data_dir=server.data_dir)))


async def timed(client: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


async def test_store_down_uploads_503_fast_reports_201_and_all_drains_after(
    serve: Callable[..., Server], admin_token: str, moto: Moto
) -> None:
    server = serve(**s3_env(moto.port, timeout_s=TIMEOUT_S))
    (name, user, token), = await enroll(server.base_url, admin_token, users=1, devices_per_user=1, prefix="down")
    auth = {"Authorization": f"Bearer {token}"}
    rng = random.Random(5)
    photo = make_photo(rng)
    report = make_report(rng, jurisdiction="140431", photos=[photo], device=name)
    moto.stop()
    async with httpx.AsyncClient(base_url=server.base_url, headers=auth, timeout=30) as client:
        upload, upload_s = await timed(client, "PUT", f"/v1/media/{photo.sha256}", content=photo.data,
                                       headers={"Content-Type": "image/jpeg"})
        put, put_s = await timed(client, "PUT", f"/v1/reports/{report.id}", json=report.body)
        health, health_s = await timed(client, "GET", "/healthz")
        ready = await client.get("/readyz")

        assert upload.status_code == 503 and upload.json()["code"] == "dependency.unavailable", upload.text
        # "fast": a refused connection is an answer; none of these waits for the store's deadline
        assert upload.headers["retry-after"] and upload_s < TIMEOUT_S - 0.5, upload_s
        assert put.status_code == 201 and put.json()["missing_media"] == [photo.sha256] and put_s < TIMEOUT_S - 1
        assert health.status_code == 200 and health_s < TIMEOUT_S - 1
        assert ready.status_code == 503 and ready.json()["checks"]["media_store"].startswith("unreachable")
        print(f"store down: photo PUT 503 in {upload_s:.2f} s, report PUT 201 in {put_s:.2f} s, "
              f"/healthz in {health_s:.3f} s")

        enrolled = await enroll(server.base_url, admin_token, users=3, devices_per_user=2, prefix="downfleet")
        devices = plan_devices(enrolled, reports=4, photos_per_report=1, seed=6)
        fleet = Fleet(devices, server.base_url, Policy(max_backoff_s=0.5, deadline_s=60, chunk_bytes=4096))
        load = asyncio.create_task(fleet.run())
        await asyncio.sleep(2.0)
        assert not load.done(), "the devices finished during the outage: it proved nothing"
        moto.start()
        history = await load

        again = await client.put(f"/v1/media/{photo.sha256}", content=photo.data, headers={"Content-Type": "image/jpeg"})
        detail = await client.get(f"/v1/reports/{report.id}")
    assert again.status_code == 201 and hashlib.sha256(photo.data).hexdigest() == again.json()["sha256"]
    assert detail.json()["missing_media"] == []
    assert any(c.status == 503 for c in history.calls if c.op in ("media.put", "tus.patch"))
    problems = await check(history, base_url=server.base_url, devices=devices, database_url=server.database_url(),
                           store_sizes=await checked_store_sizes(server))
    assert problems == []
    assert await wait_for_derivatives(server.database_url(), within_s=15) == 0


async def test_store_hang_answers_503_within_the_timeout_and_healthz_and_reports_stay_fast(
    serve: Callable[..., Server], admin_token: str, moto: Moto
) -> None:
    proxy = FaultProxy("127.0.0.1", moto.port)
    proxy.start()
    try:
        server = serve(**s3_env(proxy.port, timeout_s=TIMEOUT_S))
        enrolled = await enroll(server.base_url, admin_token, users=2, devices_per_user=2, prefix="hang")
        devices = plan_devices(enrolled, reports=3, photos_per_report=1, seed=7)
        (_, _, probe_token), = await enroll(server.base_url, admin_token, users=1, devices_per_user=1, prefix="probe")
        auth = {"Authorization": f"Bearer {probe_token}"}
        rng = random.Random(8)
        photos = [make_photo(rng) for _ in range(3)]
        proxy.set(Mode.STALL)
        async with httpx.AsyncClient(base_url=server.base_url, headers=auth, timeout=30) as client:

            async def fast_requests() -> list[tuple[int, float]]:
                seen = []
                for index in range(15):
                    report = make_report(rng, jurisdiction="140431", photos=[photos[index % 3]], device="probe")
                    put, put_s = await timed(client, "PUT", f"/v1/reports/{report.id}", json=report.body)
                    health, health_s = await timed(client, "GET", "/healthz")
                    assert put.status_code == 201 and put.json()["missing_media"], put.text
                    seen += [(put.status_code, put_s), (health.status_code, health_s)]
                    await asyncio.sleep(0.1)
                return seen

            uploads = [timed(client, "PUT", f"/v1/media/{p.sha256}", content=p.data,
                             headers={"Content-Type": "image/jpeg"}) for p in photos]
            fleet = Fleet(devices, server.base_url, Policy(max_backoff_s=0.5, deadline_s=60, chunk_bytes=4096))
            load = asyncio.create_task(fleet.run())
            fast, *answers = await asyncio.gather(fast_requests(), *uploads)
            assert proxy.stalled > 0, "no store connection was held: the hang was not injected"
            proxy.set(Mode.PASS)
            history = await load
            after = [await client.put(f"/v1/media/{p.sha256}", content=p.data, headers={"Content-Type": "image/jpeg"})
                     for p in photos]

        for response, seconds in answers:
            assert response.status_code == 503 and response.json()["code"] == "dependency.unavailable"
            assert TIMEOUT_S - 0.5 <= seconds <= TIMEOUT_S + 2, seconds
        # neither waits for the store: each answers well inside the deadline the uploads hit
        assert max(seconds for _, seconds in fast) < TIMEOUT_S - 1, sorted(s for _, s in fast)[-3:]
        assert [r.status_code for r in after] == [201, 201, 201]
        print(f"store hangs (timeout {TIMEOUT_S} s): photo PUTs 503 after {sorted(round(s, 2) for _, s in answers)} s; "
              f"report PUT and /healthz at most {max(s for _, s in fast):.2f} s")
        problems = await check(history, base_url=server.base_url, devices=devices,
                               database_url=server.database_url(), store_sizes=await checked_store_sizes(server))
        assert problems == []
    finally:
        proxy.stop()


async def test_a_blocking_store_call_past_its_deadline_is_unavailable_at_the_deadline() -> None:
    """The mechanism under the hang test, for every adapter: the waiting request is released at
    the deadline even though the worker thread is still blocked. Budget: 1 s."""
    limiter = anyio.CapacityLimiter(1)
    started = time.monotonic()
    with pytest.raises(errors.DependencyUnavailable, match="no answer within 0.3 s"):
        await _threads.run(limiter, time.sleep, 0.8, deadline=_threads.Deadline(0.3, "media store (test)"))
    assert time.monotonic() - started < 0.6
