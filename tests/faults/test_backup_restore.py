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
import dataclasses
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
from tests.faults.fleet import Device, Fleet, History, Policy, make_report, plan_devices
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


async def first_acknowledgement(history: History, load: asyncio.Task[History], timeout_s: float = 60) -> None:
    """Until the fleet has an acknowledged report: the backup must begin after one, under load
    (a fixed head start was too short for the first photo and report on a busy machine)."""
    deadline = time.monotonic() + timeout_s
    while not acknowledged_before(history, time.monotonic()):
        assert not load.done(), "the fleet finished without an acknowledged report"
        assert time.monotonic() < deadline, f"no report acknowledged within {timeout_s} s"
        await asyncio.sleep(0.05)


async def burn_transaction_ids(database_url: str, count: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute(f"DO $$ BEGIN FOR i IN 1..{count} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; "
                           "END $$")
    finally:
        await conn.close()


@dataclasses.dataclass
class Before:
    """What happened on the source: the two fleets' histories, the watcher's view and cursor."""

    first: list[Device]
    second: list[Device]
    history: History
    during: History
    seen: set[uuid.UUID]
    cursor: str
    backup_started: float

    @property
    def watcher(self) -> Device:
        return self.first[0]

    def merged(self) -> History:
        """Everything sent; acknowledged: the first fleet, and what the second had before the backup."""
        before_backup = acknowledged_before(self.during, self.backup_started)
        assert before_backup, "no report of the second fleet was acknowledged before the backup began"
        merged = History()
        merged.sent_reports = {**self.history.sent_reports, **self.during.sent_reports}
        merged.sent_photos = {**self.history.sent_photos, **self.during.sent_photos}
        merged.report_acks = {**self.history.report_acks,
                              **{r: a for r, a in self.during.report_acks.items() if r in before_backup}}
        merged.photo_acks = self.history.photo_acks
        return merged


async def send_and_back_up(source: Server, admin_token: str, backup_dir: Path) -> Before:
    """A first fleet, the watcher's pull, 5,000 xids burnt, then a backup while a second fleet sends."""
    enrolled = await enroll(source.base_url, admin_token, users=3, devices_per_user=2, prefix="bak")
    first = plan_devices(enrolled, reports=4, photos_per_report=1, seed=20)
    history = await Fleet(first, source.base_url).run()
    async with httpx.AsyncClient(base_url=source.base_url, timeout=30) as client:
        seen, cursor = await pull_from(client, first[0].token, None)
    await burn_transaction_ids(source.database_url(), 5000)
    second = plan_devices(enrolled, reports=10, photos_per_report=1, seed=21)
    fleet = Fleet(second, source.base_url, Policy(pace_s=0.4))
    load = asyncio.create_task(fleet.run())
    await first_acknowledgement(fleet.history, load)
    backup_started = time.monotonic()
    saved = await asyncio.to_thread(source.cli, "backup", str(backup_dir))
    assert saved.returncode == 0, saved.stderr
    during = await load
    assert during.report_acks
    return Before(first, second, history, during, seen, cursor, backup_started)


async def restored_rows(database_url: str, username: str) -> tuple[set[uuid.UUID], list[str], set[uuid.UUID]]:
    """(every report, every photo a report names that has a row, the reports of ``username``)."""
    conn = await asyncpg.connect(database_url)
    try:
        present = {row["id"] for row in await conn.fetch("SELECT id FROM reports")}
        photos = await conn.fetch("SELECT DISTINCT rm.sha256 FROM report_media rm JOIN media m USING (sha256)")
        watched = {row["id"] for row in await conn.fetch(
            "SELECT r.id FROM reports r JOIN users u ON u.id = r.author_id WHERE u.username = $1", username)}
    finally:
        await conn.close()
    return present, [row["sha256"] for row in photos], watched


async def test_backup_under_load_restores_to_a_consistent_service_and_old_cursors_continue(
    serve: Callable[..., Server], admin_token: str
) -> None:
    source = serve()
    backup_dir = Path(tempfile.mkdtemp(prefix="fieldsync-faults-backup-", dir="/tmp")) / "backup"
    before = await send_and_back_up(source, admin_token, backup_dir)
    source.stop()
    restored = Server(Path(tempfile.mkdtemp(prefix="fieldsync-faults-restored-", dir="/tmp")) / "data")
    try:
        done = restored.cli("restore", str(backup_dir))
        assert done.returncode == 0, done.stderr
        verified = restored.cli("audit", "verify")
        assert verified.returncode == 0 and "audit log intact" in verified.stdout, verified.stdout + verified.stderr
        restored.start()
        restored.wait_ready(path="/readyz")

        merged = before.merged()
        devices = before.first + before.second
        problems = await check(merged, base_url=restored.base_url, devices=devices,
                               database_url=restored.database_url(),
                               store_sizes=await store_sizes(FilesystemMediaStore(restored.data_dir / "media")))
        assert problems == [], "\n".join(problems)
        present, photos, watched = await restored_rows(restored.database_url(), before.watcher.user)
        assert len(present) < len(merged.sent_reports), "the backup was not taken under load: it holds everything"
        tokens = {d.name: d.token for d in devices}
        async with httpx.AsyncClient(base_url=restored.base_url, timeout=30) as client:
            for sha256 in photos:
                device, photo = merged.sent_photos[sha256]
                got = await client.get(f"/v1/media/{sha256}", headers={"Authorization": f"Bearer {tokens[device]}"})
                assert got.status_code == 200 and got.content == photo.data, sha256
            await old_cursor_continues(client, before, watched)
    finally:
        restored.cleanup()
        shutil.rmtree(backup_dir.parent, ignore_errors=True)


async def old_cursor_continues(client: httpx.AsyncClient, before: Before, watched: set[uuid.UUID]) -> None:
    """The watcher's cursor from before the backup skips nothing of its user's restored reports,
    and the cursor it gets then delivers what is written after the restore."""
    token = before.watcher.token
    after_restore, cursor = await pull_from(client, token, before.cursor)
    assert watched - before.seen <= after_restore, f"{len(watched - before.seen - after_restore)} skipped"
    fresh = make_report(random.Random(22), jurisdiction="140431", photos=[], device="fresh")
    put = await client.put(f"/v1/reports/{fresh.id}", json=fresh.body, headers={"Authorization": f"Bearer {token}"})
    assert put.status_code == 201, put.text
    assert (await pull_from(client, token, cursor))[0] == {fresh.id}
    assert fresh.id in await pull_all(client, token)


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
