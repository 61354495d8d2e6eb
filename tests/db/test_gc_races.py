"""gc is safe at any grace (0 included) beside uploads and reports in flight: it never deletes a
photo a report is about to reference, and never leaves a media row without its object."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import ReportWrite
from fieldsync.db.pool import connect
from fieldsync.services import gc, media, reports
from fieldsync.storage import FilesystemMediaStore, keys, open_spool
from fieldsync.storage.uploads import upload_area
from tests import images
from tests.support import hazard_report, make_user, principal_of


def submission(report_id: uuid.UUID, body: dict):
    return to_submission(report_id, msgspec.convert(body, ReportWrite))


async def collect_now(conn: asyncpg.Connection, store, settings) -> gc.GcReport:
    """gc at grace 0 with the wall clock (object times in the store are real times)."""
    return await gc.collect(conn, store=store, spool=await open_spool(settings),
                            upload_area=upload_area(settings.data_dir), now=dt.datetime.now(dt.UTC), grace_s=0,
                            dry_run=False)


async def test_gc_waits_for_a_report_that_is_referencing_the_photo_and_keeps_it(
    client, conn, database_url, settings, clock
) -> None:
    """The report's transaction names an unreferenced photo but has not committed; gc at grace 0
    must wait for it (the reference holds the row) and then keep the photo."""
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    data = images.jpeg(seed=31)
    sha = images.sha256(data)
    uploaded = await client.put(f"/v1/media/{sha}", content=data,
                                headers={**inspector.headers, "Content-Type": "image/jpeg"})
    assert uploaded.status_code == 201
    clock.advance(seconds=1)
    store = FilesystemMediaStore(Path(settings.media_url.removeprefix("file://")))
    actor = principal_of(inspector, "/140000/140400/140431/")

    writer = await connect(database_url)
    sweeper = await connect(database_url)
    try:
        report = writer.transaction()
        await report.start()
        receipt = await reports.submit_report(
            writer, actor, submission(uuid.uuid4(), hazard_report(media=[{"sha256": sha, "role": "photo"}])),
            now=clock.now(), clock_skew_s=600,
        )
        assert receipt.missing_media == []
        collecting = asyncio.create_task(collect_now(sweeper, store, settings))
        await asyncio.sleep(0.5)
        assert not collecting.done(), "gc must wait for the uncommitted reference"
        await report.commit()
        result = await asyncio.wait_for(collecting, timeout=10)
    finally:
        await writer.close()
        await sweeper.close()
    assert sha not in result.unreferenced_media
    assert await store.exists(keys.original_key(sha))
    got = await client.get(f"/v1/media/{sha}", headers=inspector.headers)
    assert got.status_code == 200 and got.content == data


class StoreThatLetsGcIn(FilesystemMediaStore):
    """A real filesystem store; right after one put, gc runs to completion (the worst moment for
    an upload: its object is in the store, its row is not committed yet)."""

    def __init__(self, root: Path, sweep) -> None:
        super().__init__(root)
        self.sweep = sweep
        self.swept: list[gc.GcReport] = []

    async def put_file(self, key: str, path: Path, *, sha256: str, size: int, content_type: str) -> None:
        await super().put_file(key, path, sha256=sha256, size=size, content_type=content_type)
        if not self.swept:
            self.swept.append(await self.sweep(self))


async def test_an_upload_whose_object_gc_removed_before_its_commit_stores_it_again(
    conn, database_url, settings, clock
) -> None:
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    actor = principal_of(inspector, "/140000/140400/140431/")
    sweeper = await connect(database_url)
    store = StoreThatLetsGcIn(Path(settings.data_dir) / "media",
                              lambda s: collect_now(sweeper, s, settings))
    await store.ensure_root()
    spool = await open_spool(settings)
    data = images.jpeg(seed=32)
    try:
        async with spool.staged() as staged:
            await staged.write(data)
            await staged.finish()
            kept = await media.store_media(
                media.holding(conn), actor, staged=staged, expected_sha256=staged.sha256,
                declared_type="image/jpeg", store=store, max_pixels=10_000_000, now=clock.now(),
            )
    finally:
        await sweeper.close()
    record, created = kept.record, kept.created
    assert created and store.swept and keys.original_key(record.sha256) in store.swept[0].orphan_objects
    assert await store.exists(keys.original_key(record.sha256)), "a row without its object"
    for kind in ("preview", "thumbnail"):
        assert await store.exists(keys.derivative_key(record.sha256, kind)), f"derivatives_at set without a {kind}"
    assert await conn.fetchval("SELECT count(*) FROM media WHERE sha256 = $1", record.sha256) == 1


@pytest.mark.timeout(120)
async def test_gc_in_a_loop_at_grace_0_while_200_photo_reports_arrive_loses_no_acknowledged_photo(
    client, conn, database_url, settings, clock
) -> None:
    """Devices send report then photo, or photo then report (re-sending a photo the receipt lists
    as missing), while gc runs back to back at grace 0. Afterwards every report is complete and
    every photo it names is readable, byte-identical."""
    devices = [await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now()) for _ in range(8)]
    store = FilesystemMediaStore(Path(settings.media_url.removeprefix("file://")))
    photos = {seed: images.jpeg(96, 72, seed=1000 + seed) for seed in range(200)}
    done = asyncio.Event()
    sweeps = 0

    async def sweep_forever() -> None:
        nonlocal sweeps
        sweeper = await connect(database_url)
        try:
            while not done.is_set():
                await collect_now(sweeper, store, settings)
                sweeps += 1
        finally:
            await sweeper.close()

    async def retried(send):
        """What a device does: 409 request.retry (a lost deadlock, nothing kept) is sent again."""
        for _ in range(20):
            response = await send()
            if response.status_code != 409 or response.json()["code"] != "request.retry":
                return response
        raise AssertionError("still request.retry after 20 attempts")

    async def send_photo(device, data: bytes) -> None:
        response = await retried(lambda: client.put(f"/v1/media/{images.sha256(data)}", content=data,
                                                     headers={**device.headers, "Content-Type": "image/jpeg"}))
        assert response.status_code in (200, 201), response.text

    async def device_loop(index: int) -> list[tuple[str, bytes]]:
        device, sent = devices[index], []
        rng = random.Random(index)
        for seed in range(index, 200, len(devices)):
            data, report_id = photos[seed], str(uuid.uuid4())
            body = hazard_report(title=f"隐患 {seed}", location={"lat": 36 + seed / 100, "lon": 112.3, "accuracy_m": 8},
                                 media=[{"sha256": images.sha256(data), "role": "photo"}])
            if rng.random() < 0.5:
                await send_photo(device, data)
            for _ in range(10):
                receipt = await retried(lambda: client.put(f"/v1/reports/{report_id}", json=body,
                                                           headers=device.headers))
                assert receipt.status_code in (200, 201), receipt.text
                if not receipt.json()["missing_media"]:
                    break
                await send_photo(device, data)
            else:
                raise AssertionError("the photo never counted")
            sent.append((report_id, data))
        return sent

    sweeping = asyncio.create_task(sweep_forever())
    try:
        sent = [item for batch in await asyncio.gather(*(device_loop(i) for i in range(len(devices))))
                for item in batch]
    finally:
        done.set()
        await sweeping
    assert sweeps >= 3, "gc must really have run during the uploads"
    assert len(sent) == 200
    by_author = {}
    for device in devices:
        for row in await conn.fetch("SELECT id FROM reports WHERE author_id = $1", device.user_id):
            by_author[str(row["id"])] = device
    for report_id, data in sent:
        reader = by_author[report_id]
        detail = (await client.get(f"/v1/reports/{report_id}", headers=reader.headers)).json()
        assert detail["missing_media"] == [], report_id
        original = await client.get(f"/v1/media/{images.sha256(data)}", headers=reader.headers)
        assert original.status_code == 200 and original.content == data
    rows = [row["sha256"] for row in await conn.fetch("SELECT sha256 FROM media")]
    for sha in rows:
        assert await store.exists(keys.original_key(sha)), f"media row {sha} without its object"
