"""Backup and restore: the database first, then the media objects it refers to.

A backup directory holds::

    database.dump      pg_dump (custom format) as of one snapshot
    media/<key>        every original the dump's media rows name (and their derivatives, when
                       the store has them), copied byte for byte and checked against its SHA-256
    manifest.json      written last, atomically: a directory without it is an unfinished backup

Why this order is consistent while devices keep sending: a media row commits only after its
object is durably in the store, so every row in the dump's snapshot has its object; the media
rows are read in that same snapshot (``db.backup.exported_snapshot``), so exactly those objects
are copied. Objects that arrive later are simply not part of this backup. The one thing that can
spoil it is ``fieldsync gc`` deleting a photo between the snapshot and its copy: the backup then
fails naming it (run it again, or do not run gc at the same time).

Restore goes into an empty installation only (a database fieldsync never migrated, a store with
no object): it checks the whole backup first (the dump's and every original's SHA-256), so a
damaged backup changes nothing; then ``pg_restore``, the migrations of this release (a backup of
an older release comes up to date), a new feed epoch with every report restamped
(``services.sync.restart_feed``: devices' old cursors continue without a gap, docs/sync.md), and
finally every object into the configured store.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from fieldsync import __version__
from fieldsync.db import backup as q
from fieldsync.db.migrate import migrate
from fieldsync.db.transactions import transaction
from fieldsync.errors import BackupFailed, MediaNotFound
from fieldsync.ports import MediaStore
from fieldsync.services import sync
from fieldsync.storage import keys
from fieldsync.storage._files import fsync_directory

FORMAT = 1
MANIFEST = "manifest.json"
DUMP = "database.dump"
MEDIA = "media"
COPIES_AT_ONCE = 8
Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Manifest:
    created_at: str
    fieldsync_version: str
    schema_version: int
    feed_epoch: str
    snapshot: str
    dump_bytes: int
    dump_sha256: str
    originals: dict[str, tuple[int, str]]  # sha256 -> (bytes, content type)
    derivatives: list[str]  # keys

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **dataclasses.asdict(self)}, indent=1, sort_keys=True)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        try:
            data = json.loads((directory / MANIFEST).read_text())
        except FileNotFoundError:
            raise BackupFailed(f"{directory} holds no {MANIFEST}: not a backup, or an unfinished one") from None
        except (OSError, ValueError) as exc:
            raise BackupFailed(f"cannot read {directory / MANIFEST}: {exc}") from None
        if data.pop("format", None) != FORMAT:
            raise BackupFailed(f"{directory / MANIFEST} is not a fieldsync backup of format {FORMAT}")
        data["originals"] = {sha: (int(size), str(kind)) for sha, (size, kind) in data["originals"].items()}
        return cls(**data)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


async def _copy_out(store: MediaStore, key: str, target: Path, *, sha256: str | None, size: int | None) -> None:
    """One object from the store into ``target`` (fsynced), checked; kept if already there whole."""
    if target.is_file() and (size is None or target.stat().st_size == size) and (
            sha256 is None or await asyncio.to_thread(_sha256_of, target) == sha256):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    digest, written = hashlib.sha256(), 0
    with partial.open("wb") as out:
        async for chunk in await store.open(key):
            digest.update(chunk)
            written += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if (sha256 is not None and digest.hexdigest() != sha256) or (size is not None and written != size):
        partial.unlink()
        raise BackupFailed(f"object {key} read back {written} bytes hashing to {digest.hexdigest()}: not what "
                           "its row says; the store is damaged")
    os.replace(partial, target)


async def backup(
    conn: asyncpg.Connection, *, database_url: str, store: MediaStore, target: Path, now: dt.datetime,
    progress: Progress,
) -> Manifest:
    """Dump the database, then copy the objects it refers to; the manifest comes last."""
    if (target / MANIFEST).exists():
        raise BackupFailed(f"{target} already holds a finished backup; choose a new directory")
    target.mkdir(parents=True, exist_ok=True)
    async with q.exported_snapshot(conn) as (snapshot_id, snapshot):
        await q.dump(database_url, snapshot_id=snapshot_id, target=target / DUMP)
        rows = await q.media_rows(conn)
        epoch, schema_version = await q.feed_and_schema(conn)
    progress(f"database dumped ({(target / DUMP).stat().st_size} bytes); {len(rows)} photos to copy")
    originals = {sha: (size, content_type) for sha, size, content_type, _ in rows}
    derivatives = await _copy_media(store, target / MEDIA, rows, progress)
    manifest = Manifest(
        created_at=now.isoformat(), fieldsync_version=__version__, schema_version=schema_version, feed_epoch=epoch,
        snapshot=snapshot, dump_bytes=(target / DUMP).stat().st_size,
        dump_sha256=await asyncio.to_thread(_sha256_of, target / DUMP), originals=originals, derivatives=derivatives,
    )
    partial = target / f".{MANIFEST}.part"
    partial.write_text(manifest.to_json())
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target / MANIFEST)
    fsync_directory(target)
    return manifest


async def _copy_media(store: MediaStore, media: Path, rows: list[tuple[str, int, str, bool]], progress: Progress
                      ) -> list[str]:
    gate = asyncio.Semaphore(COPIES_AT_ONCE)
    copied: list[str] = []
    vanished: list[str] = []

    async def one(sha256: str, size: int, _: str, derived: bool) -> None:
        async with gate:
            key = keys.original_key(sha256)
            try:
                await _copy_out(store, key, media / key, sha256=sha256, size=size)
            except MediaNotFound:
                vanished.append(sha256)
                return
            for kind in keys.DERIVATIVE_KINDS if derived else ():
                derivative = keys.derivative_key(sha256, kind)
                try:
                    await _copy_out(store, derivative, media / derivative, sha256=None, size=None)
                    copied.append(derivative)
                except MediaNotFound:
                    continue  # re-rendered on demand after a restore
            if len(copied) % 500 == 0:
                progress(f"photos copied: {len(copied) // 2} of {len(rows)}")

    await asyncio.gather(*(one(*row) for row in rows))
    if vanished:
        raise BackupFailed(f"{len(vanished)} photos of the dump vanished from the store while it was copied "
                           f"(was fieldsync gc running?), e.g. {vanished[:3]}; run the backup again")
    return sorted(copied)


def check(source: Path, progress: Progress) -> Manifest:
    """The manifest, once the dump and every original match it (nothing is touched before)."""
    manifest = Manifest.read(source)
    dump = source / DUMP
    if not dump.is_file() or dump.stat().st_size != manifest.dump_bytes or _sha256_of(dump) != manifest.dump_sha256:
        raise BackupFailed(f"{dump} does not match the manifest: the backup is damaged")
    damaged = [sha for sha, (size, _) in manifest.originals.items()
               if not _original_intact(source / MEDIA / keys.original_key(sha), sha, size)]
    if damaged:
        raise BackupFailed(f"{len(damaged)} photos in the backup are missing or damaged, e.g. {damaged[:3]}")
    progress(f"backup of {manifest.created_at} checked: {len(manifest.originals)} photos, database "
             f"{manifest.dump_bytes} bytes")
    return manifest


def _original_intact(path: Path, sha256: str, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size and _sha256_of(path) == sha256


async def restore(
    conn: asyncpg.Connection, *, database_url: str, store: MediaStore, source: Path, progress: Progress
) -> dict[str, Any]:
    """Load a checked backup into an empty database and store (see the module docstring)."""
    manifest = await asyncio.to_thread(check, source, progress)
    if await q.has_schema(conn):
        raise BackupFailed("the database already holds fieldsync data; restore into an empty one")
    async for _ in store.list_keys():
        raise BackupFailed("the media store already holds objects; restore into an empty one")
    await q.restore(database_url, source=source / DUMP)
    await conn.reload_schema_state()
    applied = await migrate(conn)
    async with transaction(conn):
        epoch = await sync.restart_feed(conn)
    progress(f"database restored (migrations applied since: {len(applied)}); new feed epoch {epoch}")
    objects: list[tuple[str, str | None, str]] = [
        (keys.original_key(sha), sha, kind) for sha, (_, kind) in manifest.originals.items()]
    objects += [(key, None, "image/jpeg") for key in manifest.derivatives]
    for number, (key, sha256, content_type) in enumerate(objects, 1):
        path = source / MEDIA / key
        digest = sha256 if sha256 is not None else await asyncio.to_thread(_sha256_of, path)
        await store.put_file(key, path, sha256=digest, size=path.stat().st_size, content_type=content_type)
        if number % 500 == 0:
            progress(f"objects restored: {number} of {len(objects)}")
    return {"photos": len(manifest.originals), "derivatives": len(manifest.derivatives), "epoch": epoch,
            "backup_created_at": manifest.created_at}
