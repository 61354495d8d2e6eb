"""Media storage: the ``MediaStore`` adapters, the key layout and the upload spool.

    open_media_store(settings) -> MediaStore     (async; creates the root / bucket, then pings)
        media_url ""                   FilesystemMediaStore(<data_dir>/media)     embedded default
        media_url "file:///abs/path"   FilesystemMediaStore(/abs/path)
        media_url "s3://bucket[/pfx]"  S3MediaStore via FIELDSYNC_S3_* (minio client)
    open_spool(settings) -> Spool                (async; <data_dir>/spool, see ``spool``)
    open_upload_area(settings, store, spool) -> UploadArea   (where unfinished tus uploads live)
        beside a filesystem store      PartFileArea(<data_dir>/uploads)    one host (``uploads``)
        beside an S3 store             S3UploadArea(the same bucket)       any replica (``multipart``)
    keys.original_key(sha256), keys.derivative_key(sha256, "preview" | "thumbnail")

How the pieces meet in an upload (the endpoint and the derivative job own the policy):

    spool.staged() ─write/hash─▶ finish ─▶ checks (hash, size, imaging.probe)
        ─▶ store.put_file(original_key(sha), staged.path, ...) ─▶ commit the media row
    derivative job: store.open(original) ─▶ local temp file ─▶ imaging.render_derivatives
        ─▶ store.put_bytes(derivative_key(sha, kind), jpeg, content_type="image/jpeg")

The store is opened once in the app's lifespan and shared; it holds no per-request state. Neither
adapter needs closing. The contract every adapter keeps is in ``fieldsync.ports`` and is tested
once for both in ``tests/storage/test_contract.py``.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from fieldsync.errors import ConfigurationInvalid
from fieldsync.ports import MediaStore, UploadArea
from fieldsync.settings import Settings
from fieldsync.storage.filesystem import FilesystemMediaStore
from fieldsync.storage.multipart import S3UploadArea
from fieldsync.storage.s3 import S3MediaStore
from fieldsync.storage.spool import Spool, StagedFile
from fieldsync.storage.uploads import PartFileArea

__all__ = [
    "FilesystemMediaStore",
    "S3MediaStore",
    "Spool",
    "StagedFile",
    "filesystem_root",
    "open_media_store",
    "open_spool",
    "open_upload_area",
]


def filesystem_root(settings: Settings) -> Path | None:
    """The media root for a filesystem store, ``None`` when media lives in S3."""
    url = settings.media_url
    if not url:
        return settings.data_dir / "media"
    if url.startswith("file://"):
        parts = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ConfigurationInvalid("FIELDSYNC_MEDIA_URL must be file:///absolute/path")
        return Path(path)
    return None


async def open_media_store(settings: Settings) -> MediaStore:
    """The configured store, ready: root directory or bucket created, reachability checked.

    Raises ``ConfigurationInvalid`` for a malformed URL or endpoint and ``DependencyUnavailable``
    when the store cannot be reached or written.
    """
    root = filesystem_root(settings)
    if root is not None:
        filesystem = FilesystemMediaStore(root, timeout_s=settings.store_timeout_s)
        await filesystem.ensure_root()
        return filesystem
    if settings.media_url.startswith("s3://"):
        s3 = S3MediaStore.from_settings(settings)
        await s3.ensure_bucket()
        return s3
    raise ConfigurationInvalid("FIELDSYNC_MEDIA_URL must be empty, file:///path or s3://bucket")


async def open_spool(settings: Settings) -> Spool:
    spool = Spool(settings.data_dir / "spool", reserve_bytes=settings.disk_reserve_bytes)
    await spool.ensure()
    return spool


def open_upload_area(settings: Settings, store: MediaStore, spool: Spool) -> UploadArea:
    """The upload area the media store implies: S3 multipart beside S3 (any replica may take any
    PATCH), part files under the data directory beside a filesystem store (a single host)."""
    if isinstance(store, S3MediaStore):
        return S3UploadArea(store, spool)
    return PartFileArea(settings.data_dir / "uploads", reserve_bytes=settings.disk_reserve_bytes)
