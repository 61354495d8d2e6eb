"""Protocols for the things outside fieldsync's process: the clock and the media store.

``MediaStore`` is deliberately narrow (tusd's ``DataStore`` taste): only the calls the app makes.
Adapters live in ``fieldsync.storage``; ``fieldsync.storage.open_media_store(settings)`` picks one.

Invariants every adapter keeps (one contract test suite, ``tests/storage``, runs against each):

- Keys are content-addressed paths built by ``fieldsync.storage.keys``; a key names one immutable
  object. ``put_file``/``put_bytes`` are idempotent: an existing object under the key is left as
  is, so concurrent or replayed puts of the same bytes are harmless.
- A put either makes the whole object visible or nothing: no reader ever sees a partial object.
  When a put returns, the object is durable (fsynced, or acknowledged by the S3 server).
- The source file of ``put_file`` is never modified or removed by the store; the caller owns it.
- A missing key raises ``errors.MediaNotFound``; an unreachable or failing backend raises
  ``errors.DependencyUnavailable``. No adapter leaks its library's exceptions.
- Every method is safe to call on the event loop: blocking I/O runs in worker threads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import NamedTuple, Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class StoredObject(NamedTuple):
    """One entry of ``MediaStore.list_keys``."""

    key: str
    size: int
    modified_at: dt.datetime


class MediaStore(Protocol):
    async def put_file(self, key: str, path: Path, *, sha256: str, size: int, content_type: str) -> None:
        """Store the finished local file ``path`` durably under ``key``; no-op if ``key`` exists.

        ``sha256`` and ``size`` are what the caller measured while spooling; the store checks the
        size it wrote and passes the hash to the backend where it can verify it.
        """
        ...

    async def put_bytes(self, key: str, data: bytes, *, content_type: str) -> None:
        """Like ``put_file`` for small in-memory objects (derivatives)."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def size(self, key: str) -> int:
        """Size in bytes; ``MediaNotFound`` if absent."""
        ...

    async def open(self, key: str, *, offset: int = 0, length: int | None = None) -> AsyncGenerator[bytes, None]:
        """Open ``key`` (``MediaNotFound`` raised here, before any byte) and return its chunks.

        ``offset``/``length`` select a byte range; a range past the end yields nothing. Iterate the
        generator to the end or ``aclose()`` it to release the file or connection.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error."""
        ...

    def list_keys(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        """Every object whose key starts with ``prefix``, in no particular order (for gc)."""
        ...

    async def ping(self) -> None:
        """Return if the store is reachable and usable; ``DependencyUnavailable`` otherwise."""
        ...

    async def presigned_get_url(
        self, key: str, *, expires_s: int, filename: str | None = None, content_type: str | None = None
    ) -> str | None:
        """A short-lived URL a client can GET directly, or ``None`` if the store cannot make one."""
        ...
