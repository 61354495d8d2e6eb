"""Local files written the same way everywhere: the one buffered, hashing writer behind the spool
(``storage.spool``) and tus part files (``storage.uploads``), and the one way to make a new
directory entry durable.

The writer keeps memory to one ``BUFFER_SIZE`` buffer whatever the body size, and does the file
writes and the hashing (hashlib releases the GIL) in worker threads, off the event loop. A disk
with no space left is ``storage.full`` (``storage.disk``); the caller removes or truncates what
was written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread
from anyio import CapacityLimiter

from fieldsync.storage.disk import space_errors

BUFFER_SIZE = 1024 * 1024


def fsync_directory(directory: Path) -> None:
    """Make the entries just created or renamed in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BufferedWriter:
    """Appends to an open file through a buffer, updating ``hashers`` with every byte written."""

    def __init__(self, handle: BinaryIO, hashers: Sequence[Any] = (), limiter: CapacityLimiter | None = None,
                 *, what: str = "upload") -> None:
        self.handle = handle
        self.what = what
        self.received = 0
        self._hashers = tuple(hashers)
        self._limiter = limiter
        self._buffer = bytearray()

    async def write(self, data: bytes) -> None:
        self.received += len(data)
        self._buffer += data
        if len(self._buffer) >= BUFFER_SIZE:
            await self.flush()

    async def flush(self) -> None:
        """Hand what is buffered to the file (not yet fsynced)."""
        if not self._buffer:
            return
        data = bytes(self._buffer)
        self._buffer.clear()

        def write() -> None:
            for hasher in self._hashers:
                hasher.update(data)
            self.handle.write(data)

        with space_errors(self.what):
            await anyio.to_thread.run_sync(write, limiter=self._limiter)

    def discard_buffer(self) -> None:
        self._buffer.clear()
