"""Partial tus uploads on local disk: ``<data_dir>/uploads/<id>.part`` (the ``UploadArea`` beside
a filesystem media store, so one host; the S3 one is ``storage.multipart``).

Why on disk and not in the media store? The finished file must pass the same checks as a
``PUT /v1/media`` (hash, decoded type, pixel limit), and those read a local file, exactly like the
spool (see ``storage.spool``); an upload is only handed to ``MediaStore.put_file`` once it is
whole and good. Unlike spool files, a part file outlives its request: it is the state a device
resumes from, possibly days later, so it lives in a directory of its own that the spool's stale
sweep never touches, and ``fieldsync gc`` removes it with its expired row.

Invariants (the caller, ``services.uploads``, holds the upload's lease around every writer):

- The row's offset never counts a byte that is not fsynced here: ``commit`` flushes and fsyncs,
  and only then does the caller record the new offset.
- Bytes past the recorded offset are garbage (a chunk that failed its checksum, a crash before
  the offset was stored): every writer truncates the file to the recorded offset before it
  writes, so they can never end up inside an upload.
- Memory is one buffer of ``BUFFER_SIZE`` per writer, whatever the chunk size; file I/O and
  hashing run in worker threads.
- A full disk is ``storage.full`` (``storage.disk``): the writer raises it, the caller rolls the
  chunk back to the persisted offset, and ``ensure_room`` refuses a chunk before its body is read
  when it would eat into the reserve kept for the database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread

from fieldsync.ports import AllocatePart, PartMissing, Progress, UploadBytes
from fieldsync.storage._files import BUFFER_SIZE, BufferedWriter, fsync_directory
from fieldsync.storage.disk import ensure_room, space_errors

SUFFIX = ".part"


@dataclasses.dataclass(frozen=True, slots=True)
class WholePartFile:
    path: Path
    size: int
    sha256: str


class PartWriter:
    """Appends one chunk at the recorded offset of a part file (``ports.ChunkWriter``)."""

    def __init__(self, path: Path, handle: BinaryIO, upload: UploadBytes, chunk_hasher: Any | None) -> None:
        self.offset = upload.offset
        self._path = path
        self._length = upload.length
        self._handle = handle
        self._hasher = chunk_hasher
        self._writer = BufferedWriter(handle, [chunk_hasher] if chunk_hasher is not None else [])

    @property
    def received(self) -> int:
        return self._writer.received

    async def write(self, data: bytes) -> None:
        await self._writer.write(data)

    async def chunk_digest(self) -> bytes:
        assert self._hasher is not None
        await self._writer.flush()
        return bytes(self._hasher.digest())

    async def commit(self) -> Progress:
        await self._writer.flush()

        def sync() -> None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

        with space_errors("upload"):
            await anyio.to_thread.run_sync(sync)
        return Progress(offset=self.offset + self.received)

    async def seal(self) -> Progress | None:
        await self.commit()
        return None  # nothing irreversible: the part file is still the upload

    @contextlib.asynccontextmanager
    async def whole(self) -> AsyncIterator[WholePartFile]:
        """The part file itself (read once more to hash it); it is removed with the upload."""

        def digest() -> str:
            hasher = hashlib.sha256()
            with open(self._path, "rb") as handle:
                while block := handle.read(BUFFER_SIZE):
                    hasher.update(block)
            return hasher.hexdigest()

        yield WholePartFile(self._path, self._length, await anyio.to_thread.run_sync(digest))

    async def recorded(self) -> None:
        return None

    async def rollback(self) -> None:
        """The file ends at the recorded offset again."""
        self._writer.discard_buffer()

        def cut() -> None:
            self._handle.flush()
            self._handle.truncate(self.offset)
            os.fsync(self._handle.fileno())

        await anyio.to_thread.run_sync(cut)


class PartFileArea:
    """The directory of part files (``ports.UploadArea``); cheap to construct (it is only a path)."""

    def __init__(self, directory: Path, *, reserve_bytes: int = 0) -> None:
        self.directory = directory
        self.reserve_bytes = reserve_bytes

    def ensure_room(self, incoming: int) -> None:
        """``storage.full`` unless ``incoming`` more bytes leave the reserve free."""
        ensure_room(self.directory, 2 * incoming, self.reserve_bytes)  # the file, and its copy in a local store

    def __repr__(self) -> str:
        return f"PartFileArea({str(self.directory)!r})"

    def path(self, upload_id: uuid.UUID) -> Path:
        return self.directory / f"{upload_id.hex}{SUFFIX}"

    async def create(self, upload_id: uuid.UUID) -> None:
        """An empty part file, durably (the directory entry is fsynced too)."""

        def create() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.path(upload_id), "xb") as handle:
                os.fsync(handle.fileno())
            fsync_directory(self.directory)

        with space_errors("upload"):
            await anyio.to_thread.run_sync(create)

    @contextlib.asynccontextmanager
    async def writer(
        self, upload: UploadBytes, *, algorithm: str | None, allocate_part: AllocatePart
    ) -> AsyncIterator[PartWriter]:
        """A writer positioned at the recorded offset; ``PartMissing`` if the file cannot hold it."""
        path = self.path(upload.id)

        def open_at() -> BinaryIO:
            try:
                handle = open(path, "r+b")  # noqa: SIM115 - closed by the context manager below
            except FileNotFoundError:
                if upload.offset:
                    raise PartMissing(str(path)) from None
                self.directory.mkdir(parents=True, exist_ok=True)
                handle = open(path, "w+b")  # noqa: SIM115
            try:
                if os.fstat(handle.fileno()).st_size < upload.offset:
                    raise PartMissing(str(path))
                handle.truncate(upload.offset)
                handle.seek(upload.offset)
            except BaseException:
                handle.close()
                raise
            return handle

        handle = await anyio.to_thread.run_sync(open_at)
        try:
            yield PartWriter(path, handle, upload, hashlib.new(algorithm) if algorithm else None)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(handle.close)

    async def remove(self, upload_id: uuid.UUID) -> None:
        await anyio.to_thread.run_sync(lambda: self.path(upload_id).unlink(missing_ok=True))

    async def stale(self, *, older_than_s: float) -> list[uuid.UUID]:
        def sweep() -> list[uuid.UUID]:
            cutoff = time.time() - older_than_s
            found: list[uuid.UUID] = []
            try:
                entries = list(os.scandir(self.directory))
            except FileNotFoundError:
                return found
            for entry in entries:
                if not entry.name.endswith(SUFFIX):
                    continue
                try:
                    upload_id = uuid.UUID(hex=entry.name[: -len(SUFFIX)])
                    if entry.is_file() and entry.stat().st_mtime < cutoff:
                        found.append(upload_id)
                except (ValueError, FileNotFoundError):
                    continue
            return found

        return await anyio.to_thread.run_sync(sweep)


def upload_area(data_dir: Path, *, reserve_bytes: int = 0) -> PartFileArea:
    return PartFileArea(data_dir / "uploads", reserve_bytes=reserve_bytes)
