"""The history checker: after the faults stop and every device has drained its queue, prove the
server against what the devices were told (a Jepsen-style check, scaled down).

``check`` returns a list of problems (empty means the promise held):

1. From the history alone: no answer a fault may never produce (a 500, or a 5xx that is not a
   503/507 problem document); every device's queue ended with a final answer; every
   acknowledgement of the same report agrees (a replay answers the first result: the same
   version; a replayed push mutation answers ``applied`` again, never something else).
2. Reports, read back through each inspector's pull feed (full reports, every one the user may
   see): every acknowledged report is there with the acknowledged content and version, and none
   of its acknowledged photos in ``missing_media``; a report sent but never acknowledged is
   either absent or there whole, with exactly the content sent; no report exists that no device
   sent.
3. Photos: every acknowledged photo is served byte-identical (``GET /v1/media/{sha256}``, as its
   uploader); a photo sent but never acknowledged is absent or byte-identical, never partial.
4. In the database (nothing twice, nothing half-written): each report has exactly one
   ``created`` audit event and one version row per version; its ``report_media`` rows are those
   of its content, each once; every media row has its original in the store with its size.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import uuid
from typing import Any

import asyncpg
import httpx

from fieldsync.ports import MediaStore
from fieldsync.storage import keys
from tests.faults.fleet import Device, History

CONTENT_FIELDS = ("kind", "category", "title", "description", "jurisdiction", "severity", "grade")


def history_problems(history: History, *, allow_unfinished: bool = False) -> list[str]:
    problems = [f"{c.device} {c.op} {c.key[:40]}: {c.status} {c.answer}" for c in history.server_errors()]
    if not allow_unfinished:
        problems += [f"device did not finish: {failure}" for failure in history.failures]
    for report_id, ack in history.report_acks.items():
        versions = {answer.get("version") for answer in ack.answers}
        if len(versions) != 1:
            problems.append(f"report {report_id}: acknowledged with different versions {sorted(map(str, versions))}")
        statuses = {answer.get("status") for answer in ack.answers if "mutation_id" in answer}
        if statuses - {"applied"}:
            problems.append(f"report {report_id}: a replayed push answered {statuses}, not its first result")
        ids = {answer.get("id", answer.get("report_id")) for answer in ack.answers}
        if ids != {str(report_id)}:
            problems.append(f"report {report_id}: acknowledged as {ids}")
    return problems


def content_problems(report_id: uuid.UUID, sent: dict[str, Any], served: dict[str, Any]) -> list[str]:
    problems = [f"report {report_id}: {name} is {served.get(name)!r}, sent {sent.get(name)!r}"
                for name in CONTENT_FIELDS if served.get(name) != sent.get(name)]
    for axis in ("lat", "lon", "accuracy_m"):
        if abs(float(served["location"][axis]) - float(sent["location"][axis])) > 1e-9:
            problems.append(f"report {report_id}: location.{axis} differs")
    if dt.datetime.fromisoformat(served["observed_at"]) != dt.datetime.fromisoformat(sent["observed_at"]):
        problems.append(f"report {report_id}: observed_at differs")
    if [(m["sha256"], m["role"]) for m in served["media"]] != [(m["sha256"], m["role"]) for m in sent["media"]]:
        problems.append(f"report {report_id}: media differ")
    if served.get("enterprise", {}).get("credit_code") != sent["enterprise"]["credit_code"]:
        problems.append(f"report {report_id}: enterprise differs")
    return problems


async def pull_all(client: httpx.AsyncClient, token: str) -> dict[uuid.UUID, dict[str, Any]]:
    """Everything the token's user may see, through the pull feed from the start."""
    seen: dict[uuid.UUID, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = await client.get("/v1/sync/pull", params=params, headers={"Authorization": f"Bearer {token}"})
        page.raise_for_status()
        body = page.json()
        for change in body["changes"]:
            seen[uuid.UUID(change["id"])] = change
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return seen


async def report_problems(client: httpx.AsyncClient, history: History, devices: list[Device]) -> list[str]:
    problems: list[str] = []
    by_user: dict[str, Device] = {}
    for device in devices:
        by_user.setdefault(device.user, device)
    served: dict[uuid.UUID, dict[str, Any]] = {}
    owner: dict[uuid.UUID, str] = {}
    for user, device in by_user.items():
        for report_id, report in (await pull_all(client, device.token)).items():
            served[report_id] = report
            owner[report_id] = user
    users_of = {d.name: d.user for d in devices}
    for report_id, (device_name, queued) in history.sent_reports.items():
        report = served.get(report_id)
        ack = history.report_acks.get(report_id)
        if report is None:
            if ack is not None:
                problems.append(f"report {report_id}: acknowledged to {ack.device} but not served")
            continue
        if owner[report_id] != users_of[device_name]:
            problems.append(f"report {report_id}: served to {owner[report_id]}, sent by {device_name}")
        problems += content_problems(report_id, queued.body, report)
        if ack is not None and report["version"] != ack.answers[0].get("version"):
            problems.append(f"report {report_id}: version {report['version']}, acknowledged {ack.answers[0]}")
        stored = [p.sha256 for p in queued.photos if p.sha256 in history.photo_acks]
        if ack is not None and set(stored) & set(report["missing_media"]):
            problems.append(f"report {report_id}: acknowledged photos {set(stored) & set(report['missing_media'])} "
                            "are missing")
    for report_id in served.keys() - history.sent_reports.keys():
        problems.append(f"report {report_id}: served but no device sent it")
    return problems


async def photo_problems(client: httpx.AsyncClient, history: History, devices: list[Device]) -> list[str]:
    tokens = {d.name: d.token for d in devices}
    problems: list[str] = []
    gate = asyncio.Semaphore(16)

    async def one(sha256: str, device_name: str, data: bytes) -> None:
        async with gate:
            response = await client.get(f"/v1/media/{sha256}", follow_redirects=True,
                                        headers={"Authorization": f"Bearer {tokens[device_name]}"})
        acknowledged = sha256 in history.photo_acks
        if response.status_code == 404 and not acknowledged:
            return
        if response.status_code != 200:
            problems.append(f"photo {sha256}: {response.status_code} (acknowledged: {acknowledged})")
        elif response.content != data:
            digest = hashlib.sha256(response.content).hexdigest()
            problems.append(f"photo {sha256}: served {len(response.content)} bytes hashing to {digest}")

    await asyncio.gather(*(one(sha, device, photo.data) for sha, (device, photo) in history.sent_photos.items()))
    return problems


async def database_problems(database_url: str, history: History, store_sizes: dict[str, int] | None) -> list[str]:
    """Bulk checks in SQL: nothing twice, nothing half-written (``store_sizes``: key → bytes)."""
    problems: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """
            SELECT r.id, r.version,
                   (SELECT count(*) FROM events e WHERE e.report_id = r.id AND e.action = 'created') AS created,
                   (SELECT count(*) FROM report_versions v WHERE v.report_id = r.id) AS versions,
                   (SELECT array_agg(m.sha256 ORDER BY m.position) FROM report_media m WHERE m.report_id = r.id)
                       AS media
            FROM reports r
            """
        )
        for row in rows:
            sent = history.sent_reports.get(row["id"])
            if row["created"] != 1 or row["versions"] != row["version"]:
                problems.append(f"report {row['id']}: {row['created']} created events, {row['versions']} versions "
                                f"for version {row['version']}")
            if sent is not None and list(row["media"] or []) != [m["sha256"] for m in sent[1].body["media"]]:
                problems.append(f"report {row['id']}: report_media {row['media']}")
        if store_sizes is not None:
            for row in await conn.fetch("SELECT sha256, bytes FROM media"):
                key = keys.original_key(row["sha256"])
                if store_sizes.get(key) != row["bytes"]:
                    problems.append(f"media {row['sha256']}: row says {row['bytes']} bytes, store has "
                                    f"{store_sizes.get(key)}")
    finally:
        await conn.close()
    return problems


async def check(
    history: History,
    *,
    base_url: str,
    devices: list[Device],
    database_url: str | None = None,
    store_sizes: dict[str, int] | None = None,
    allow_unfinished: bool = False,
) -> list[str]:
    problems = history_problems(history, allow_unfinished=allow_unfinished)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        problems += await report_problems(client, history, devices)
        problems += await photo_problems(client, history, devices)
    if database_url is not None:
        problems += await database_problems(database_url, history, store_sizes)
    return problems


async def store_sizes(store: MediaStore) -> dict[str, int]:
    """Every original in the store and its size, for ``database_problems``."""
    return {item.key: item.size async for item in store.list_keys(keys.ORIGINALS)}


async def wait_for_derivatives(database_url: str, *, within_s: float) -> int:
    """Wait until no derivative job is due now; returns how many photos still lack derivatives."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + within_s
        while True:
            due = await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = 'derivatives' AND run_after <= now()")
            if due == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        lost = await conn.fetchval(
            "SELECT count(*) FROM media m WHERE m.derivatives_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM jobs j WHERE j.kind = 'derivatives' AND j.key = m.sha256)")
        assert lost == 0, f"{lost} photos have neither derivatives nor a queued job"
        return int(await conn.fetchval("SELECT count(*) FROM media WHERE derivatives_at IS NULL"))
    finally:
        await conn.close()
