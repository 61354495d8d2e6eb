"""Local staging of an upload while it is hashed: the spool, ``<data_dir>/spool``.

Why not stage in the store (an S3 multipart upload, a temp file in the media root)? Because the
bytes cannot go to their final place before they are known good: the hash must match the URL,
the size must stay under the limit, and the image must decode. Those checks need the whole file
locally (Pillow reads a file, not a stream), whichever store holds originals. So every upload
streams here first, hashed and counted as it arrives with memory bounded by one buffer; only a
file that passed every check is handed to ``MediaStore.put_file``. A rejected upload leaves
nothing in the store, in either adapter. See docs/decisions/0004-media-store-port.md.

Usage (the endpoint owns the policy; this module only counts, hashes and cleans up)::

    async with spool.staged() as staged:
        async for chunk in body:
            await staged.write(chunk)
            if staged.size > limit: raise ...          # stop reading at once
        await staged.finish()
        if staged.sha256 != expected: raise ...
        info = await to_thread(probe, staged.path, max_pixels=...)
        await store.put_file(key, staged.path, sha256=staged.sha256, size=staged.size, ...)
    # the spool file is gone here, whatever happened

Invariants: a spool file exists only inside its ``staged()`` block, so after a clean shutdown the
directory is empty; a crash can leave ``*.part`` files behind, which ``remove_stale`` deletes by
age (``fieldsync gc``). The spool sits under the data dir, on the same filesystem as the default
media root, where the filesystem store's copy is an in-kernel one. Writes and hashing happen in
worker threads, 1 MiB at a time (``storage._files.BufferedWriter``).

A full disk is ``storage.full`` (``storage.disk``): a write that finds no space raises it and the
spool file goes as always; ``ensure_room`` refuses an upload before its body is read when it
would eat into the reserve kept for the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
from anyio import CapacityLimiter

from fieldsync.storage._files import BufferedWriter
from fieldsync.storage.disk import ensure_room, space_errors

SUFFIX = ".part"


class StagedFile:
    """One upload being spooled: ``write`` chunks, ``finish``, then read ``sha256`` / ``size``."""

    def __init__(self, path: Path, handle: BinaryIO, limiter: CapacityLimiter) -> None:
        self.path = path
        self._hash = hashlib.sha256()
        self._writer = BufferedWriter(handle, [self._hash], limiter, what="spool")
        self._limiter = limiter
        self._sha256: str | None = None

    @property
    def size(self) -> int:
        return self._writer.received

    async def write(self, chunk: bytes) -> None:
        if self._sha256 is not None:
            raise RuntimeError("write after finish")
        await self._writer.write(chunk)

    async def finish(self) -> None:
        """Write what is buffered and close the file; ``sha256`` is valid afterwards."""
        if self._sha256 is not None:
            return
        await self._writer.flush()
        with space_errors("spool"):
            await anyio.to_thread.run_sync(self._writer.handle.close, limiter=self._limiter)
        self._sha256 = self._hash.hexdigest()

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            raise RuntimeError("sha256 is known only after finish()")
        return self._sha256


class Spool:
    """The staging directory. ``ensure()`` once at startup, then ``staged()`` per upload."""

    def __init__(self, directory: Path, *, max_threads: int = 16, reserve_bytes: int = 0) -> None:
        self.directory = directory
        self.reserve_bytes = reserve_bytes
        self._limiter = CapacityLimiter(max_threads)

    async def ensure(self) -> None:
        await anyio.to_thread.run_sync(lambda: self.directory.mkdir(parents=True, exist_ok=True))

    def ensure_room(self, incoming: int) -> None:
        """``storage.full`` unless ``incoming`` more bytes leave the reserve free (see ``storage.disk``)."""
        ensure_room(self.directory, 2 * incoming, self.reserve_bytes)  # the file, and its copy in a local store

    @contextlib.asynccontextmanager
    async def staged(self) -> AsyncIterator[StagedFile]:
        path = self.directory / f"{uuid.uuid4().hex}{SUFFIX}"
        with space_errors("spool"):
            handle = await anyio.to_thread.run_sync(lambda: open(path, "xb"), limiter=self._limiter)  # noqa: SIM115
        try:
            yield StagedFile(path, handle, self._limiter)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_discard, handle, path, limiter=self._limiter)

    async def remove_stale(self, *, older_than_s: float, dry_run: bool = False) -> list[Path]:
        """Spool files untouched for ``older_than_s`` (left by a crash); removed unless ``dry_run``."""

        def sweep() -> list[Path]:
            cutoff = time.time() - older_than_s
            stale: list[Path] = []
            try:
                entries = list(os.scandir(self.directory))
            except FileNotFoundError:
                return stale
            for entry in entries:
                try:
                    if entry.name.endswith(SUFFIX) and entry.is_file() and entry.stat().st_mtime < cutoff:
                        stale.append(Path(entry.path))
                        if not dry_run:
                            os.unlink(entry.path)
                except FileNotFoundError:
                    continue
            return stale

        return await anyio.to_thread.run_sync(sweep, limiter=self._limiter)


def _discard(handle: BinaryIO, path: Path) -> None:
    try:
        handle.close()  # may flush a last buffer into a full disk: the file goes all the same
    except OSError:
        pass
    finally:
        path.unlink(missing_ok=True)
