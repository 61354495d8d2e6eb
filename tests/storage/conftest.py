"""A real S3 server for the tests: moto's ``ThreadedMotoServer`` on 127.0.0.1, a free port, once
per session. Nothing is mocked: the app's own ``minio`` client talks HTTP to it.

The server and ``s3_settings_overrides`` live in tests/conftest.py so that every tier shares
one moto server; each use of ``s3_settings_overrides`` gets a bucket of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fieldsync.ports import MediaStore
from fieldsync.settings import Settings
from fieldsync.storage import open_media_store


def store_settings(kind: str, tmp_path: Path, s3_overrides: dict[str, Any]) -> Settings:
    if kind == "filesystem":
        return Settings.from_env({}, data_dir=tmp_path / "data", media_url=f"file://{tmp_path / 'media'}")
    return Settings.from_env({}, data_dir=tmp_path / "data", **s3_overrides)


@pytest.fixture(params=["filesystem", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MediaStore]:
    """Each adapter in turn, opened the way the app opens it."""
    overrides = request.getfixturevalue("s3_settings_overrides") if request.param == "s3" else {}
    yield await open_media_store(store_settings(request.param, tmp_path, overrides))
