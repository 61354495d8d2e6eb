"""What only the S3 adapter does: checksums and metadata on the wire, multipart, bucket setup,
key prefixes, configuration, and failures of the server or the network."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from fieldsync.errors import ConfigurationInvalid, DependencyUnavailable
from fieldsync.settings import Settings
from fieldsync.storage import S3MediaStore, open_media_store
from fieldsync.storage.keys import original_key
from fieldsync.storage.s3 import content_disposition, parse_endpoint


def settings_for(tmp_path: Path, overrides: dict[str, Any], **more: Any) -> Settings:
    return Settings.from_env({}, data_dir=tmp_path / "data", **{**overrides, **more})


def raw_client(overrides: dict[str, Any]) -> Minio:
    return Minio(
        overrides["s3_endpoint"],
        access_key=overrides["s3_access_key"],
        secret_key=overrides["s3_secret_key"],
        secure=False,
        region="us-east-1",
    )


def bucket_of(overrides: dict[str, Any]) -> str:
    return overrides["media_url"].removeprefix("s3://").split("/")[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def put_random(store: S3MediaStore, tmp_path: Path, size: int) -> tuple[str, str]:
    data = os.urandom(size)
    path = tmp_path / "upload.part"
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    await store.put_file(original_key(sha), path, sha256=sha, size=size, content_type="image/webp")
    return original_key(sha), sha


async def test_single_part_upload_sends_sha256_checksum_metadata_and_type(
    tmp_path: Path, s3_settings_overrides: dict[str, Any]
) -> None:
    store = await open_media_store(settings_for(tmp_path, s3_settings_overrides))
    assert isinstance(store, S3MediaStore)
    key, sha = await put_random(store, tmp_path, 200_000)

    stat = raw_client(s3_settings_overrides).stat_object(
        bucket_of(s3_settings_overrides), key, extra_headers={"x-amz-checksum-mode": "ENABLED"}
    )

    assert stat.content_type == "image/webp"
    assert stat.metadata["x-amz-meta-sha256"] == sha
    assert stat.metadata["x-amz-checksum-sha256"] == base64.b64encode(bytes.fromhex(sha)).decode()


async def test_files_over_the_part_size_go_up_as_multipart(tmp_path: Path, s3_settings_overrides: dict[str, Any]) -> None:
    store = await open_media_store(settings_for(tmp_path, s3_settings_overrides))
    key, sha = await put_random(store, tmp_path, 12 * 1024 * 1024)

    stat = raw_client(s3_settings_overrides).stat_object(bucket_of(s3_settings_overrides), key)

    assert stat.etag.endswith("-2")
    assert stat.metadata["x-amz-meta-sha256"] == sha


async def test_opening_twice_creates_the_bucket_once(tmp_path: Path, s3_settings_overrides: dict[str, Any]) -> None:
    settings = settings_for(tmp_path, s3_settings_overrides)
    first = await open_media_store(settings)
    key, _ = await put_random(first, tmp_path, 10)  # type: ignore[arg-type]

    second = await open_media_store(settings)

    assert await second.exists(key)
    assert raw_client(s3_settings_overrides).bucket_exists(bucket_of(s3_settings_overrides))


async def test_a_url_prefix_confines_keys_and_listing_strips_it(
    tmp_path: Path, s3_settings_overrides: dict[str, Any]
) -> None:
    url = s3_settings_overrides["media_url"] + "/city-140400"
    store = await open_media_store(settings_for(tmp_path, s3_settings_overrides, media_url=url))
    key, _ = await put_random(store, tmp_path, 64)  # type: ignore[arg-type]

    names = [item.object_name for item in raw_client(s3_settings_overrides).list_objects(
        bucket_of(s3_settings_overrides), recursive=True
    )]

    assert names == [f"city-140400/{key}"]
    assert [item.key async for item in store.list_keys("originals/")] == [key]


async def test_a_vanished_bucket_fails_ping_and_writes_as_unavailable(
    tmp_path: Path, s3_settings_overrides: dict[str, Any]
) -> None:
    store = await open_media_store(settings_for(tmp_path, s3_settings_overrides))
    raw_client(s3_settings_overrides).remove_bucket(bucket_of(s3_settings_overrides))

    with pytest.raises(DependencyUnavailable, match="does not exist"):
        await store.ping()
    with pytest.raises(DependencyUnavailable, match="NoSuchBucket"):
        await store.put_bytes(original_key("1" * 64), b"x", content_type="image/jpeg")


async def test_an_unreachable_server_is_dependency_unavailable_within_seconds(
    tmp_path: Path, s3_settings_overrides: dict[str, Any]
) -> None:
    overrides = {**s3_settings_overrides, "s3_endpoint": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()

    with pytest.raises(DependencyUnavailable) as raised:
        await open_media_store(settings_for(tmp_path, overrides))

    assert raised.value.code == "dependency.unavailable"
    assert "fieldsync-test-secret" not in str(raised.value)
    assert time.monotonic() - started < 10

    store = S3MediaStore.from_settings(settings_for(tmp_path, overrides))
    with pytest.raises(DependencyUnavailable):
        await store.ping()
    with pytest.raises(DependencyUnavailable):
        await store.open(original_key("2" * 64))
    with pytest.raises(DependencyUnavailable):
        [item async for item in store.list_keys()]


def test_endpoint_may_carry_a_scheme_that_decides_tls() -> None:
    assert parse_endpoint("minio.local:9000", True) == ("minio.local:9000", True)
    assert parse_endpoint("http://minio.local:9000", True) == ("minio.local:9000", False)
    assert parse_endpoint("https://minio.local", False) == ("minio.local", True)
    for bad in ("", "ftp://x", "http://x/path", "x/y"):
        with pytest.raises(ConfigurationInvalid):
            parse_endpoint(bad, True)


def test_missing_endpoint_or_bad_bucket_url_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationInvalid):
        S3MediaStore.from_settings(Settings.from_env({}, data_dir=tmp_path, media_url="s3://bucket"))
    with pytest.raises(ConfigurationInvalid):
        S3MediaStore.from_settings(
            Settings.from_env({}, data_dir=tmp_path, media_url="s3://bucket/../x", s3_endpoint="h:1")
        )


def test_content_disposition_has_an_ascii_fallback_and_the_utf8_name() -> None:
    assert content_disposition('隐患 "a".jpg') == (
        "attachment; filename=\"__ _a_.jpg\"; filename*=UTF-8''%E9%9A%90%E6%82%A3%20%22a%22.jpg"
    )
