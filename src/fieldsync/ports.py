"""Protocols for the things outside fieldsync's process: the clock, the media store and the
upload area (where the bytes of unfinished tus uploads live).

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

``UploadArea`` holds the bytes of unfinished tus uploads; the media store decides which one
(``fieldsync.storage.open_upload_area``): part files under the data directory beside a filesystem
store (one host), S3 multipart uploads plus small "piece" objects beside an S3 store (any
replica). The upload's row in PostgreSQL is the truth about them (``UploadBytes``): an area
never decides what counts, it makes bytes durable and reports ``Progress``, which the caller
records under the upload's lease before a byte of it counts. Bytes an area wrote that no row
records (a chunk that failed its checksum, a crash, a lost lease) are garbage it may leave behind
for ``remove`` and ``stale``. See docs/decisions/0016-upload-parts-in-the-object-store.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
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

    async def put_bytes(self, key: str, data: bytes, *, content_type: str, durable: bool = True) -> None:
        """Like ``put_file`` for small in-memory objects (derivatives). ``durable=False``: the object
        can be made again (a derivative), so a local store may skip its fsyncs; after a power loss
        it may then be missing or empty, never another object's bytes."""
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


# --- unfinished tus uploads ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Segment:
    """Bytes ``[first_byte, first_byte + size)`` of an upload, durable in the object store: a part
    of the upload's multipart upload (``part_number`` and ``etag``) or an object of its own
    (``key``, a piece of the tail that is still too small to be a part)."""

    first_byte: int
    size: int
    part_number: int | None = None
    etag: str | None = None
    key: str | None = None

    @property
    def end(self) -> int:
        return self.first_byte + self.size


@dataclasses.dataclass(frozen=True, slots=True)
class Multipart:
    """An S3 multipart upload: the key it completes into and the server's upload id."""

    key: str
    upload_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class UploadBytes:
    """What the upload's row says about its bytes: ``[0, offset)`` of ``length`` are durable, in
    ``segments`` (parts first, then pieces, contiguous) when the area keeps them in S3."""

    id: uuid.UUID
    length: int
    offset: int
    multipart: Multipart | None = None
    segments: tuple[Segment, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    """What a writer made durable: the row's new offset and, for S3, where those bytes now are."""

    offset: int
    multipart: Multipart | None = None
    segments: tuple[Segment, ...] = ()


class WholeUpload(Protocol):
    """Every byte of a finished upload in one local file, hashed (``services.media.Staged``)."""

    @property
    def path(self) -> Path: ...

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...


AllocatePart = Callable[[], Awaitable[int]]


class PartMissing(Exception):
    """The recorded bytes of an upload are gone (a part file removed by hand, a bucket emptied)."""


class ChunkWriter(Protocol):
    """Appends one chunk at the recorded offset: ``write``…, then ``commit`` (more to come) or
    ``seal`` and ``whole`` (the chunk with the last byte), or ``rollback``."""

    @property
    def received(self) -> int: ...

    async def write(self, data: bytes) -> None: ...

    async def chunk_digest(self) -> bytes:
        """The digest of this chunk's bytes (only with a checksum algorithm)."""
        ...

    async def commit(self) -> Progress:
        """Make every byte received durable; the caller records the progress for it to count."""
        ...

    async def seal(self) -> Progress | None:
        """After the last byte: do what cannot be undone before the file is read back (S3:
        complete the multipart upload) and say what to record now, or ``None``."""
        ...

    def whole(self) -> AbstractAsyncContextManager[WholeUpload]:
        """The whole file, local and hashed, for ``PUT /v1/media``'s checks (after ``seal``)."""
        ...

    async def recorded(self) -> None:
        """The caller recorded the last progress: what it replaced may go now."""
        ...

    async def rollback(self) -> None:
        """Drop what this writer wrote that no row records; the recorded bytes stay intact."""
        ...


class UploadArea(Protocol):
    def ensure_room(self, incoming: int) -> None:
        """``storage.full`` (507) unless ``incoming`` more bytes leave the data disk's reserve free."""
        ...

    async def create(self, upload_id: uuid.UUID) -> None:
        """Room for a new upload (a part file; nothing in S3, where bytes make their own room)."""
        ...

    def writer(
        self, upload: UploadBytes, *, algorithm: str | None, allocate_part: AllocatePart
    ) -> AbstractAsyncContextManager[ChunkWriter]:
        """A writer at ``upload.offset``; ``allocate_part`` hands out multipart part numbers that
        no other writer of this upload ever gets. Raises ``PartMissing`` when the recorded bytes
        are gone (removed by hand, bucket lost)."""
        ...

    async def remove(self, upload_id: uuid.UUID) -> None:
        """Every byte the area holds for the upload, recorded or not; a missing one is no error."""
        ...

    async def stale(self, *, older_than_s: float) -> list[uuid.UUID]:
        """Uploads the area holds bytes of, untouched for ``older_than_s`` (the caller keeps the
        ones that still have a row)."""
        ...
