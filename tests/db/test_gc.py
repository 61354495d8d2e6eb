"""Garbage collection removes unreferenced media past grace and never a referenced object."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid

import pytest

from fieldsync.services import gc
from fieldsync.storage import keys, open_media_store, open_spool
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
        conn, store=store, spool=await open_spool(settings), now=now, grace_s=3600, dry_run=dry_run
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
