"""Garbage collection: what may be deleted, deleted in the order that never loses a reference.

The kinds of garbage:
- media rows (and their objects) that no report references, not uploaded within the grace
  period: in one transaction under the photo's lock, the row is locked, re-checked and deleted,
  then its objects; a report that references the hash afterwards simply lists it in
  ``missing_media`` and the device uploads it again;
- objects without a row, older than the grace period: a crash between the store write and the
  row's commit leaves these; each is re-checked under the photo's lock before it goes.

Safe at any grace, 0 included, beside running uploads and reports: see ``db.gc`` (a reference
being written holds the row) and ``services.media`` (the lock an upload holds while it commits).
- spool files left by a crash;
- tus uploads past their expiry (row and bytes: part file, or S3 pieces and multipart upload;
  ``services.uploads.remove_expired``), and bytes of uploads without an unfinished row;
- login and enrollment failure counters whose throttle window has ended (the next attempt under
  that key would start a new window anyway).
Referenced objects are never touched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import asyncpg

from fieldsync.db import gc as q
from fieldsync.db import identity as identity_q
from fieldsync.db import media as media_q
from fieldsync.db.transactions import transaction
from fieldsync.ports import MediaStore, UploadArea
from fieldsync.services import uploads
from fieldsync.storage import keys
from fieldsync.storage.spool import Spool

SPOOL_STALE_S = 3600
BATCH = 500


@dataclasses.dataclass(slots=True)
class GcReport:
    dry_run: bool
    unreferenced_media: list[str] = dataclasses.field(default_factory=list)
    orphan_objects: list[str] = dataclasses.field(default_factory=list)
    stale_spool_files: int = 0
    objects_scanned: int = 0
    expired_uploads: int = 0
    stale_upload_parts: int = 0
    stale_throttle_counters: int = 0


async def _delete_objects(store: MediaStore, sha256: str) -> None:
    """Derivatives first, the original last: if the store fails midway, the caller's transaction
    rolls the row's deletion back and the original is still there (derivatives are re-rendered)."""
    for kind in keys.DERIVATIVE_KINDS:
        await store.delete(keys.derivative_key(sha256, kind))
    await store.delete(keys.original_key(sha256))


async def _remove_unreferenced(
    conn: asyncpg.Connection, store: MediaStore, report: GcReport, *, cutoff: dt.datetime
) -> None:
    """Rows (and their objects) no report references, untouched since ``cutoff``; each under the
    photo's lock, so an upload of the same bytes waits and then finds the object gone."""
    for sha256 in await q.list_unreferenced_media(conn, older_than=cutoff):
        if report.dry_run:
            report.unreferenced_media.append(sha256)
            continue
        async with transaction(conn):
            await media_q.lock_object(conn, sha256)
            if await q.delete_media_if_unreferenced(conn, sha256, older_than=cutoff):
                await _delete_objects(store, sha256)
                report.unreferenced_media.append(sha256)


async def _remove_orphans(
    conn: asyncpg.Connection, store: MediaStore, report: GcReport, *, cutoff: dt.datetime,
    progress: Callable[[str], None],
) -> None:
    """Objects without a row, older than ``cutoff``: a crash between put and commit leaves them.
    Each is re-checked under the photo's lock, so an upload between its put and its commit (which
    holds the lock) is never robbed of its object; one that is robbed earlier puts it again."""
    pending: list[tuple[str, str]] = []

    async def settle() -> None:
        known = await q.known_media(conn, [sha for _, sha in pending])
        for key, sha in pending:
            if sha in known:
                continue
            if report.dry_run:
                report.orphan_objects.append(key)
                continue
            async with transaction(conn):
                await media_q.lock_object(conn, sha)
                if not await q.known_media(conn, [sha]):
                    await store.delete(key)
                    report.orphan_objects.append(key)
        pending.clear()
        progress(f"objects scanned: {report.objects_scanned}, without a row: {len(report.orphan_objects)}")

    async for item in store.list_keys():
        report.objects_scanned += 1
        sha = keys.sha256_of_key(item.key)
        if sha is None or item.modified_at >= cutoff:
            continue
        pending.append((item.key, sha))
        if len(pending) >= BATCH:
            await settle()
    await settle()


async def collect(
    conn: asyncpg.Connection,
    *,
    store: MediaStore,
    spool: Spool,
    upload_area: UploadArea,
    now: dt.datetime,
    grace_s: int,
    dry_run: bool,
    throttle_window_s: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> GcReport:
    """Remove every kind of garbage listed above; safe at any grace, beside running uploads."""
    report = GcReport(dry_run=dry_run)
    cutoff = now - dt.timedelta(seconds=grace_s)
    await _remove_unreferenced(conn, store, report, cutoff=cutoff)
    progress(f"unreferenced media {'found' if dry_run else 'removed'}: {len(report.unreferenced_media)}")
    await _remove_orphans(conn, store, report, cutoff=cutoff, progress=progress)

    stale = await spool.remove_stale(older_than_s=SPOOL_STALE_S, dry_run=dry_run)
    report.stale_spool_files = len(stale)
    progress(f"stale spool files {'found' if dry_run else 'removed'}: {len(stale)}")

    report.expired_uploads = await uploads.remove_expired(conn, area=upload_area, now=now, dry_run=dry_run)
    report.stale_upload_parts = await uploads.remove_stale_parts(conn, area=upload_area, dry_run=dry_run)
    progress(
        f"expired uploads {'found' if dry_run else 'removed'}: {report.expired_uploads}, "
        f"part files without an upload: {report.stale_upload_parts}"
    )
    if throttle_window_s:
        report.stale_throttle_counters = await identity_q.stale_failures(
            conn, window_before=now - dt.timedelta(seconds=throttle_window_s), delete=not dry_run
        )
        progress(f"ended login/enrollment throttle windows {'found' if dry_run else 'removed'}: "
                 f"{report.stale_throttle_counters}")
    return report
