"""The upload spool: counts and hashes while writing, never outlives its block."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from fieldsync.settings import Settings
from fieldsync.storage import Spool, open_media_store, open_spool
from fieldsync.storage.keys import original_key


async def test_staged_file_hashes_and_counts_what_was_written(tmp_path: Path) -> None:
    spool = await open_spool(Settings.from_env({}, data_dir=tmp_path))
    data = os.urandom(3 * 1024 * 1024 + 17)

    async with spool.staged() as staged:
        for start in range(0, len(data), 65536):
            await staged.write(data[start : start + 65536])
        await staged.finish()
        assert staged.size == len(data)
        assert staged.sha256 == hashlib.sha256(data).hexdigest()
        assert staged.path.read_bytes() == data

    assert not staged.path.exists()
    assert list((tmp_path / "spool").iterdir()) == []


async def test_staged_file_is_removed_when_the_block_fails(tmp_path: Path) -> None:
    spool = await open_spool(Settings.from_env({}, data_dir=tmp_path))

    with pytest.raises(RuntimeError, match="too large"):
        async with spool.staged() as staged:
            await staged.write(b"x" * 100)
            raise RuntimeError("too large")

    assert list((tmp_path / "spool").iterdir()) == []


async def test_sha256_is_only_known_after_finish(tmp_path: Path) -> None:
    spool = await open_spool(Settings.from_env({}, data_dir=tmp_path))
    async with spool.staged() as staged:
        await staged.write(b"abc")
        with pytest.raises(RuntimeError):
            _ = staged.sha256
        await staged.finish()
        with pytest.raises(RuntimeError):
            await staged.write(b"more")
        assert staged.sha256 == hashlib.sha256(b"abc").hexdigest()


async def test_spooled_file_goes_into_the_store_and_the_spool_empties(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path / "data")
    spool = await open_spool(settings)
    store = await open_media_store(settings)

    async with spool.staged() as staged:
        await staged.write(b"photo bytes")
        await staged.finish()
        key = original_key(staged.sha256)
        await store.put_file(key, staged.path, sha256=staged.sha256, size=staged.size, content_type="image/jpeg")

    assert b"".join([chunk async for chunk in await store.open(key)]) == b"photo bytes"
    assert list((tmp_path / "data" / "spool").iterdir()) == []


async def test_remove_stale_deletes_only_old_spool_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    await spool.ensure()
    old = tmp_path / "spool" / "old.part"
    fresh = tmp_path / "spool" / "fresh.part"
    other = tmp_path / "spool" / "keep.txt"
    for path in (old, fresh, other):
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(other, (an_hour_ago, an_hour_ago))

    assert await spool.remove_stale(older_than_s=600, dry_run=True) == [old]
    assert old.exists()
    assert await spool.remove_stale(older_than_s=600) == [old]
    assert sorted(path.name for path in (tmp_path / "spool").iterdir()) == ["fresh.part", "keep.txt"]
