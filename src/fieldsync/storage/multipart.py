"""Partial tus uploads in S3 (the ``UploadArea`` beside an S3 media store): any replica can take
any PATCH, because no byte of an unfinished upload lives on a replica's disk between requests.

Shape (after tusd's s3store; docs/decisions/0016-upload-parts-in-the-object-store.md):

    uploads/<id>/whole-<rand>           the upload's S3 multipart upload; its parts are ≥ PART_SIZE
    uploads/<id>/piece-<first>-<rand>   a piece of the tail: the bytes of a chunk that were too
                                        few to be a part, an object of their own

The row (``ports.UploadBytes``) lists the recorded segments, parts first, then pieces, contiguous
from byte 0 to the offset. A writer:

- buffers the chunk's bytes in a local file of the spool (memory: one buffer, whatever the
  chunk); once the recorded pieces and the buffer hold ``PART_SIZE`` and more bytes of the
  upload are still to come, they go up as the next part (the pieces are fetched back for it);
- on ``commit`` puts what is buffered as a new piece, and reports the segments for the caller to
  record (fenced by the upload's lease); replaced pieces are deleted only once that is recorded;
- never overwrites anything: pieces have fresh keys and part numbers come from the caller's
  allocator (a counter on the row), so a writer that lost its lease can only leave garbage that
  no row names, never change bytes that a row counts;
- after the last byte (``seal``) completes the multipart upload with the recorded parts and its
  own (all but the last part of a file stay in the buffer and the pieces), then ``whole`` reads
  the completed object, the pieces and the buffer into one spool file, hashing as it goes, for
  ``PUT /v1/media``'s checks. Most photos are smaller than a part and never start a multipart.

Garbage (pieces of failed chunks, parts no completion lists, uploads whose row went) is removed
with the upload (``remove``: every object under ``uploads/<id>/`` and every multipart upload
there) or, for an upload without a row, by ``fieldsync gc`` through ``stale``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, BinaryIO, TypeVar

import anyio.to_thread
from minio.datatypes import Part
from minio.error import S3Error

from fieldsync.errors import DependencyUnavailable
from fieldsync.ports import AllocatePart, Multipart, PartMissing, Progress, Segment, UploadBytes
from fieldsync.storage._files import BUFFER_SIZE, BufferedWriter
from fieldsync.storage.s3 import S3MediaStore
from fieldsync.storage.spool import Spool, StagedFile

PREFIX = "uploads/"
PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
READ_SIZE = 1024 * 1024
_GONE = frozenset({"NoSuchKey", "NoSuchUpload", "NoSuchObject"})

T = TypeVar("T")


def _gone(func: Callable[[], T]) -> Callable[[], T]:
    """A recorded piece or multipart upload the server no longer has is ``PartMissing``."""

    def call() -> T:
        try:
            return func()
        except S3Error as exc:
            if exc.code in _GONE:
                raise PartMissing(exc.code) from exc
            raise

    return call


def _upload_prefix(upload_id: uuid.UUID) -> str:
    return f"{PREFIX}{upload_id.hex}/"


class S3UploadArea:
    """``ports.UploadArea`` in the media store's bucket, under ``uploads/``."""

    def __init__(self, store: S3MediaStore, spool: Spool, *, part_size: int = PART_SIZE) -> None:
        self.store = store
        self.spool = spool
        self.part_size = part_size

    def __repr__(self) -> str:
        return f"S3UploadArea({self.store!r})"

    def ensure_room(self, incoming: int) -> None:
        """A chunk passes through the spool on its way to S3, and the finish reads the whole file
        back into it: the spool's disk reserve applies."""
        self.spool.ensure_room(incoming)

    async def create(self, upload_id: uuid.UUID) -> None:
        return None  # S3 needs no room made: the first chunk's bytes make it

    @contextlib.asynccontextmanager
    async def writer(
        self, upload: UploadBytes, *, algorithm: str | None, allocate_part: AllocatePart
    ) -> AsyncIterator[MultipartWriter]:
        if sum(segment.size for segment in upload.segments) != upload.offset:
            raise PartMissing(f"the recorded segments of {upload.id} do not hold its {upload.offset} bytes")
        path = self.spool.directory / f"{uuid.uuid4().hex}.part"
        handle = await anyio.to_thread.run_sync(lambda: open(path, "w+b"))  # noqa: SIM115
        try:
            yield MultipartWriter(self, upload, handle, hashlib.new(algorithm) if algorithm else None, allocate_part)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_close_and_unlink, handle, path)

    async def remove(self, upload_id: uuid.UUID) -> None:
        client, bucket = self.store.client, self.store.bucket
        prefix = self.store.listing_prefix(_upload_prefix(upload_id))

        def remove() -> None:
            for item in client.list_objects(bucket, prefix=prefix, recursive=True):
                if item.object_name is not None:
                    client.remove_object(bucket, item.object_name)
            for upload in _multipart_uploads(client, bucket, prefix):
                with contextlib.suppress(S3Error):  # completed or aborted meanwhile
                    client._abort_multipart_upload(bucket, upload.object_name, upload.upload_id)

        await self.store.call(remove)

    async def stale(self, *, older_than_s: float) -> list[uuid.UUID]:
        client, bucket = self.store.client, self.store.bucket
        prefix = self.store.listing_prefix(PREFIX)
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_s)

        def sweep() -> list[uuid.UUID]:
            newest: dict[uuid.UUID, dt.datetime] = {}
            found = [(item.object_name, item.last_modified) for item in
                     client.list_objects(bucket, prefix=prefix, recursive=True)]
            found += [(upload.object_name, upload.initiated_time) for upload in
                      _multipart_uploads(client, bucket, prefix)]
            for name, when in found:
                upload_id = _upload_id_of(name, len(prefix))
                if upload_id is not None and when is not None:
                    newest[upload_id] = max(when, newest.get(upload_id, when))
            return [upload_id for upload_id, when in newest.items() if when < cutoff]

        return await self.store.call(sweep)

    # --- calls the writer makes -------------------------------------------------------------------

    def new_key(self, upload_id: uuid.UUID, kind: str) -> str:
        return f"{_upload_prefix(upload_id)}{kind}-{secrets.token_hex(6)}"

    async def start_multipart(self, upload_id: uuid.UUID) -> Multipart:
        key = self.new_key(upload_id, "whole")
        name = self.store.object_name(key)
        client, bucket = self.store.client, self.store.bucket
        multipart_id = await self.store.call(
            lambda: client._create_multipart_upload(bucket, name, {"Content-Type": "application/octet-stream"})
        )
        return Multipart(key, multipart_id)

    async def put_part(self, multipart: Multipart, number: int, pieces: list[Segment], pending: BinaryIO) -> str:
        """Upload the pieces (fetched back) and the buffer as part ``number``; its ETag."""
        client, bucket = self.store.client, self.store.bucket
        name = self.store.object_name(multipart.key)

        def upload() -> str:
            data = bytearray()
            for piece in pieces:
                data += self._read_piece(piece)
            pending.seek(0)
            data += pending.read()
            return client._upload_part(bucket, name, bytes(data), None, multipart.upload_id, number)

        return await self.store.call_put(_gone(upload))

    def _read_piece(self, piece: Segment) -> bytes:
        assert piece.key is not None
        response = self.store.client.get_object(self.store.bucket, self.store.object_name(piece.key))
        try:
            data = response.read()
        finally:
            response.close()
            response.release_conn()
        if len(data) != piece.size:
            raise PartMissing(f"{piece.key} holds {len(data)} bytes, not {piece.size}")
        return data

    async def put_piece(self, key: str, pending: BinaryIO, size: int) -> None:
        client, bucket, name = self.store.client, self.store.bucket, self.store.object_name(key)

        def put() -> None:
            pending.seek(0)
            client.put_object(bucket, name, pending, size, content_type="application/octet-stream",
                              num_parallel_uploads=1)

        await self.store.call_put(put)

    async def complete(self, multipart: Multipart, parts: list[Segment]) -> None:
        client, bucket, name = self.store.client, self.store.bucket, self.store.object_name(multipart.key)
        listed = [Part(part.part_number, part.etag) for part in parts if part.part_number and part.etag]
        await self.store.call(_gone(lambda: client._complete_multipart_upload(
            bucket, name, multipart.upload_id, listed)))

    async def read_into(self, piece: Segment, staged: StagedFile) -> None:
        """Append a piece (or a completed multipart object) to ``staged``, block by block."""
        assert piece.key is not None
        client, bucket, name = self.store.client, self.store.bucket, self.store.object_name(piece.key)
        response = await self.store.call(_gone(lambda: client.get_object(bucket, name)))
        received = 0
        try:
            while data := await self.store.call(lambda: response.read(READ_SIZE)):
                received += len(data)
                await staged.write(data)
        finally:
            response.close()
            response.release_conn()
        if received != piece.size:
            raise PartMissing(f"{piece.key} holds {received} bytes, not {piece.size}")

    async def forget(self, keys: list[str], multipart: Multipart | None = None) -> None:
        """Best effort: objects and a multipart upload no row names (``remove`` gets the rest)."""
        client, bucket = self.store.client, self.store.bucket

        def forget() -> None:
            for key in keys:
                client.remove_object(bucket, self.store.object_name(key))
            if multipart is not None:
                with contextlib.suppress(S3Error):
                    client._abort_multipart_upload(bucket, self.store.object_name(multipart.key), multipart.upload_id)

        with contextlib.suppress(DependencyUnavailable):
            await self.store.call(forget)


class MultipartWriter:
    """Appends one chunk to an upload kept in S3 (``ports.ChunkWriter``; see the module doc)."""

    def __init__(
        self, area: S3UploadArea, upload: UploadBytes, pending: BinaryIO, chunk_hasher: Any | None,
        allocate_part: AllocatePart,
    ) -> None:
        self._area = area
        self._upload = upload
        self._pending = pending
        self._buffer = BufferedWriter(pending, [chunk_hasher] if chunk_hasher is not None else [])
        self._hasher = chunk_hasher
        self._allocate = allocate_part
        self._multipart = upload.multipart
        self._started: Multipart | None = None  # a multipart upload this writer began
        self._parts = [segment for segment in upload.segments if segment.part_number is not None]
        self._pieces = [segment for segment in upload.segments if segment.key is not None]
        self._pending_start = upload.offset
        self._pending_size = 0
        self._put: list[str] = []  # pieces this writer created
        self._replaced: list[str] = []  # recorded pieces now inside a part of this writer

    @property
    def received(self) -> int:
        return self._buffer.received

    async def write(self, data: bytes) -> None:
        await self._buffer.write(data)
        self._pending_size += len(data)
        held = sum(piece.size for piece in self._pieces) + self._pending_size
        if held >= self._area.part_size and self._upload.offset + self.received < self._upload.length:
            await self._put_part()

    async def chunk_digest(self) -> bytes:
        assert self._hasher is not None
        await self._buffer.flush()
        return bytes(self._hasher.digest())

    async def _put_part(self) -> None:
        await self._buffer.flush()
        if self._multipart is None:
            self._multipart = self._started = await self._area.start_multipart(self._upload.id)
        number = await self._allocate()
        pieces = list(self._pieces)
        first = pieces[0].first_byte if pieces else self._pending_start
        size = sum(piece.size for piece in pieces) + self._pending_size
        etag = await self._area.put_part(self._multipart, number, pieces, self._pending)
        self._parts.append(Segment(first, size, part_number=number, etag=etag))
        self._replaced += [piece.key for piece in pieces if piece.key is not None]
        self._pieces = []
        await self._reset_pending()

    async def _reset_pending(self) -> None:
        self._pending_start += self._pending_size
        self._pending_size = 0

        def cut() -> None:
            self._pending.seek(0)
            self._pending.truncate()

        await anyio.to_thread.run_sync(cut)

    def _progress(self) -> Progress:
        segments = (*self._parts, *self._pieces)
        return Progress(offset=segments[-1].end if segments else 0, multipart=self._multipart, segments=segments)

    async def commit(self) -> Progress:
        await self._buffer.flush()
        if self._pending_size:
            key = self._area.new_key(self._upload.id, f"piece-{self._pending_start}")
            await self._area.put_piece(key, self._pending, self._pending_size)
            self._put.append(key)
            self._pieces.append(Segment(self._pending_start, self._pending_size, key=key))
            await self._reset_pending()
        return self._progress()

    async def seal(self) -> Progress | None:
        await self._buffer.flush()
        if self._multipart is None or not self._parts:
            return None
        await self._area.complete(self._multipart, self._parts)
        whole = Segment(0, self._parts[-1].end, key=self._multipart.key)
        self._parts, self._pieces = [], [whole, *self._pieces]
        self._multipart = self._started = None
        return self._progress()

    @contextlib.asynccontextmanager
    async def whole(self) -> AsyncIterator[StagedFile]:
        async with self._area.spool.staged() as staged:
            for piece in self._pieces:
                await self._area.read_into(piece, staged)
            self._pending.seek(0)
            while data := await anyio.to_thread.run_sync(self._pending.read, BUFFER_SIZE):
                await staged.write(data)
            await staged.finish()
            if staged.size != self._upload.length:
                raise PartMissing(f"upload {self._upload.id} reads back as {staged.size} of {self._upload.length} bytes")
            yield staged

    async def recorded(self) -> None:
        replaced, self._replaced, self._put = self._replaced, [], []
        self._started = None
        if replaced:
            await self._area.forget(replaced)

    async def rollback(self) -> None:
        self._buffer.discard_buffer()
        await self._area.forget(self._put, self._started)
        self._put, self._started = [], None


def _multipart_uploads(client: Any, bucket: str, prefix: str) -> Iterator[Any]:
    """Every multipart upload under ``prefix`` (markers by hand: minio 7.2 drops the next id)."""
    key_marker: str | None = None
    upload_marker: str | None = None
    while True:
        page = client._list_multipart_uploads(bucket, prefix=prefix, key_marker=key_marker,
                                              upload_id_marker=upload_marker)
        yield from page.uploads
        if not page.is_truncated or not page.uploads:
            return
        key_marker, upload_marker = page.uploads[-1].object_name, page.uploads[-1].upload_id


def _upload_id_of(name: str | None, strip: int) -> uuid.UUID | None:
    head = (name or "")[strip:].split("/", 1)[0]
    try:
        return uuid.UUID(hex=head)
    except ValueError:
        return None


def _close_and_unlink(handle: BinaryIO, path: os.PathLike[str]) -> None:
    handle.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)

