"""SPEC §6, last row: a backup taken under load (``fieldsync backup DIR``: the database dump, then
the media objects), restored into an empty data directory (``fieldsync restore DIR``).

What must hold after the restore: every restored report's photos present and byte-identical;
everything acknowledged before the backup began is there (the history checker over the first
fleet, and the second fleet's acknowledgements that came before the backup started);
``fieldsync audit verify`` passes; and a device's pull cursor from before the backup continues
without a gap: its next pull delivers every report of its user that it had not seen, and the
cursor it gets then goes on delivering what is written after the restore.

The source cluster first burns 5,000 transaction ids, as any cluster in service has: the
restored one starts again near zero. How it was seen to fail: without the feed epoch (migration
0014, ``services.sync.restart_feed``) the old cursor's next pull on the restored server returned
nothing at all, and even a first pull missed the restored reports, whose ``change_xid`` lay in
the new cluster's future. Budget: 25 s.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from fieldsync.services import sync
from fieldsync.storage import FilesystemMediaStore
from tests.faults.checker import check, pull_all, store_sizes
from tests.faults.fleet import Fleet, History, Policy, make_report, plan_devices
from tests.faults.harness import Server, enroll
from tests.support import MutableClock, hazard_report, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def pull_from(client: httpx.AsyncClient, token: str, cursor: str | None) -> tuple[set[uuid.UUID], str]:
    """Every change after ``cursor`` (all pages); the ids and the cursor to go on from."""
    seen: set[uuid.UUID] = set()
    while True:
        params: dict[str, object] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/sync/pull", params=params, headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 200, page.text
        body = page.json()
        seen |= {uuid.UUID(change["id"]) for change in body["changes"]}
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return seen, cursor


def acknowledged_before(history: History, moment: float) -> set[uuid.UUID]:
    """Reports whose acknowledging answer (a PUT's or a push's) came before ``moment``."""
    found: set[uuid.UUID] = set()
    for call in history.calls:
        if call.status in (200, 201) and call.ended < moment and call.op in ("report.put", "push"):
            found |= {uuid.UUID(key) for key in call.key.split(",")}
    return found & history.report_acks.keys()


async def burn_transaction_ids(database_url: str, count: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute(f"DO $$ BEGIN FOR i IN 1..{count} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; "
                           "END $$")
    finally:
        await conn.close()


async def test_backup_under_load_restores_to_a_consistent_service_and_old_cursors_continue(
    serve: Callable[..., Server], admin_token: str
) -> None:
    source = serve()
    enrolled = await enroll(source.base_url, admin_token, users=3, devices_per_user=2, prefix="bak")
    first = plan_devices(enrolled, reports=4, photos_per_report=1, seed=20)
    history = await Fleet(first, source.base_url).run()
    watcher = first[0]
    async with httpx.AsyncClient(base_url=source.base_url, timeout=30) as client:
        seen_before, old_cursor = await pull_from(client, watcher.token, None)
    await burn_transaction_ids(source.database_url(), 5000)

    second = plan_devices(enrolled, reports=10, photos_per_report=1, seed=21)
    load = asyncio.create_task(Fleet(second, source.base_url, Policy(pace_s=0.4)).run())
    await asyncio.sleep(0.5)
    backup_dir = Path(tempfile.mkdtemp(prefix="fieldsync-faults-backup-", dir="/tmp")) / "backup"
    backup_started = time.monotonic()
    saved = await asyncio.to_thread(source.cli, "backup", str(backup_dir))
    assert saved.returncode == 0, saved.stderr
    during = await load
    assert not load.exception() and during.report_acks
    source.stop()

    target_dir = Path(tempfile.mkdtemp(prefix="fieldsync-faults-restored-", dir="/tmp")) / "data"
    restored = Server(target_dir)
    try:
        done = restored.cli("restore", str(backup_dir))
        assert done.returncode == 0, done.stderr
        verified = restored.cli("audit", "verify")
        assert verified.returncode == 0 and "audit log intact" in verified.stdout, verified.stdout + verified.stderr
        restored.start()
        restored.wait_ready(path="/readyz")

        before_backup = acknowledged_before(during, backup_started)
        merged = History()
        merged.sent_reports = {**history.sent_reports, **during.sent_reports}
        merged.sent_photos = {**history.sent_photos, **during.sent_photos}
        merged.report_acks = {**history.report_acks,
                              **{r: a for r, a in during.report_acks.items() if r in before_backup}}
        merged.photo_acks = history.photo_acks
        problems = await check(merged, base_url=restored.base_url, devices=first + second,
                               database_url=restored.database_url(),
                               store_sizes=await store_sizes(FilesystemMediaStore(target_dir / "media")))
        assert problems == [], "\n".join(problems)
        assert before_backup, "no report of the second fleet was acknowledged before the backup began"
        conn = await asyncpg.connect(restored.database_url())
        try:
            present = {row["id"] for row in await conn.fetch("SELECT id FROM reports")}
            photos = await conn.fetch("SELECT DISTINCT rm.sha256 FROM report_media rm JOIN media m USING (sha256)")
            watched = {row["id"] for row in await conn.fetch(
                "SELECT r.id FROM reports r JOIN users u ON u.id = r.author_id WHERE u.username = $1", watcher.user)}
        finally:
            await conn.close()
        assert len(present) < len(merged.sent_reports), "the backup was not taken under load: it holds everything"
        sent = {**history.sent_photos, **during.sent_photos}
        tokens = {d.name: d.token for d in first + second}
        async with httpx.AsyncClient(base_url=restored.base_url, timeout=30) as client:
            for row in photos:
                device, photo = sent[row["sha256"]]
                got = await client.get(f"/v1/media/{photo.sha256}", headers={"Authorization": f"Bearer {tokens[device]}"})
                assert got.status_code == 200 and got.content == photo.data, photo.sha256

            after_restore, cursor = await pull_from(client, watcher.token, old_cursor)
            assert watched - seen_before <= after_restore, f"{len(watched - seen_before - after_restore)} skipped"
            fresh = make_report(random.Random(22), jurisdiction="140431", photos=[], device="fresh")
            put = await client.put(f"/v1/reports/{fresh.id}", json=fresh.body,
                                   headers={"Authorization": f"Bearer {watcher.token}"})
            assert put.status_code == 201, put.text
            next_changes, _ = await pull_from(client, watcher.token, cursor)
            assert next_changes == {fresh.id}
            assert fresh.id in (await pull_all(client, watcher.token))
    finally:
        restored.cleanup()
        shutil.rmtree(backup_dir.parent, ignore_errors=True)


async def test_a_cursor_of_another_cluster_is_answered_as_a_first_pull(
    client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock
) -> None:
    """The rule under the restore test, in process: a cursor whose snapshots count another
    cluster's transactions (further on than this one's) would call every row here already seen.
    With another epoch, or none (a cursor from before epochs), the whole view comes again; with
    this epoch, the cursor is followed as ever. Fails without the epoch check in
    ``services.sync.pull`` (the foreign cursor's pull comes back empty). Budget: 2 s."""
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    ids = set()
    for number in range(3):
        report_id = uuid.uuid4()
        put = await client.put(f"/v1/reports/{report_id}", headers=inspector.headers,
                               json=hazard_report(title=f"epoch {number}"))
        assert put.status_code == 201, put.text
        ids.add(report_id)
    everything, cursor = await pull_from(client, inspector.token, None)
    assert everything == ids and (await pull_from(client, inspector.token, cursor))[0] == set()

    far = "999999:999999:"
    for epoch in (uuid.uuid4().hex, None):
        foreign = sync.Cursor(base=far, epoch=epoch).encode()
        assert (await pull_from(client, inspector.token, foreign))[0] == ids, epoch
    current = sync.Cursor.decode(cursor).epoch
    followed = sync.Cursor(base=far, epoch=current).encode()
    assert (await pull_from(client, inspector.token, followed))[0] == set()
