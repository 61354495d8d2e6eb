"""Resumable uploads (tus 1.0.0): create, report the offset, append a chunk, terminate, expire.

An upload is a row (``uploads``: owner, length, offset, the declared sha256 and content type,
expiry, its lease, where its bytes are) plus its bytes in an ``UploadArea`` (``ports``): part
files on this host beside a filesystem media store (``storage.uploads``), S3 multipart parts and
tail pieces beside an S3 one (``storage.multipart``), so that any replica serves any PATCH. Its
life:

    create ─▶ PATCH chunk … PATCH chunk ─(last byte)─▶ store_media ─▶ completed (row kept, bytes gone)
      │            │ checksum mismatch: chunk dropped, offset unchanged (460)
      │            │ client vanished mid-chunk: the bytes that arrived are kept (no checksum sent)
      └─ DELETE / expiry (fieldsync gc) ─▶ row and bytes removed

Rules this module keeps:

- Only the creating user sees an upload; anyone else gets ``upload.not_found`` (404), and an
  upload past ``expires_at`` answers ``upload.expired`` (410). A PATCH slides the expiry forward.
- Every write, the finish and the termination run under the upload's lease
  (``services.upload_leases``: a token and an expiry on the row, renewed while the request
  works), so two PATCHes to one upload never interleave, on one replica or several; the loser
  waits briefly, then gets ``upload.locked`` (409), which tus clients answer by re-reading the
  offset. No database connection is held while a body streams: a PATCH gives the request's
  connection back after taking the lease and takes one again to record its progress
  (``Connections``). The offset is recorded only after the bytes it counts are durable (fsynced,
  or acknowledged by S3), and only by the lease's holder.
- The last byte makes the upload go through ``services.media.store_media``, the very checks of
  ``PUT /v1/media/{sha256}`` (hash against the declared sha256, decoded type against the
  declared one, pixel limit), on a local file (the part file, or the S3 bytes read back into the
  spool). A failed check discards the upload and answers that check's problem. A store outage
  (503) or a full disk (507) leaves the offset before the last chunk (or where S3's completed
  multipart object ends), so the client's retry resends what is missing and the finish runs
  again; ``store_media`` is idempotent per hash.
- A chunk that would eat into the disk reserve is refused (507) before its body is read.
- The offset never reaches the length before the media object exists, so a completed upload
  (HEAD shows offset = length) always means a stored, committed media object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import Any

import anyio
import asyncpg

from fieldsync import errors
from fieldsync.db import uploads as q
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal
from fieldsync.ports import ChunkWriter, MediaStore, Multipart, PartMissing, Progress, Segment, UploadArea, UploadBytes
from fieldsync.services import media, upload_leases
from fieldsync.services.upload_leases import Connections, Lease

STALE_PART_S = 3600
LEASE_S = 20.0


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
    stored: UploadBytes


def _segment(value: dict[str, Any]) -> Segment:
    return Segment(first_byte=int(value["first_byte"]), size=int(value["size"]), part_number=value.get("part_number"),
                   etag=value.get("etag"), key=value.get("key"))


def state_of(row: asyncpg.Record) -> UploadState:
    multipart = Multipart(row["multipart_key"], row["multipart_id"]) if row["multipart_id"] is not None else None
    stored = UploadBytes(id=row["id"], length=row["upload_length"], offset=row["upload_offset"], multipart=multipart,
                         segments=tuple(_segment(value) for value in row["segments"]))
    return UploadState(
        id=row["id"], length=row["upload_length"], offset=row["upload_offset"], metadata=row["metadata"],
        sha256=row["sha256"], content_type=row["content_type"], expires_at=row["expires_at"],
        completed=row["completed_at"] is not None, stored=stored,
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
    return _visible(await q.get_upload(conn, upload_id), actor, now)


def _visible(row: asyncpg.Record | None, actor: Principal, now: dt.datetime) -> UploadState:
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
    lease_s: float = LEASE_S,
) -> Appended:
    """Write one chunk at the upload's offset; the chunk with the last byte finishes the upload."""
    state = _check_chunk(await get_upload(await db.acquire(), actor, upload_id, now=now), chunk)
    if state.completed:
        return Appended(state)
    async with _leased(db, actor, upload_id, now=now, lease_s=lease_s) as (lease, state):
        state = _check_chunk(state, chunk)
        if state.completed:
            return Appended(state)
        remaining = state.length - state.offset
        area.ensure_room(min(remaining, chunk.content_length if chunk.content_length is not None else remaining))
        await db.release()  # the body may take minutes: the pool lends the connection meanwhile
        job = _Job(db, lease, actor, state, area, now + dt.timedelta(seconds=ttl_s))
        try:
            async with lease.kept_alive():
                return await job.run(body, chunk.checksum, store=store, max_pixels=max_pixels, now=now)
        except PartMissing:
            with anyio.CancelScope(shield=True):
                await _discard(await db.acquire(), area, upload_id)
            raise errors.UploadExpired("the upload's bytes are no longer on the server; create a new one") from None


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


@dataclasses.dataclass(slots=True)
class _Job:
    """One chunk under the upload's lease: stream it into the area, record it, maybe finish."""

    db: Connections
    lease: Lease
    actor: Principal
    state: UploadState
    area: UploadArea
    expires_at: dt.datetime

    async def run(
        self, body: AsyncIterable[bytes], checksum: Checksum | None, *, store: MediaStore, max_pixels: int,
        now: dt.datetime,
    ) -> Appended:
        algorithm = checksum.algorithm if checksum else None
        async with self.area.writer(self.state.stored, algorithm=algorithm,
                                    allocate_part=self.lease.allocate_part) as part:
            await self._receive(part, body, checksum)
            if self.state.offset + part.received < self.state.length:
                return Appended(await self._record(part, part.commit()))
            return await self._finish(part, store=store, max_pixels=max_pixels, now=now)

    async def _receive(self, part: ChunkWriter, body: AsyncIterable[bytes], checksum: Checksum | None) -> None:
        """Stream the body into the writer and check its checksum; a chunk cut off without one
        keeps the bytes that arrived (recorded here), anything else that fails keeps nothing."""
        remaining = self.state.length - self.state.offset
        try:
            async for data in body:
                if part.received + len(data) > remaining:
                    raise errors.UploadLengthExceeded(f"the chunk goes past Upload-Length ({remaining} bytes remained)")
                await part.write(data)
        except errors.UploadInterrupted:
            with anyio.CancelScope(shield=True):
                if checksum is None and 0 < part.received < remaining:
                    await self._record(part, part.commit())  # tus: the bytes that arrived are kept
                else:
                    await part.rollback()  # unverifiable, or a whole body without its end: not trusted
            raise
        except BaseException:
            with anyio.CancelScope(shield=True):
                await part.rollback()
            raise
        if checksum is not None and await part.chunk_digest() != checksum.digest:
            await part.rollback()
            raise errors.UploadChecksumMismatch(
                f"the chunk's {checksum.algorithm} differs from Upload-Checksum; it was discarded, the offset is "
                f"still {self.state.offset}",
                offset=self.state.offset,
            )

    async def _record(self, part: ChunkWriter, durable: Awaitable[Progress]) -> UploadState:
        """Make the writer's bytes durable and record them under the lease; nothing counts (and
        the writer rolls back) if either fails."""
        try:
            progress = await durable
            row = await q.record_progress(
                await self.db.acquire(), upload_id=self.state.id, token=self.lease.token,
                previous_offset=self.state.offset, progress=progress, expires_at=self.expires_at,
            )
            if row is None:
                raise errors.UploadLocked("another request took over this upload; read its offset and retry")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await part.rollback()
            raise
        await part.recorded()
        self.state = state_of(row)
        return self.state

    async def _finish(self, part: ChunkWriter, *, store: MediaStore, max_pixels: int, now: dt.datetime) -> Appended:
        """The last byte arrived: what cannot be undone is recorded first (S3's completed
        multipart upload), then the whole file goes through ``PUT /v1/media``'s checks and into
        the store with no pooled connection held (decoding and storing take seconds), then the
        upload is marked complete and its bytes go."""
        try:
            sealed = await part.seal()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await part.rollback()
            raise
        if sealed is not None:
            await self._record(part, _ready(sealed))
        await self.db.release()
        async with part.whole() as whole:
            try:
                kept = await media.store_media(
                    self.db.acquire, self.actor, staged=whole, expected_sha256=self.state.sha256,
                    declared_type=self.state.content_type, store=store, max_pixels=max_pixels, now=now,
                )
            except (errors.Unavailable, errors.InsufficientStorage):
                raise  # the offset stays before the last chunk: the client's retry finishes it
            except errors.FieldsyncError:
                with anyio.CancelScope(shield=True):
                    await _discard(await self.db.acquire(), self.area, self.state.id)
                raise
        row = await q.mark_completed(await self.db.acquire(), upload_id=self.state.id, now=now)
        assert row is not None
        with contextlib.suppress(errors.Unavailable):  # what is left, gc finds (``remove_stale_parts``)
            await self.area.remove(self.state.id)
        return Appended(state_of(row), kept.record, kept.created or kept.queued)


async def _ready(progress: Progress) -> Progress:
    return progress


async def terminate_upload(
    db: Connections, actor: Principal, upload_id: uuid.UUID, *, area: UploadArea, now: dt.datetime,
    lease_s: float = LEASE_S,
) -> None:
    """tus termination: the row and the bytes go; a media object already made stays."""
    await get_upload(await db.acquire(), actor, upload_id, now=now)
    async with _leased(db, actor, upload_id, now=now, lease_s=lease_s):
        await _discard(await db.acquire(), area, upload_id)


async def remove_expired(conn: asyncpg.Connection, *, area: UploadArea, now: dt.datetime, dry_run: bool) -> int:
    """Remove uploads past ``expires_at`` (rows and bytes); returns how many (would) go.

    An upload some request holds the lease of is skipped: it is being used.
    """
    removed = 0
    for upload_id in await q.list_expired(conn, now=now):
        if dry_run:
            removed += 1
        elif await q.delete_upload_if_expired(conn, upload_id=upload_id, now=now):
            await area.remove(upload_id)
            removed += 1
    return removed


async def remove_stale_parts(conn: asyncpg.Connection, *, area: UploadArea, dry_run: bool) -> int:
    """Bytes of uploads that have no unfinished row, untouched for an hour: a crash between the
    bytes and the row, or after a row went and before its bytes did (S3: pieces and multipart
    uploads, aborted here)."""
    candidates = await area.stale(older_than_s=STALE_PART_S)
    if not candidates:
        return 0
    known = await q.unfinished_upload_ids(conn, candidates)
    stale = [upload_id for upload_id in candidates if upload_id not in known]
    if not dry_run:
        for upload_id in stale:
            await area.remove(upload_id)
    return len(stale)


async def _discard(conn: asyncpg.Connection, area: UploadArea, upload_id: uuid.UUID) -> None:
    await q.delete_upload(conn, upload_id)
    await area.remove(upload_id)


@contextlib.asynccontextmanager
async def _leased(
    db: Connections, actor: Principal, upload_id: uuid.UUID, *, now: dt.datetime, lease_s: float
) -> AsyncIterator[tuple[Lease, UploadState]]:
    """Hold the upload's lease around the block, with the upload as it is under it."""
    taken = await upload_leases.take(db, upload_id, lease_s=lease_s)
    if taken is None:
        raise errors.UploadNotFound()
    lease, row = taken
    try:
        yield lease, _visible(row, actor, now)
    finally:
        await upload_leases.give_back(lease)
