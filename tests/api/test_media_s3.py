"""The media endpoints on the S3 store (real minio client against moto's S3 server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fieldsync.app import create_app
from fieldsync.settings import Settings
from fieldsync.storage import keys, open_media_store
from tests import images
from tests.conftest import running
from tests.support import hazard_report, make_user, problem


@pytest.fixture
def s3_settings(database_url: str, tmp_path: Path, s3_settings_overrides: dict[str, Any]) -> Settings:
    return Settings.from_env(
        {}, data_dir=tmp_path / "data", database_url=database_url, log_json=False, **s3_settings_overrides
    )


@pytest.fixture
async def s3_client(s3_settings: Settings, clock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(s3_settings, clock=clock)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
            yield client


async def _all_keys(settings: Settings) -> list[str]:
    store = await open_media_store(settings)
    return [item.key async for item in store.list_keys()]


async def test_upload_to_s3_and_download_through_a_presigned_redirect(s3_client, s3_settings, conn, clock):
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    photo = images.jpeg(seed=3, gps=(36.5, 112.3))
    sha = images.sha256(photo)
    created = await s3_client.put(
        f"/v1/media/{sha}", content=photo, headers={**inspector.headers, "Content-Type": "image/jpeg"}
    )
    assert created.status_code == 201, created.text
    assert keys.original_key(sha) in await _all_keys(s3_settings)
    await s3_client.put(
        f"/v1/reports/{uuid.uuid4()}", json=hazard_report(media=[{"sha256": sha}]), headers=inspector.headers
    )

    redirect = await s3_client.get(f"/v1/media/{sha}", headers=inspector.headers)
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    assert "X-Amz-Expires" in location and sha in location
    fetched = httpx.get(location, timeout=30)
    assert fetched.status_code == 200
    assert images.sha256(fetched.content) == sha

    preview = await s3_client.get(f"/v1/media/{sha}/preview", headers=inspector.headers)
    assert preview.status_code == 307
    assert httpx.get(preview.headers["location"], timeout=30).content[:3] == b"\xff\xd8\xff"

    stranger = await make_user(conn, role="inspector", jurisdiction="140403", now=clock.now())
    assert (await s3_client.get(f"/v1/media/{sha}", headers=stranger.headers)).status_code == 404


async def test_hash_mismatch_leaves_no_object_in_s3(s3_client, s3_settings, conn, clock):
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    photo = images.jpeg(seed=4)
    response = await s3_client.put(
        f"/v1/media/{'1' * 64}", content=photo, headers={**inspector.headers, "Content-Type": "image/jpeg"}
    )
    assert response.status_code == 400
    assert problem(response)["code"] == "media.hash_mismatch"
    assert await _all_keys(s3_settings) == []
