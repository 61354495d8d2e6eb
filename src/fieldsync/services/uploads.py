"""Resumable uploads (tus 1.0.0): create, report the offset, append a chunk, terminate, expire.

An upload is a row (``uploads``: owner, length, offset, the declared sha256 and content type,
expiry) plus a part file (``storage.uploads``). Its life:

    create ─▶ PATCH chunk … PATCH chunk ─(last byte)─▶ store_media ─▶ completed (row kept, file gone)
      │            │ checksum mismatch: chunk dropped, offset unchanged (460)
      │            │ client vanished mid-chunk: the bytes that arrived are kept (no checksum sent)
      └─ DELETE / expiry (fieldsync gc) ─▶ row and file removed

Rules this module keeps:

- Only the creating user sees an upload; anyone else gets ``upload.not_found`` (404), and an
  upload past ``expires_at`` answers ``upload.expired`` (410). A PATCH slides the expiry forward.
- Every write, the finish and the termination run under the upload's lock
  (``storage.uploads.UploadArea.locked``, a file lock), so two PATCHes to one upload never
  interleave; the loser waits briefly, then gets ``upload.locked`` (409), which tus clients
  answer by re-reading the offset. No database connection is held while a body streams: a
  PATCH gives the request's connection back after reading the upload and takes one again to
  store the new offset (``Connections``). Each use case here owns its short statements, and
  the offset is stored only after the bytes it counts were fsynced.
- The last byte makes the upload go through ``services.media.store_media``, the very checks of
  ``PUT /v1/media/{sha256}`` (hash against the declared sha256, decoded type against the
  declared one, pixel limit). A failed check discards the upload and answers that check's
  problem. A store outage (503) or a full disk (507) leaves the offset before the last chunk, so
  the client's retry resends it and the finish runs again; ``store_media`` is idempotent per hash.
- A chunk that would eat into the disk reserve is refused (507) before its body is read.
- The offset never reaches the length before the media object exists, so a completed upload
  (HEAD shows offset = length) always means a stored, committed media object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Protocol

import anyio
import asyncpg

from fieldsync import errors
from fieldsync.db import uploads as q
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal
from fieldsync.ports import MediaStore
from fieldsync.services import media
from fieldsync.storage.uploads import PartBusy, PartMissing, PartWriter, UploadArea

LOCK_WAIT_S = 2.0
STALE_PART_S = 3600


class Connections(Protocol):
    """The request's database connection, which a long body must not hold."""

    async def acquire(self) -> asyncpg.Connection:
        """The request's connection, taken from the pool again if it was given back."""
        ...

    async def release(self) -> None:
        """Give the connection back to the pool until the next ``acquire``."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Checksum:
    """An ``Upload-Checksum``: the algorithm (a ``hashlib`` name) and the expected digest."""

    algorithm: str
    digest: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Declared:
    """What the client's ``Upload-Metadata`` declares about the whole file."""

    metadata: str
    sha256: str
    content_type: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadState:
    id: uuid.UUID
    length: int
    offset: int
    metadata: str
    sha256: str
    content_type: str
    expires_at: dt.datetime
    completed: bool


def state_of(row: asyncpg.Record) -> UploadState:
    return UploadState(
        id=row["id"], length=row["upload_length"], offset=row["upload_offset"], metadata=row["metadata"],
        sha256=row["sha256"], content_type=row["content_type"], expires_at=row["expires_at"],
        completed=row["completed_at"] is not None,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Chunk:
    """What the client says about the body it sends: where it starts, how long, its checksum."""

    offset: int
    content_length: int | None
    checksum: Checksum | None


@dataclasses.dataclass(frozen=True, slots=True)
class Appended:
    upload: UploadState
    media: media.MediaRecord | None = None  # set by the chunk that completed the upload
    created: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class _FinishedPart:
    """A whole part file, shaped as ``services.media.Staged``."""

    path: Path
    size: int
    sha256: str


async def create_upload(
    conn: asyncpg.Connection,
    actor: Principal,
    *,
    area: UploadArea,
    length: int,
    declared: Declared,
    max_bytes: int,
    now: dt.datetime,
    ttl_s: int,
) -> UploadState:
    """A new, empty upload of ``length`` bytes of the declared file."""
    if length > max_bytes:
        raise errors.MediaTooLarge(f"Upload-Length {length} is over the limit of {max_bytes} bytes", limit=max_bytes)
    content_type = media.normalized_content_type(declared.content_type)
    upload_id = uuid.uuid4()
    await area.create(upload_id)
    try:
        async with transaction(conn):
            row = await q.insert_upload(
                conn, upload_id=upload_id, user_id=actor.user_id, device_id=actor.device_id, length=length,
                metadata=declared.metadata, sha256=declared.sha256, content_type=content_type, now=now,
                expires_at=now + dt.timedelta(seconds=ttl_s),
            )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await area.remove(upload_id)
        raise
    return state_of(row)


async def get_upload(
    conn: asyncpg.Connection, actor: Principal, upload_id: uuid.UUID, *, now: dt.datetime
) -> UploadState:
    """The caller's own, unexpired upload; ``upload.not_found`` / ``upload.expired`` otherwise."""
    row = await q.get_upload(conn, upload_id)
    if row is None or row["user_id"] != actor.user_id:
        raise errors.UploadNotFound()
    if row["expires_at"] <= now:
        raise errors.UploadExpired(f"the upload expired at {row['expires_at'].isoformat()}")
    return state_of(row)


async def append_chunk(
    db: Connections,
    actor: Principal,
    upload_id: uuid.UUID,
    *,
    area: UploadArea,
    body: AsyncIterable[bytes],
    chunk: Chunk,
    store: MediaStore,
    max_pixels: int,
    now: dt.datetime,
    ttl_s: int,
) -> Appended:
    """Write one chunk at the upload's offset; the chunk with the last byte finishes the upload."""
    state = _check_chunk(await get_upload(await db.acquire(), actor, upload_id, now=now), chunk)
    if state.completed:
        return Appended(state)
    async with _locked(area, upload_id):
        state = _check_chunk(await get_upload(await db.acquire(), actor, upload_id, now=now), chunk)
        if state.completed:
            return Appended(state)
        remaining = state.length - state.offset
        area.ensure_room(min(remaining, chunk.content_length if chunk.content_length is not None else remaining))
        expires_at = now + dt.timedelta(seconds=ttl_s)
        algorithm = chunk.checksum.algorithm if chunk.checksum else None
        await db.release()  # the body may take minutes: the pool lends the connection meanwhile
        try:
            async with area.writer(upload_id, offset=state.offset, algorithm=algorithm) as part:
                end = await _receive(db, part, body, upload_id, remaining, chunk.checksum, expires_at)
        except PartMissing:
            await _discard(await db.acquire(), area, upload_id)
            raise errors.UploadExpired("the upload's bytes are no longer on the server; create a new one") from None
        if end < state.length:
            row = await q.mark_offset(await db.acquire(), upload_id=upload_id, offset=end, expires_at=expires_at)
            assert row is not None
            return Appended(state_of(row))
        return await _finish(db, actor, state, area=area, store=store, max_pixels=max_pixels, now=now)


def _check_chunk(state: UploadState, chunk: Chunk) -> UploadState:
    """The chunk starts at the upload's offset and fits in what remains."""
    if chunk.offset != state.offset:
        raise errors.UploadOffsetMismatch(
            f"Upload-Offset is {chunk.offset} but the upload is at {state.offset}", offset=state.offset
        )
    remaining = state.length - state.offset
    if chunk.content_length is not None and chunk.content_length > remaining:
        raise errors.UploadLengthExceeded(f"{remaining} bytes remain, the chunk announces {chunk.content_length}")
    return state


async def _receive(
    db: Connections,
    part: PartWriter,
    body: AsyncIterable[bytes],
    upload_id: uuid.UUID,
    remaining: int,
    checksum: Checksum | None,
    expires_at: dt.datetime,
) -> int:
    """Stream the body into the part file; returns the new end offset, fsynced."""
    try:
        async for data in body:
            if part.received + len(data) > remaining:
                raise errors.UploadLengthExceeded(f"the chunk goes past Upload-Length ({remaining} bytes remained)")
            await part.write(data)
    except errors.UploadInterrupted:
        with anyio.CancelScope(shield=True):
            if checksum is not None:  # a partial chunk cannot be verified: none of it counts
                await part.rollback()
            elif 0 < part.received < remaining:
                end = await part.commit()  # tus: the bytes that arrived are kept
                await q.mark_offset(await db.acquire(), upload_id=upload_id, offset=end, expires_at=expires_at)
            else:
                await part.rollback()  # a complete body without its end-of-request is not trusted to finish
        raise
    except BaseException:
        with anyio.CancelScope(shield=True):
            await part.rollback()
        raise
    if checksum is not None and await part.chunk_digest() != checksum.digest:
        await part.rollback()
        raise errors.UploadChecksumMismatch(
            f"the chunk's {checksum.algorithm} differs from Upload-Checksum; it was discarded, the offset is still "
            f"{part.offset}",
            offset=part.offset,
        )
    return await part.commit()


async def _finish(
    db: Connections,
    actor: Principal,
    state: UploadState,
    *,
    area: UploadArea,
    store: MediaStore,
    max_pixels: int,
    now: dt.datetime,
) -> Appended:
    """The last byte arrived: the whole file goes through ``PUT /v1/media``'s checks and into the
    store with no pooled connection held (decoding and storing take seconds), then it is marked
    complete."""
    await db.release()
    finished = _FinishedPart(area.path(state.id), state.length, await area.sha256(state.id))
    try:
        record, created = await media.store_media(
            db.acquire, actor, staged=finished, expected_sha256=state.sha256, declared_type=state.content_type,
            store=store, max_pixels=max_pixels, now=now,
        )
    except (errors.Unavailable, errors.InsufficientStorage):
        raise  # the offset stays before the last chunk: the client's retry finishes it
    except errors.FieldsyncError:
        with anyio.CancelScope(shield=True):
            await _discard(await db.acquire(), area, state.id)
        raise
    conn = await db.acquire()
    row = await q.mark_completed(conn, upload_id=state.id, now=now)
    await area.remove(state.id)
    assert row is not None
    return Appended(state_of(row), record, created)


async def terminate_upload(
    conn: asyncpg.Connection, actor: Principal, upload_id: uuid.UUID, *, area: UploadArea, now: dt.datetime
) -> None:
    """tus termination: the row and the bytes go; a media object already made stays."""
    await get_upload(conn, actor, upload_id, now=now)
    async with _locked(area, upload_id):
        await get_upload(conn, actor, upload_id, now=now)
        await _discard(conn, area, upload_id)


async def remove_expired(conn: asyncpg.Connection, *, area: UploadArea, now: dt.datetime, dry_run: bool) -> int:
    """Remove uploads past ``expires_at`` (rows and part files); returns how many (would) go.

    An upload some request is writing right now holds its lock and is skipped: it is being used.
    """
    removed = 0
    for upload_id in await q.list_expired(conn, now=now):
        if dry_run:
            removed += 1
            continue
        try:
            async with area.locked(upload_id, wait_s=0):
                if await q.delete_upload_if_expired(conn, upload_id=upload_id, now=now):
                    await area.remove(upload_id)
                    removed += 1
        except PartBusy:
            continue
    return removed


async def remove_stale_parts(conn: asyncpg.Connection, *, area: UploadArea, dry_run: bool) -> int:
    """Part files without a row, untouched for an hour (a crash between file and row)."""
    candidates = await area.list_stale(older_than_s=STALE_PART_S)
    if not candidates:
        return 0
    known = await q.known_upload_ids(conn, candidates)
    stale = [upload_id for upload_id in candidates if upload_id not in known]
    if not dry_run:
        for upload_id in stale:
            await area.remove(upload_id)
    return len(stale)


async def _discard(conn: asyncpg.Connection, area: UploadArea, upload_id: uuid.UUID) -> None:
    await q.delete_upload(conn, upload_id)
    await area.remove(upload_id)


@contextlib.asynccontextmanager
async def _locked(area: UploadArea, upload_id: uuid.UUID) -> AsyncIterator[None]:
    try:
        async with area.locked(upload_id, wait_s=LOCK_WAIT_S):
            yield
    except PartBusy:
        raise errors.UploadLocked("another request is writing to this upload; read its offset and retry") from None
