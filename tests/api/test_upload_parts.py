"""Where an unfinished upload's bytes live and who may write them: S3 multipart parts and tail
pieces (files larger than a part, a checksum failure across a part boundary, a store outage
after the multipart upload completed, gc), and the lease on the row (a dead holder's lease runs
out; a long body keeps its lease by renewing it; a writer that lost its lease records nothing). The tus protocol itself is
tests/api/test_uploads.py, run over both upload areas. Budget: about 20 s."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from fieldsync import errors
from fieldsync.app import create_app
from fieldsync.services import media, upload_leases
from fieldsync.services import uploads as upload_service
from fieldsync.settings import Settings
from fieldsync.storage.multipart import PART_SIZE
from tests import images
from tests.api.test_uploads import (
    BOTH_STORES,
    CHUNK,
    TUS,
    checksum,
    created_url,
    held_bytes,
    leftovers,
    offset_of,
    original_of,
    send,
)
from tests.conftest import running
from tests.support import Actor, MutableClock, make_user, problem

CHUNK_SIZE = 512 * 1024


@pytest.fixture
def store_kind() -> str:
    return "s3"


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path, store_kind: str) -> Settings:
    media_settings = (request.getfixturevalue("s3_settings_overrides") if store_kind == "s3"
                      else {"media_url": f"file://{tmp_path / 'media'}"})
    return Settings.from_env({}, data_dir=tmp_path / "data", database_url=database_url, log_json=False,
                             **media_settings)


@pytest.fixture
async def inspector(conn: asyncpg.Connection, clock: MutableClock) -> Actor:
    return await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())


async def recorded(conn: asyncpg.Connection, url: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT upload_offset, multipart_id, segments FROM uploads WHERE id = $1", uuid.UUID(url.rsplit("/", 1)[1])
    )
    assert row is not None
    return row


def check_layout(row: asyncpg.Record) -> tuple[int, int]:
    """The row's segments are parts then pieces, contiguous from 0 to the offset, parts at
    least PART_SIZE and the pieces together less; returns (parts, pieces)."""
    end, parts, pieces = 0, 0, 0
    for segment in row["segments"]:
        assert segment["first_byte"] == end, row["segments"]
        end += segment["size"]
        if segment["part_number"] is not None:
            assert pieces == 0 and segment["size"] >= PART_SIZE, row["segments"]
            parts += 1
        else:
            pieces += segment["size"]
    assert end == row["upload_offset"]
    assert pieces < PART_SIZE
    assert (row["multipart_id"] is not None) == (parts > 0)
    return parts, pieces


async def test_a_file_larger_than_a_part_goes_up_in_parts_and_comes_back_whole_through_a_failed_checksum(
    client: httpx.AsyncClient, app: Litestar, conn: asyncpg.Connection, inspector: Actor
) -> None:
    photo = images.noise_png(1900, 1900, seed=7)
    assert len(photo) > 2 * PART_SIZE
    url = await created_url(client, inspector, photo, content_type="image/png")
    offset, most_parts, corrupted_once = 0, 0, False
    while offset < len(photo):
        chunk = photo[offset:offset + CHUNK_SIZE]
        before = await recorded(conn, url)
        if not corrupted_once and offset + len(chunk) >= PART_SIZE:  # this chunk makes the first part
            response = await send(client, inspector, url, b"\x00" + chunk[1:], offset,
                                  **{"Upload-Checksum": checksum("sha256", chunk)})
            assert response.status_code == 460, response.text
            assert await recorded(conn, url) == before, "a chunk that failed its checksum records nothing"
            assert await held_bytes(app, conn, url) == photo[:offset]
            corrupted_once = True
        response = await send(client, inspector, url, chunk, offset, **{"Upload-Checksum": checksum("sha1", chunk)})
        assert response.status_code == 204, response.text
        offset += len(chunk)
        assert int(response.headers["upload-offset"]) == offset
        if offset < len(photo):
            assert await offset_of(client, inspector, url) == offset
            parts, _ = check_layout(await recorded(conn, url))
            most_parts = max(most_parts, parts)
    assert corrupted_once and most_parts == 2
    assert response.headers["fieldsync-media-sha256"] == images.sha256(photo)
    assert await original_of(client, inspector, images.sha256(photo)) == photo
    assert await leftovers(app) == [], "the multipart upload, its object and the pieces are gone"


async def test_a_store_outage_after_the_multipart_upload_completed_is_finished_by_the_retry(
    client: httpx.AsyncClient, app: Litestar, conn: asyncpg.Connection, inspector: Actor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    photo = images.noise_png(1400, 1400, seed=8)
    first = PART_SIZE + 300_000
    assert len(photo) > first
    url = await created_url(client, inspector, photo, content_type="image/png")
    assert (await send(client, inspector, url, photo[:first], 0)).status_code == 204
    assert check_layout(await recorded(conn, url))[0] == 1

    real = media.store_media
    calls = 0

    async def store_outage_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise errors.DependencyUnavailable("media store (S3): SlowDown", dependency="media_store")
        return await real(*args, **kwargs)

    monkeypatch.setattr(media, "store_media", store_outage_once)
    failed = await send(client, inspector, url, photo[first:], first)
    assert failed.status_code == 503
    row = await recorded(conn, url)
    assert row["upload_offset"] == first and row["multipart_id"] is None, "completed: the parts are one object now"
    whole = row["segments"][0]
    assert (whole["first_byte"], whole["part_number"]) == (0, None) and "/whole-" in whole["key"]
    assert sum(segment["size"] for segment in row["segments"]) == first

    retried = await send(client, inspector, url, photo[first:], first)
    assert retried.status_code == 204, retried.text
    assert retried.headers["fieldsync-media-sha256"] == images.sha256(photo)
    assert await original_of(client, inspector, images.sha256(photo)) == photo
    assert await leftovers(app) == []


async def test_gc_removes_expired_uploads_and_bytes_without_a_row_from_s3(
    client: httpx.AsyncClient, app: Litestar, conn: asyncpg.Connection, inspector: Actor, settings: Settings,
    clock: MutableClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = bytes(range(256)) * (PART_SIZE // 128)  # 10 MiB that never get finished
    abandoned = await created_url(client, inspector, data)
    assert (await send(client, inspector, abandoned, data[:PART_SIZE + 1000], 0)).status_code == 204
    assert check_layout(await recorded(conn, abandoned))[0] == 1
    clock.advance(hours=1)
    kept = await created_url(client, inspector, data)
    assert (await send(client, inspector, kept, data[:1000], 0)).status_code == 204
    # A replica that crashed after its row went (terminated elsewhere) but before its bytes did:
    orphan = await created_url(client, inspector, data)
    assert (await send(client, inspector, orphan, data[:PART_SIZE + 5], 0)).status_code == 204
    await conn.execute("DELETE FROM uploads WHERE id = $1", uuid.UUID(orphan.rsplit("/", 1)[1]))
    assert {name.split("/")[1] for name in await leftovers(app)} == {
        uuid.UUID(url.rsplit("/", 1)[1]).hex for url in (abandoned, kept, orphan)}

    area = app.state.runtime.uploads
    past_first_expiry = clock.now() + dt.timedelta(seconds=settings.upload_expiry_s) - dt.timedelta(minutes=30)
    monkeypatch.setattr(upload_service, "STALE_PART_S", 0)
    assert await upload_service.remove_expired(conn, area=area, now=past_first_expiry, dry_run=False) == 1
    assert await upload_service.remove_stale_parts(conn, area=area, dry_run=False) == 1
    assert {name.split("/")[1] for name in await leftovers(app)} == {uuid.UUID(kept.rsplit("/", 1)[1]).hex}
    assert not any(name.startswith("multipart") for name in await leftovers(app))


async def test_a_lease_left_by_a_dead_request_runs_out_and_the_next_patch_takes_over(
    client: httpx.AsyncClient, conn: asyncpg.Connection, inspector: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_leases, "LOCK_WAIT_S", 0.2)
    photo = images.jpeg(320, 240, seed=3)
    url = await created_url(client, inspector, photo)
    await conn.execute(  # what a replica killed mid-PATCH leaves: its lease, renewed a moment ago
        "UPDATE uploads SET lease_token = gen_random_uuid(), lease_until = clock_timestamp() + interval '1 second'"
    )
    locked = await send(client, inspector, url, photo, 0)
    assert locked.status_code == 409 and problem(locked)["code"] == "upload.locked"
    await asyncio.sleep(1.1)
    resumed = await send(client, inspector, url, photo, 0)
    assert resumed.status_code == 204, resumed.text
    assert resumed.headers["fieldsync-media-sha256"] == images.sha256(photo)
    assert await conn.fetchval("SELECT lease_token FROM uploads") is None, "the lease was given back"


@BOTH_STORES
async def test_a_writer_whose_lease_was_taken_over_records_nothing(
    client: httpx.AsyncClient, app: Litestar, conn: asyncpg.Connection, inspector: Actor
) -> None:
    photo = images.jpeg(640, 480, seed=4)
    url = await created_url(client, inspector, photo)
    assert (await send(client, inspector, url, photo[:1000], 0)).status_code == 204
    leftovers_before = await leftovers(app)
    mid_body, gate = asyncio.Event(), asyncio.Event()

    async def stalled_body() -> AsyncIterator[bytes]:
        yield photo[1000:3000]
        mid_body.set()
        await gate.wait()
        yield photo[3000:5000]

    headers = {**inspector.headers, **TUS, **CHUNK, "Upload-Offset": "1000", "Content-Length": "4000"}
    stalled = asyncio.create_task(client.patch(url, content=stalled_body(), headers=headers))
    await mid_body.wait()
    await conn.execute(  # it stalled past its lease, which another replica took
        "UPDATE uploads SET lease_token = gen_random_uuid(), lease_until = clock_timestamp() + interval '1 minute'"
    )
    gate.set()
    response = await stalled
    assert response.status_code == 409 and problem(response)["code"] == "upload.locked"
    assert (await recorded(conn, url))["upload_offset"] == 1000
    assert await held_bytes(app, conn, url) == photo[:1000]
    assert await leftovers(app) == leftovers_before, "what the writer put up is removed again"


async def test_a_patch_that_streams_longer_than_its_lease_keeps_it_by_renewing(
    settings: Settings, clock: MutableClock, inspector: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body that takes three lease periods keeps the upload: the lease is renewed while it
    streams, so a rival PATCH meanwhile is refused, and the slow one completes."""
    monkeypatch.setattr(upload_leases, "LOCK_WAIT_S", 0.2)
    app = create_app(dataclasses.replace(settings, upload_lease_s=1), clock=clock)
    photo = images.jpeg(320, 240, seed=5)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
            url = await created_url(client, inspector, photo)

            async def slow_body() -> AsyncIterator[bytes]:
                for piece in range(0, len(photo), len(photo) // 6 + 1):
                    yield photo[piece:piece + len(photo) // 6 + 1]
                    await asyncio.sleep(0.5)

            headers = {**inspector.headers, **TUS, **CHUNK, "Upload-Offset": "0", "Content-Length": str(len(photo))}
            slow = asyncio.create_task(client.patch(url, content=slow_body(), headers=headers))
            await asyncio.sleep(2.0)
            rival = await send(client, inspector, url, photo, 0)
            finished = await slow
    assert rival.status_code == 409 and problem(rival)["code"] == "upload.locked"
    assert finished.status_code == 204, finished.text
    assert finished.headers["fieldsync-media-sha256"] == images.sha256(photo)
