"""Garbage collection removes unreferenced media past grace and never a referenced object."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import time
import uuid

import pytest

from fieldsync.services import gc
from fieldsync.storage import keys, open_media_store, open_spool
from fieldsync.storage.uploads import upload_area
from tests import images
from tests.support import hazard_report, make_user


async def _upload(client, actor, data: bytes) -> str:
    response = await client.put(
        f"/v1/media/{images.sha256(data)}", content=data, headers={**actor.headers, "Content-Type": "image/jpeg"}
    )
    assert response.status_code == 201, response.text
    return images.sha256(data)


@pytest.fixture
async def world(client, conn, clock, settings):
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    referenced = await _upload(client, inspector, images.jpeg(seed=1))
    unreferenced = await _upload(client, inspector, images.jpeg(seed=2))
    await client.put(
        f"/v1/reports/{uuid.uuid4()}", json=hazard_report(media=[{"sha256": referenced}]), headers=inspector.headers
    )
    store = await open_media_store(settings)
    for sha in (referenced, unreferenced):
        await gc_ready(conn, store, sha)
    return referenced, unreferenced, store


async def gc_ready(conn, store, sha: str) -> None:
    """Wait for the background derivatives, so that all three objects of a photo exist."""
    for _ in range(200):
        if await store.exists(keys.derivative_key(sha, "thumbnail")):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("derivatives never appeared")


async def _collect(conn, store, settings, *, now, dry_run=False):
    return await gc.collect(
        conn, store=store, spool=await open_spool(settings), upload_area=upload_area(settings.data_dir), now=now,
        grace_s=3600, dry_run=dry_run,
    )


async def test_gc_keeps_everything_within_grace(world, conn, settings, clock):
    referenced, unreferenced, store = world
    result = await _collect(conn, store, settings, now=clock.now() + dt.timedelta(minutes=30))
    assert result.unreferenced_media == [] and result.orphan_objects == []
    assert await store.exists(keys.original_key(unreferenced))


async def test_gc_removes_unreferenced_media_past_grace_and_keeps_referenced(world, conn, settings, clock):
    referenced, unreferenced, store = world
    later = clock.now() + dt.timedelta(hours=2)

    dry = await _collect(conn, store, settings, now=later, dry_run=True)
    assert dry.unreferenced_media == [unreferenced]
    assert await store.exists(keys.original_key(unreferenced))
    assert await conn.fetchval("SELECT count(*) FROM media") == 2

    result = await _collect(conn, store, settings, now=later)
    assert result.unreferenced_media == [unreferenced]
    for key in (keys.original_key(unreferenced), *(keys.derivative_key(unreferenced, k) for k in keys.DERIVATIVE_KINDS)):
        assert not await store.exists(key)
    for key in (keys.original_key(referenced), *(keys.derivative_key(referenced, k) for k in keys.DERIVATIVE_KINDS)):
        assert await store.exists(key)
    assert await conn.fetchval("SELECT array_agg(sha256) FROM media") == [referenced]


async def test_gc_removes_objects_whose_row_never_committed(world, conn, settings, clock, tmp_path):
    referenced, unreferenced, store = world
    crash_leftover = images.jpeg(seed=99)
    path = tmp_path / "leftover.jpg"
    path.write_bytes(crash_leftover)
    sha = images.sha256(crash_leftover)
    await store.put_file(keys.original_key(sha), path, sha256=sha, size=len(crash_leftover), content_type="image/jpeg")
    result = await _collect(conn, store, settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    assert keys.original_key(sha) in result.orphan_objects
    assert not await store.exists(keys.original_key(sha))
    assert await store.exists(keys.original_key(referenced))


async def test_gc_removes_stale_spool_files(world, conn, settings, clock):
    referenced, unreferenced, store = world
    spool_dir = settings.data_dir / "spool"
    stale = spool_dir / "deadbeef.part"
    stale.write_bytes(b"half a photo")
    old = time.time() - 2 * gc.SPOOL_STALE_S
    os.utime(stale, (old, old))
    fresh = spool_dir / "cafe.part"
    fresh.write_bytes(b"in flight")
    result = await _collect(conn, store, settings, now=clock.now())
    assert result.stale_spool_files == 1
    assert not stale.exists() and fresh.exists()


async def test_gc_command_reports_what_it_would_remove(world, settings, monkeypatch, capsys):
    from fieldsync.__main__ import main

    referenced, unreferenced, store = world
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", settings.database_url.value)
    monkeypatch.setenv("FIELDSYNC_MEDIA_URL", settings.media_url)
    monkeypatch.setenv("FIELDSYNC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FIELDSYNC_GC_GRACE_S", "0")
    assert await asyncio.to_thread(main, ["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove: 1 unreferenced media" in out
    assert f"media {unreferenced}" in out and referenced not in out
    assert await store.exists(keys.original_key(unreferenced))


async def test_gc_removes_expired_uploads_with_their_part_files(client, conn, settings, clock):
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    tus = {**inspector.headers, "Tus-Resumable": "1.0.0"}
    photo = images.jpeg(seed=51)
    meta = f"sha256 {base64.b64encode(images.sha256(photo).encode()).decode()},content_type aW1hZ2UvanBlZw=="

    async def new_upload() -> str:
        headers = {**tus, "Upload-Length": str(len(photo)), "Upload-Metadata": meta}
        response = await client.post("/v1/uploads", headers=headers)
        assert response.status_code == 201, response.text
        return response.headers["location"]

    abandoned = await new_upload()
    patched = await client.patch(
        abandoned, content=photo[:1000],
        headers={**tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"},
    )
    assert patched.status_code == 204
    clock.advance(hours=12)
    recent = await new_upload()
    uploads_dir = settings.data_dir / "uploads"
    assert len(list(uploads_dir.glob("*.part"))) == 2
    crash_leftover = uploads_dir / f"{uuid.uuid4().hex}.part"
    crash_leftover.write_bytes(b"a part whose row never committed")
    old = time.time() - 2 * 3600
    os.utime(crash_leftover, (old, old))

    store = await open_media_store(settings)
    past_first_expiry = clock.now() + dt.timedelta(seconds=settings.upload_expiry_s) - dt.timedelta(hours=1)
    dry = await _collect(conn, store, settings, now=past_first_expiry, dry_run=True)
    assert (dry.expired_uploads, dry.stale_upload_parts) == (1, 1)
    assert await conn.fetchval("SELECT count(*) FROM uploads") == 2 and crash_leftover.exists()

    result = await _collect(conn, store, settings, now=past_first_expiry)
    assert (result.expired_uploads, result.stale_upload_parts) == (1, 1)
    remaining = await conn.fetch("SELECT id FROM uploads")
    assert [f"/v1/uploads/{row['id']}" for row in remaining] == [recent]
    assert sorted(p.name for p in uploads_dir.glob("*")) == [f"{uuid.UUID(recent.rsplit('/', 1)[1]).hex}.part"]
    assert (await client.head(abandoned, headers=tus)).status_code == 404


async def test_gc_removes_throttle_counters_whose_window_has_ended(conn, settings, clock, world):
    """auth_failures rows only matter inside their window; without gc they would pile up, one per
    username or client address ever mistyped."""
    _, _, store = world
    now = clock.now()
    for key, started in (("old", now - dt.timedelta(hours=2)), ("live", now - dt.timedelta(minutes=5))):
        await conn.execute(
            "INSERT INTO auth_failures (scope, key, failures, window_started_at) VALUES ('login', $1, 3, $2)",
            key, started,
        )

    async def run(dry_run: bool) -> int:
        report = await gc.collect(
            conn, store=store, spool=await open_spool(settings), upload_area=upload_area(settings.data_dir),
            now=now, grace_s=3600, dry_run=dry_run, throttle_window_s=900,
        )
        return report.stale_throttle_counters

    assert await run(dry_run=True) == 1
    assert await conn.fetchval("SELECT count(*) FROM auth_failures") == 2
    assert await run(dry_run=False) == 1
    assert [r["key"] for r in await conn.fetch("SELECT key FROM auth_failures")] == ["live"]
