"""Durability details of the filesystem adapter: temp file + fsync + rename + directory fsync,
nothing partial or temporary ever visible, nothing left behind by a failed write."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from fieldsync.errors import ConfigurationInvalid, DependencyUnavailable, StorageFull
from fieldsync.settings import Settings
from fieldsync.storage import FilesystemMediaStore, filesystem_root, open_media_store
from fieldsync.storage.keys import original_key


async def ready_store(root: Path) -> FilesystemMediaStore:
    store = FilesystemMediaStore(root)
    await store.ensure_root()
    return store


def source(tmp_path: Path, data: bytes) -> tuple[Path, str]:
    path = tmp_path / "spool.part"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def every_file(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


async def test_put_fsyncs_the_file_and_every_directory_it_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await ready_store(tmp_path / "media")
    path, sha = source(tmp_path, b"evidence")
    synced: list[str] = []
    real_fsync = os.fsync

    def spying_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spying_fsync)
    await store.put_file(original_key(sha), path, sha256=sha, size=8, content_type="image/jpeg")

    root = tmp_path / "media"
    final = root / original_key(sha)
    assert any(Path(name).name.startswith(".tmp-") for name in synced), synced
    assert synced[-1] == str(final.parent)
    for directory in (root, root / "originals", final.parent.parent):
        assert str(directory) in synced


async def test_a_failed_rename_leaves_no_temporary_file_and_no_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await ready_store(tmp_path / "media")
    path, sha = source(tmp_path, b"x" * 5000)

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StorageFull, match="No space left"):
        await store.put_file(original_key(sha), path, sha256=sha, size=5000, content_type="image/jpeg")
    with pytest.raises(StorageFull):
        await store.put_bytes(original_key(sha), b"abc", content_type="image/jpeg")

    assert every_file(tmp_path / "media") == []
    assert path.read_bytes() == b"x" * 5000


async def test_a_failed_fsync_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await ready_store(tmp_path / "media")
    path, sha = source(tmp_path, b"y" * 100)

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(DependencyUnavailable, match="Input/output error"):
        await store.put_file(original_key(sha), path, sha256=sha, size=100, content_type="image/jpeg")

    assert every_file(tmp_path / "media") == []


async def test_a_stored_original_shares_no_inode_with_its_source_and_is_read_only(tmp_path: Path) -> None:
    """A tus part file is truncated and rewritten by a retried last chunk after it was stored: the
    stored original must be a copy of its own (a hard link once truncated the evidence with it)."""
    store = await ready_store(tmp_path / "media")
    data = os.urandom(70_000)
    path, sha = source(tmp_path, data)
    await store.put_file(original_key(sha), path, sha256=sha, size=70_000, content_type="image/jpeg")

    stored = tmp_path / "media" / original_key(sha)
    assert stored.stat().st_ino != path.stat().st_ino
    assert stored.stat().st_mode & 0o222 == 0
    with path.open("r+b") as part:
        part.truncate(10)
        part.write(b"garbage")
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == sha


async def test_temporary_files_left_by_a_crash_are_invisible(tmp_path: Path) -> None:
    store = await ready_store(tmp_path / "media")
    sha = "ab" * 32
    directory = tmp_path / "media" / "originals" / "ab" / "ab"
    directory.mkdir(parents=True)
    (directory / f".tmp-deadbeef-{sha}").write_bytes(b"half a photo")

    assert not await store.exists(original_key(sha))
    assert [item async for item in store.list_keys()] == []


async def test_ping_fails_when_the_root_is_gone(tmp_path: Path) -> None:
    store = await ready_store(tmp_path / "media")
    (tmp_path / "media").rmdir()

    with pytest.raises(DependencyUnavailable, match="not a directory"):
        await store.ping()


async def test_ping_fails_when_the_root_is_read_only(tmp_path: Path) -> None:
    store = await ready_store(tmp_path / "media")
    (tmp_path / "media").chmod(0o500)
    try:
        if os.access(tmp_path / "media", os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        with pytest.raises(DependencyUnavailable, match="not writable"):
            await store.ping()
    finally:
        (tmp_path / "media").chmod(0o700)


async def test_a_missing_root_fails_writes_as_unavailable(tmp_path: Path) -> None:
    store = await ready_store(tmp_path / "media")
    (tmp_path / "media").rmdir()

    with pytest.raises(DependencyUnavailable):
        await store.put_bytes(original_key("c" * 64), b"x", content_type="image/jpeg")
    assert not (tmp_path / "media").exists()


async def test_default_media_url_is_media_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path / "data")

    store = await open_media_store(settings)

    assert isinstance(store, FilesystemMediaStore)
    assert store.root == tmp_path / "data" / "media"
    assert (tmp_path / "data" / "media").is_dir()


def test_file_urls_must_be_absolute(tmp_path: Path) -> None:
    assert filesystem_root(Settings.from_env({}, data_dir=tmp_path, media_url="file:///srv/m%20edia")) == Path(
        "/srv/m edia"
    )
    with pytest.raises(ConfigurationInvalid):
        filesystem_root(Settings.from_env({}, data_dir=tmp_path, media_url="file://host/srv/media"))
