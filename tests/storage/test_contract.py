"""The MediaStore contract, run against every adapter (``store`` is parametrized in conftest)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from fieldsync.errors import MediaNotFound
from fieldsync.ports import MediaStore, StoredObject
from fieldsync.storage.filesystem import FilesystemMediaStore
from fieldsync.storage.keys import derivative_key, original_key


def write(tmp_path: Path, data: bytes, name: str = "upload.part") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def read_all(store: MediaStore, key: str, **range_: int) -> bytes:
    return b"".join([chunk async for chunk in await store.open(key, **range_)])


async def listed(store: MediaStore, prefix: str = "") -> list[StoredObject]:
    return sorted([item async for item in store.list_keys(prefix)])


async def put(store: MediaStore, tmp_path: Path, data: bytes) -> tuple[str, str]:
    path, sha = write(tmp_path, data, f"{hashlib.sha256(data).hexdigest()[:8]}.part")
    key = original_key(sha)
    await store.put_file(key, path, sha256=sha, size=len(data), content_type="image/jpeg")
    return key, sha


async def test_put_file_then_read_back_byte_identical(store: MediaStore, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    key, _ = await put(store, tmp_path, data)

    assert await store.exists(key)
    assert await store.size(key) == len(data)
    assert await read_all(store, key) == data


async def test_put_file_leaves_the_source_file_untouched(store: MediaStore, tmp_path: Path) -> None:
    data = os.urandom(1000)
    path, sha = write(tmp_path, data)
    await store.put_file(original_key(sha), path, sha256=sha, size=len(data), content_type="image/png")

    assert path.read_bytes() == data
    path.unlink()
    assert await read_all(store, original_key(sha)) == data


async def test_put_of_an_existing_key_keeps_the_first_object(store: MediaStore, tmp_path: Path) -> None:
    first = os.urandom(2000)
    key, sha = await put(store, tmp_path, first)
    other, _ = write(tmp_path, os.urandom(10), "other.part")

    await store.put_file(key, other, sha256=sha, size=10, content_type="image/jpeg")
    await store.put_bytes(key, b"not it", content_type="image/jpeg")

    assert await read_all(store, key) == first


async def test_put_bytes_stores_small_objects(store: MediaStore) -> None:
    key = derivative_key("ab" * 32, "preview")
    await store.put_bytes(key, b"\xff\xd8preview", content_type="image/jpeg")

    assert await read_all(store, key) == b"\xff\xd8preview"
    assert await store.size(key) == 9


async def test_put_file_with_a_wrong_size_raises_and_stores_nothing(store: MediaStore, tmp_path: Path) -> None:
    path, sha = write(tmp_path, b"x" * 100)

    with pytest.raises(ValueError):
        await store.put_file(original_key(sha), path, sha256=sha, size=99, content_type="image/jpeg")

    assert not await store.exists(original_key(sha))
    assert await listed(store) == []


async def test_byte_ranges_read_exactly_the_requested_bytes(store: MediaStore, tmp_path: Path) -> None:
    data = os.urandom(600_000)
    key, _ = await put(store, tmp_path, data)

    assert await read_all(store, key, offset=100, length=50) == data[100:150]
    assert await read_all(store, key, offset=599_990) == data[599_990:]
    assert await read_all(store, key, offset=0, length=300_000) == data[:300_000]
    assert await read_all(store, key, offset=10, length=0) == b""
    assert await read_all(store, key, offset=len(data)) == b""
    assert await read_all(store, key, offset=len(data) + 5, length=3) == b""


async def test_missing_key_is_media_not_found(store: MediaStore) -> None:
    key = original_key("0" * 64)

    assert not await store.exists(key)
    with pytest.raises(MediaNotFound) as raised:
        await store.open(key)
    assert raised.value.code == "media.not_found"
    with pytest.raises(MediaNotFound):
        await store.size(key)
    with pytest.raises(MediaNotFound):
        await store.open(key, offset=0, length=0)


async def test_delete_removes_the_object_and_is_idempotent(store: MediaStore, tmp_path: Path) -> None:
    key, _ = await put(store, tmp_path, b"delete me")

    await store.delete(key)
    await store.delete(key)

    assert not await store.exists(key)
    assert await listed(store) == []


async def test_list_keys_filters_by_prefix_with_sizes_and_times(store: MediaStore, tmp_path: Path) -> None:
    one, sha_one = await put(store, tmp_path, b"one")
    two, sha_two = await put(store, tmp_path, b"second")
    preview = derivative_key(sha_one, "preview")
    await store.put_bytes(preview, b"jpeg", content_type="image/jpeg")

    everything = await listed(store)
    assert [item.key for item in everything] == sorted([one, two, preview])
    assert {item.key: item.size for item in everything} == {one: 3, two: 6, preview: 4}
    assert all(item.modified_at.tzinfo is not None for item in everything)

    assert [item.key for item in await listed(store, "originals/")] == sorted([one, two])
    assert [item.key for item in await listed(store, f"originals/{sha_one[:2]}")] == [
        key for key in sorted([one, two]) if key.startswith(f"originals/{sha_one[:2]}")
    ]
    assert [item.key for item in await listed(store, f"derivatives/{sha_one[:2]}/{sha_one[2:4]}/{sha_one}/")] == [
        preview
    ]
    assert await listed(store, "derivatives/zz/") == []
    assert sha_two not in preview


async def test_large_file_round_trips_through_multipart(store: MediaStore, tmp_path: Path) -> None:
    data = os.urandom(12 * 1024 * 1024 + 123)
    key, sha = await put(store, tmp_path, data)

    digest = hashlib.sha256()
    chunks = 0
    async for chunk in await store.open(key):
        digest.update(chunk)
        chunks += 1

    assert digest.hexdigest() == sha
    assert chunks > 1
    assert await store.size(key) == len(data)


async def test_ping_succeeds_on_a_ready_store(store: MediaStore) -> None:
    await store.ping()


async def test_presigned_url_serves_the_object_or_is_absent(store: MediaStore, tmp_path: Path) -> None:
    data = os.urandom(5000)
    key, sha = await put(store, tmp_path, data)

    url = await store.presigned_get_url(key, expires_s=60, filename="照片 1.jpg", content_type="image/jpeg")

    if isinstance(store, FilesystemMediaStore):
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"
    assert "filename*=UTF-8''%E7%85%A7%E7%89%87%201.jpg" in response.headers["content-disposition"]


async def test_an_abandoned_reader_can_be_closed_early(store: MediaStore, tmp_path: Path) -> None:
    key, _ = await put(store, tmp_path, os.urandom(1_000_000))

    reader = await store.open(key)
    first = await reader.__anext__()
    await reader.aclose()

    assert first
    assert await store.exists(key)


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "originals/../../x", "a//b", ".tmp-x", "a/.hidden", "a b"])
async def test_malformed_keys_are_refused(store: MediaStore, key: str) -> None:
    with pytest.raises(ValueError):
        await store.exists(key)
    with pytest.raises(ValueError):
        await store.put_bytes(key, b"x", content_type="image/jpeg")
