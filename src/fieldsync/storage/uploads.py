"""Partial tus uploads on local disk: ``<data_dir>/uploads/<id>.part``.

Why on disk and not in the media store? The finished file must pass the same checks as a
``PUT /v1/media`` (hash, decoded type, pixel limit), and those read a local file, exactly like the
spool (see ``storage.spool``); an upload is only handed to ``MediaStore.put_file`` once it is
whole and good. Unlike spool files, a part file outlives its request: it is the state a device
resumes from, possibly days later, so it lives in a directory of its own that the spool's stale
sweep never touches, and ``fieldsync gc`` removes it with its expired row.

Invariants (the caller, ``services.uploads``, holds the per-upload lock, ``UploadArea.locked``,
around every use):

- The row's offset never counts a byte that is not fsynced here: ``PartWriter.commit`` flushes and
  fsyncs, and only then does the caller persist the new offset.
- Bytes past the persisted offset are garbage (a chunk that failed its checksum, a crash before
  the offset was stored): every writer truncates the file to the persisted offset before it
  writes, so they can never end up inside an upload.
- Memory is one buffer of ``BUFFER_SIZE`` per writer, whatever the chunk size; file I/O and
  hashing run in worker threads.
- A full disk is ``storage.full`` (``storage.disk``): the writer raises it, the caller rolls the
  chunk back to the persisted offset, and ``ensure_room`` refuses a chunk before its body is read
  when it would eat into the reserve kept for the database.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread

from fieldsync.storage._files import BUFFER_SIZE, BufferedWriter, fsync_directory
from fieldsync.storage.disk import ensure_room, space_errors

SUFFIX = ".part"


class PartMissing(Exception):
    """The part file is gone or shorter than the persisted offset (removed by hand, disk lost)."""


class PartBusy(Exception):
    """Another request (in this process or another on this host) holds the upload's lock."""


class PartWriter:
    """Appends one chunk at the persisted offset: ``write``…, then ``commit`` or ``rollback``."""

    def __init__(self, handle: BinaryIO, offset: int, chunk_hasher: Any | None) -> None:
        self.offset = offset
        self._handle = handle
        self._hasher = chunk_hasher
        self._writer = BufferedWriter(handle, [chunk_hasher] if chunk_hasher is not None else [])

    @property
    def received(self) -> int:
        return self._writer.received

    async def write(self, data: bytes) -> None:
        await self._writer.write(data)

    async def chunk_digest(self) -> bytes:
        """The digest of everything written (only with a checksum algorithm)."""
        assert self._hasher is not None
        await self._writer.flush()
        return bytes(self._hasher.digest())

    async def commit(self) -> int:
        """Make every received byte durable; returns the new end offset of the upload."""
        await self._writer.flush()

        def sync() -> None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

        with space_errors("upload"):
            await anyio.to_thread.run_sync(sync)
        return self.offset + self.received

    async def rollback(self) -> None:
        """Drop what this writer wrote: the file ends at the persisted offset again."""
        self._writer.discard_buffer()

        def cut() -> None:
            self._handle.flush()
            self._handle.truncate(self.offset)
            os.fsync(self._handle.fileno())

        await anyio.to_thread.run_sync(cut)


class UploadArea:
    """The directory of part files; cheap to construct (it is only a path)."""

    def __init__(self, directory: Path, *, reserve_bytes: int = 0) -> None:
        self.directory = directory
        self.reserve_bytes = reserve_bytes

    def ensure_room(self, incoming: int) -> None:
        """``storage.full`` unless ``incoming`` more bytes leave the reserve free."""
        ensure_room(self.directory, 2 * incoming, self.reserve_bytes)  # the file, and its copy in a local store

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
    async def writer(self, upload_id: uuid.UUID, *, offset: int, algorithm: str | None) -> AsyncIterator[PartWriter]:
        """A writer positioned at ``offset``; raises ``PartMissing`` if the file cannot hold it."""
        path = self.path(upload_id)

        def open_at() -> BinaryIO:
            try:
                handle = open(path, "r+b")  # noqa: SIM115 - closed by the context manager below
            except FileNotFoundError:
                if offset:
                    raise PartMissing(str(path)) from None
                self.directory.mkdir(parents=True, exist_ok=True)
                handle = open(path, "w+b")  # noqa: SIM115
            try:
                if os.fstat(handle.fileno()).st_size < offset:
                    raise PartMissing(str(path))
                handle.truncate(offset)
                handle.seek(offset)
            except BaseException:
                handle.close()
                raise
            return handle

        handle = await anyio.to_thread.run_sync(open_at)
        try:
            yield PartWriter(handle, offset, hashlib.new(algorithm) if algorithm else None)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(handle.close)

    @contextlib.asynccontextmanager
    async def locked(self, upload_id: uuid.UUID, *, wait_s: float, poll_s: float = 0.05) -> AsyncIterator[None]:
        """Hold the upload's exclusive lock: ``flock`` on its part file, so requests in every
        process of this host exclude each other, and a crashed process's lock goes with it. It
        is a file lock and not a database lock because it is held while a body streams, which
        takes minutes on a field network: a database lock would pin a pooled connection all that
        time. A missing part file is created empty (the writer then finds it too short for any
        offset past 0). Raises ``PartBusy`` if the lock is still taken after ``wait_s``."""
        path = self.path(upload_id)

        def open_part() -> int:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

        fd = await anyio.to_thread.run_sync(open_part)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise PartBusy(str(path)) from None
                    await anyio.sleep(poll_s)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    async def sha256(self, upload_id: uuid.UUID) -> str:
        """The SHA-256 of the whole part file, read in ``BUFFER_SIZE`` blocks."""

        def digest() -> str:
            hasher = hashlib.sha256()
            with open(self.path(upload_id), "rb") as handle:
                while block := handle.read(BUFFER_SIZE):
                    hasher.update(block)
            return hasher.hexdigest()

        return await anyio.to_thread.run_sync(digest)

    async def remove(self, upload_id: uuid.UUID) -> None:
        """The part file, once the upload is over (completed, or its row gone): a request still
        waiting for the removed file's lock then finds nothing left to write."""
        await anyio.to_thread.run_sync(lambda: self.path(upload_id).unlink(missing_ok=True))

    async def list_stale(self, *, older_than_s: float) -> list[uuid.UUID]:
        """Ids of part files untouched for ``older_than_s`` (the caller checks which have no row)."""

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


def upload_area(data_dir: Path, *, reserve_bytes: int = 0) -> UploadArea:
    return UploadArea(data_dir / "uploads", reserve_bytes=reserve_bytes)
