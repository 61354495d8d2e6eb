"""Lost answers and connections reset mid-body, between the devices and the server (the fault
proxy in front of ``fieldsync serve``), and the checker's own test.

SPEC §6 (first row, and §3): a device that got no answer sends the same request again and gets
the first result: the same receipt version for a report PUT, the stored first results
(``applied``) for a replayed push, the stored photo for a media PUT, the server's offset for a
tus upload. Nothing is stored twice. Budget: 20 s for the file.

How it can fail: the checker compares every acknowledgement of a report (``history_problems``);
with ``services.sync.push`` answering a replayed mutation ``duplicate`` instead of its stored
first result (tried locally by skipping ``get_mutation_results``) the replayed pushes were
reported. ``test_the_checker_finds_loss_corruption_and_half_written_reports`` shows the checker
itself reports each kind of damage it exists for.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from fieldsync.storage import FilesystemMediaStore, keys
from tests.faults.checker import check, store_sizes
from tests.faults.fleet import Ack, Fleet, Policy, make_report, plan_devices
from tests.faults.harness import Server, enroll
from tests.faults.proxy import FaultProxy, Mode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_lost_answers_and_mid_body_resets_are_retried_to_the_first_result(
    serve: Callable[..., Server], admin_token: str
) -> None:
    server = serve()
    proxy = FaultProxy("127.0.0.1", server.port)
    proxy.start()
    try:
        enrolled = await enroll(server.base_url, admin_token, users=4, devices_per_user=2, prefix="lost")
        devices = plan_devices(enrolled, reports=8, photos_per_report=1, seed=11)
        for device in devices:
            device.push_batch = 3
        proxy.set(Mode.RESET_BODY, reset_after=1500)
        fleet = Fleet(devices, f"http://127.0.0.1:{proxy.port}", Policy(max_backoff_s=0.2, deadline_s=60,
                                                                        chunk_bytes=2048), keepalive=False)
        load = asyncio.create_task(fleet.run())
        await until(lambda: proxy.reset >= 3 or load.done(), within_s=30)
        proxy.set(Mode.DROP_ANSWER, drop_rate=0.4)
        await until(lambda: len(receipts(proxy.dropped_answers)) >= 10 or load.done(), within_s=30)
        proxy.set(Mode.PASS)
        history = await load
    finally:
        proxy.stop()

    assert proxy.dropped > 10 and proxy.reset > 0, (proxy.dropped, proxy.reset)
    unanswered = {c.op for c in history.calls if c.status is None}
    assert {"report.put", "push", "media.put", "tus.patch"} <= unanswered, unanswered
    compared = 0
    for first in receipts(proxy.dropped_answers):
        report_id = uuid.UUID(first.get("report_id") or first["id"])
        if report_id not in history.report_acks:
            continue
        told = history.report_acks[report_id].answers[0]
        assert told.get("version") == first["version"] and told.get("status") == first["status"], (first, told)
        compared += 1
    assert compared >= 3, f"only {compared} withheld receipts could be compared with the answer to the retry"
    problems = await check(history, base_url=server.base_url, devices=devices, database_url=server.database_url(),
                           store_sizes=await store_sizes(FilesystemMediaStore(server.data_dir / "media")))
    assert problems == []
    print(f"answers dropped {proxy.dropped}, connections reset {proxy.reset}, withheld receipts compared {compared}")


def receipts(withheld: list[bytes]) -> list[dict[str, Any]]:
    """The report receipts and push results among withheld answers."""
    found = []
    for answer in filter(None, map(json_answer, withheld)):
        found += [item for item in answer.get("results", [answer]) if "version" in item]
    return found


async def until(condition: Callable[[], bool], *, within_s: float) -> None:
    """Poll until ``condition`` holds; the bound is generous (a loaded CI machine) and only a
    stuck fleet reaches it."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within_s} s"
        await asyncio.sleep(0.02)


def json_answer(raw: bytes) -> dict[str, Any] | None:
    """The JSON body of a withheld HTTP answer (its first bytes), if it holds a whole one."""
    head, _, body = raw.partition(b"\r\n\r\n")
    headers = head.lower()
    if b"json" not in headers:
        return None
    if b"content-encoding: gzip" in headers:
        try:
            body = zlib.decompress(body, 16 + zlib.MAX_WBITS)
        except zlib.error:
            return None
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


async def test_the_checker_finds_loss_corruption_and_half_written_reports(
    serve: Callable[..., Server], admin_token: str
) -> None:
    server = serve()
    enrolled = await enroll(server.base_url, admin_token, users=2, devices_per_user=1, prefix="chk")
    devices = plan_devices(enrolled, reports=3, photos_per_report=1, seed=12)
    history = await Fleet(devices, server.base_url).run()
    store = FilesystemMediaStore(server.data_dir / "media")
    clean = await check(history, base_url=server.base_url, devices=devices, database_url=server.database_url(),
                        store_sizes=await store_sizes(store))
    assert clean == []

    lost = devices[0].reports[0].id
    history.sent_reports[lost][1].body["title"] = "what the device sent, but not the server"
    corrupted = devices[1].photos[0]
    path = server.data_dir / "media" / keys.original_key(corrupted.sha256)
    path.write_bytes(path.read_bytes()[:-10])
    conn = await asyncpg.connect(server.database_url())
    try:
        ghost = devices[1].reports[1].id
        await conn.execute("DELETE FROM report_media WHERE report_id = $1", ghost)
    finally:
        await conn.close()
    vanished = make_report(random.Random(13), jurisdiction="140431", photos=[], device=devices[0].name)
    history.sent_reports[vanished.id] = (devices[0].name, vanished)
    history.report_acks[vanished.id] = Ack(devices[0].name, [{"id": str(vanished.id), "version": 1}])

    problems = "\n".join(await check(history, base_url=server.base_url, devices=devices,
                                     database_url=server.database_url(), store_sizes=await store_sizes(store)))
    assert f"report {lost}: title" in problems, "a report served with other content than sent"
    assert f"photo {corrupted.sha256}: served" in problems and f"media {corrupted.sha256}" in problems
    assert f"report {ghost}: media differ" in problems and f"report {ghost}: report_media" in problems
    assert f"report {vanished.id}: acknowledged to {devices[0].name} but not served" in problems
