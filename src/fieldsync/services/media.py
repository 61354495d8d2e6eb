"""Media use cases: accept an upload that was spooled and hashed, answer who may read it,
find what is missing, and generate derivatives (and, for photos stored before migration 0009,
near-duplicate fingerprints) as durable background jobs.

Order of an upload, so that a 2xx means "committed in PostgreSQL and durably in the store":
the bytes are checked (hash, size, decodable image of the declared type) on the local spool
file, handed to the store (durable once ``put_file`` returns), and only then is the row
committed. A crash in between leaves an object without a row, which ``fieldsync gc`` removes
after its grace period; it never leaves a row without an object. ``keep_media`` therefore owns
its transaction: it must begin after the store write, not around it.

No pooled connection is held while bytes are decoded or stored (seconds for a big photo, up to
the store timeout when the store hangs): the caller hands ``keep_media`` a way to take the
request's connection once the object is in the store.

gc never races an upload into a row without an object. Both take the photo's transaction-level
advisory lock (``db.media.lock_object``) around what must not interleave: gc around "no row or
no reference, delete the row, delete the objects"; an upload around "the object is in the store,
insert the row". An upload whose object gc removed after the put (an orphan of a crashed upload,
or an unreferenced photo past its grace) finds it missing under the lock and puts it again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeAlias

import anyio
import anyio.to_thread
import asyncpg
import structlog

from fieldsync import errors
from fieldsync.db import jobs
from fieldsync.db import media as q
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal, Role
from fieldsync.imaging import probe, render_derivatives
from fieldsync.imaging.process import Processed, process
from fieldsync.ports import Clock, MediaStore, WholeUpload
from fieldsync.services import audit, duplicates, worker
from fieldsync.storage import keys

log = structlog.get_logger("fieldsync.media")

DERIVATIVE_JOB = "derivatives"
FINGERPRINT_JOB = "fingerprint"  # queued by migration 0009 for photos stored before it
ALLOWED_TYPES = {
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/png": "image/png",
    "image/webp": "image/webp",
    "image/heic": "image/heic",
    "image/heif": "image/heic",
}


_imaging_limiter: anyio.CapacityLimiter | None = None


def imaging_limiter() -> anyio.CapacityLimiter:
    """At most two images decode at once: a 64 MP PNG needs about 256 MB while it decodes."""
    global _imaging_limiter
    if _imaging_limiter is None:
        _imaging_limiter = anyio.CapacityLimiter(2)
    return _imaging_limiter


def normalized_content_type(declared: str | None) -> str:
    """The canonical allowed type for a ``Content-Type`` header, or ``media.unsupported_type``."""
    bare = (declared or "").split(";", 1)[0].strip().lower()
    if bare not in ALLOWED_TYPES:
        raise errors.MediaUnsupportedType(
            f"Content-Type must be one of image/jpeg, image/png, image/webp, image/heic; got {bare or 'none'!r}"
        )
    return ALLOWED_TYPES[bare]


# A finished local file and what was measured while it arrived: a spool ``StagedFile``, or a
# completed tus upload (``services.uploads``).
Staged: TypeAlias = WholeUpload


@dataclasses.dataclass(frozen=True, slots=True)
class MediaRecord:
    sha256: str
    bytes: int
    content_type: str
    width: int
    height: int
    taken_at: dt.datetime | None
    taken_at_local: dt.datetime | None
    lat: float | None
    lon: float | None
    make: str | None
    model: str | None


def record_of(row: asyncpg.Record) -> MediaRecord:
    return MediaRecord(
        sha256=row["sha256"], bytes=row["bytes"], content_type=row["content_type"], width=row["width"],
        height=row["height"], taken_at=row["taken_at"], taken_at_local=row["taken_at_local"], lat=row["lat"],
        lon=row["lon"], make=row["make"], model=row["model"],
    )


Acquire = Callable[[], Awaitable[asyncpg.Connection]]
STORE_ATTEMPTS = 3


def holding(conn: asyncpg.Connection) -> Acquire:
    """An ``Acquire`` for a caller that already holds its connection (the CLI, the demo loader)."""

    async def acquire() -> asyncpg.Connection:
        return conn

    return acquire


@dataclasses.dataclass(frozen=True, slots=True)
class Kept:
    record: MediaRecord
    created: bool  # a new photo (201), not one the server held already (200)
    queued: bool  # background work was queued: wake the worker


async def store_media(
    acquire: Acquire,
    actor: Principal,
    *,
    staged: Staged,
    expected_sha256: str,
    declared_type: str,
    store: MediaStore,
    max_pixels: int,
    now: dt.datetime,
) -> Kept:
    """Check a finished spool file and keep it."""
    checked = await check_media(
        staged, expected_sha256=expected_sha256, declared_type=declared_type, max_pixels=max_pixels
    )
    return await keep_media(acquire, actor, staged=staged, checked=checked, store=store, now=now)


async def check_media(staged: Staged, *, expected_sha256: str, declared_type: str, max_pixels: int) -> Processed:
    """The checks of a finished spool file, none of which needs the database: hash, image, type;
    the one decode they need also yields the fingerprints and derivatives (``imaging.process``).

    Split from ``keep_media`` so that an upload can run them (a decode, maybe queued behind other
    decodes) without holding a pooled connection.
    """
    if staged.sha256 != expected_sha256:
        raise errors.MediaHashMismatch(
            f"the body hashes to {staged.sha256}, not {expected_sha256}; nothing was kept", actual=staged.sha256
        )
    checked = await anyio.to_thread.run_sync(
        lambda: process(staged.path, max_pixels=max_pixels), limiter=imaging_limiter()
    )
    if checked.info.mime_type != declared_type:
        raise errors.MediaTypeMismatch(f"declared {declared_type} but the content is {checked.info.mime_type}")
    return checked


async def keep_media(
    acquire: Acquire,
    actor: Principal,
    *,
    staged: Staged,
    checked: Processed,
    store: MediaStore,
    now: dt.datetime,
) -> Kept:
    """Put a checked spool file and its derivatives in the store, then commit its row (in that
    order, see above); ``acquire`` is called only once the objects are in the store."""
    for _ in range(STORE_ATTEMPTS):
        await _put_objects(store, staged, checked)
        kept = await _record_media(await acquire(), actor, staged=staged, checked=checked, store=store, now=now)
        if kept is not None:
            return kept
        log.warning("media_collected_while_stored", sha256=staged.sha256, detail="storing it again")
    raise errors.DependencyUnavailable("the media store keeps losing this object; try again", dependency="media_store")


async def _put_objects(store: MediaStore, staged: Staged, checked: Processed) -> None:
    """The original (durably) and, when rendered, its preview and thumbnail, side by side. The
    derivatives skip a local store's fsyncs: they are made again on demand if a power loss took
    them (``api.media.serve_derivative``)."""
    puts = [store.put_file(keys.original_key(staged.sha256), staged.path, sha256=staged.sha256, size=staged.size,
                           content_type=checked.info.mime_type)]
    if checked.derivatives is not None:
        puts += [
            store.put_bytes(keys.derivative_key(staged.sha256, "preview"), checked.derivatives.preview,
                            content_type="image/jpeg", durable=False),
            store.put_bytes(keys.derivative_key(staged.sha256, "thumbnail"), checked.derivatives.thumbnail,
                            content_type="image/jpeg", durable=False),
        ]
    await asyncio.gather(*puts)


async def _record_media(
    conn: asyncpg.Connection, actor: Principal, *, staged: Staged, checked: Processed, store: MediaStore,
    now: dt.datetime,
) -> Kept | None:
    """Commit the row of an object just put, under the photo's lock; None if gc removed the
    object since (the caller puts it again)."""
    info = checked.info
    async with transaction(conn):
        await q.lock_object(conn, staged.sha256)
        if not await store.exists(keys.original_key(staged.sha256)):
            return None
        row = await q.insert_media(
            conn, sha256=staged.sha256, size=staged.size, content_type=info.mime_type, width=info.width,
            height=info.height, taken_at=info.taken_at if info.taken_at and info.taken_at.tzinfo else None,
            taken_at_local=info.taken_at if info.taken_at and not info.taken_at.tzinfo else None,
            lat=info.lat, lon=info.lon, make=info.make, model=info.model, dhash=info.dhash,
            thumbprint=info.thumbprint, derivatives_at=now if checked.derivatives is not None else None, now=now,
        )
        created = bool(row["created"])
        queued = created and checked.derivatives is None
        if queued:
            await jobs.enqueue(conn, kind=DERIVATIVE_JOB, keys=[staged.sha256], now=now)
        _, completed = await q.record_uploader(
            conn, sha256=staged.sha256, user_id=actor.user_id, device_id=actor.device_id, now=now
        )
        if completed:
            await duplicates.references_completed(conn, completed, now=now)
            queued = True
    return Kept(record_of(row), created, queued)


async def get_readable(
    conn: asyncpg.Connection, actor: Principal, sha256: str, *, variant: str, now: dt.datetime
) -> MediaRecord:
    """The media record if the caller uploaded it or may see a report whose reference to it counts;
    else not found (knowing a hash grants nothing).

    Every download of an original, and a supervisor's or admin's look at a derivative, is an
    audit event on the photo's chain: originals are evidence, and who took them is part of the
    record.
    """
    row = await q.get_media(conn, sha256)
    if row is None or not await q.readable_hashes(conn, [sha256], user_id=actor.user_id, viewer=actor.visibility):
        raise errors.MediaNotFound()
    if variant == "original" or actor.role is not Role.INSPECTOR:
        async with transaction(conn):
            await audit.record(
                conn,
                [audit.NewEvent(chain=audit.media_chain(sha256), action="media_access", actor_id=actor.user_id,
                                device_id=actor.device_id, detail={"variant": variant})],
                now=now,
            )
    return record_of(row)


async def exists(conn: asyncpg.Connection, actor: Principal, sha256: str) -> bool:
    """True if the caller holds this photo here: it uploaded it, or may read it through a report."""
    return bool(await q.readable_hashes(conn, [sha256], user_id=actor.user_id, viewer=actor.visibility))


async def missing(conn: asyncpg.Connection, actor: Principal, hashes: list[str]) -> list[str]:
    """The hashes the caller must upload (it holds them nowhere here), in its order, without repeats."""
    held = await q.readable_hashes(conn, hashes, user_id=actor.user_id, viewer=actor.visibility)
    return list(dict.fromkeys(h for h in hashes if h not in held))


async def _fetch_original(store: MediaStore, sha256: str, local: Path) -> None:
    chunks = await store.open(keys.original_key(sha256))
    with local.open("wb") as handle:
        async for chunk in chunks:
            await anyio.to_thread.run_sync(handle.write, chunk)


async def render_and_store(store: MediaStore, sha256: str) -> None:
    """Produce the preview and thumbnail of one original and store them (idempotent)."""
    with tempfile.TemporaryDirectory(prefix="fieldsync-derive-") as tmp:
        local = Path(tmp) / "original"
        await _fetch_original(store, sha256, local)
        rendered = await anyio.to_thread.run_sync(lambda: render_derivatives(local), limiter=imaging_limiter())
    await store.put_bytes(keys.derivative_key(sha256, "preview"), rendered.preview, content_type="image/jpeg")
    await store.put_bytes(keys.derivative_key(sha256, "thumbnail"), rendered.thumbnail, content_type="image/jpeg")


async def run_one_derivative_job(pool: asyncpg.Pool, store: MediaStore, clock: Clock) -> bool:
    """Claim and run one due derivative job; False when none is due.

    The job row stays locked for the whole run inside one transaction: a crashed worker's lock
    goes with its connection, so the job is simply due again after a restart.
    """
    async with pool.acquire() as conn, conn.transaction():
        claimed = await jobs.claim(conn, kind=DERIVATIVE_JOB, now=clock.now())
        if not claimed:
            return False
        job = claimed[0]
        try:
            await render_and_store(store, job.key)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded on the job and retried later
            await worker.retry_later(conn, job, exc, clock)
            return True
        await q.mark_derivatives_done(conn, sha256=job.key, now=clock.now())
        await jobs.delete(conn, [job.id])
    return True


async def run_one_fingerprint_job(pool: asyncpg.Pool, store: MediaStore, clock: Clock, *, max_pixels: int) -> bool:
    """Claim one queued fingerprint job: probe a stored photo that has no dHash or thumbprint yet
    (stored before migration 0009 queued it) and let near-duplicate detection see it; False when
    none is due. A photo that cannot be decoded here (HEIC without its decoder) is given up on;
    a store that cannot be read is retried later."""
    async with pool.acquire() as conn, conn.transaction():
        claimed = await jobs.claim(conn, kind=FINGERPRINT_JOB, now=clock.now())
        if not claimed:
            return False
        job = claimed[0]
        sha256 = job.key
        try:
            with tempfile.TemporaryDirectory(prefix="fieldsync-fingerprint-") as tmp:
                local = Path(tmp) / "original"
                await _fetch_original(store, sha256, local)
                info = await anyio.to_thread.run_sync(lambda: probe(local, max_pixels=max_pixels),
                                                      limiter=imaging_limiter())
        except (errors.MediaUndecodable, errors.MediaUnsupportedType, errors.MediaTooManyPixels) as exc:
            log.warning("photo_not_fingerprinted", sha256=sha256, reason=str(exc))
            await jobs.delete(conn, [job.id])
            return True
        except Exception as exc:  # noqa: BLE001 - the store may be down: keep the job, retry later
            await worker.retry_later(conn, job, exc, clock)
            return True
        await duplicates.fingerprinted(conn, sha256, dhash=info.dhash, thumbprint=info.thumbprint, now=clock.now())
        await jobs.delete(conn, [job.id])
    return True
