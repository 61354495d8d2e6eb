"""A real S3 server for the tests: moto's ``ThreadedMotoServer`` on 127.0.0.1, a free port, once
per session. Nothing is mocked: the app's own ``minio`` client talks HTTP to it.

Other tiers can use it by importing the fixtures into their conftest::

    from tests.storage.conftest import moto_s3_endpoint, s3_settings_overrides  # noqa: F401

and building settings with ``Settings.from_env({}, ..., **s3_settings_overrides)``. Each use of
``s3_settings_overrides`` gets a bucket of its own (created by ``open_media_store``). Imported
into another conftest, the session fixture starts a second server for that directory; that costs
about a second.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from fieldsync.ports import MediaStore
from fieldsync.settings import Settings
from fieldsync.storage import open_media_store


@pytest.fixture(scope="session")
def moto_s3_endpoint() -> Iterator[str]:
    """``host:port`` of a moto S3 server running for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings_overrides(moto_s3_endpoint: str) -> dict[str, Any]:
    """``Settings.from_env`` overrides selecting S3 media in a fresh bucket."""
    return {
        "media_url": f"s3://fs-test-{uuid.uuid4().hex[:16]}",
        "s3_endpoint": moto_s3_endpoint,
        "s3_access_key": "fieldsync-test",
        "s3_secret_key": "fieldsync-test-secret",
        "s3_secure": False,
        "s3_region": "us-east-1",
    }


def store_settings(kind: str, tmp_path: Path, s3_overrides: dict[str, Any]) -> Settings:
    if kind == "filesystem":
        return Settings.from_env({}, data_dir=tmp_path / "data", media_url=f"file://{tmp_path / 'media'}")
    return Settings.from_env({}, data_dir=tmp_path / "data", **s3_overrides)


@pytest.fixture(params=["filesystem", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStore]:
    """Each adapter in turn, opened the way the app opens it."""
    overrides = request.getfixturevalue("s3_settings_overrides") if request.param == "s3" else {}
    yield await open_media_store(store_settings(request.param, tmp_path, overrides))
