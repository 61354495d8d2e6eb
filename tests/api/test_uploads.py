"""tus 1.0.0 at /v1/uploads, in process: each extension's protocol rules, the checks a finished
upload shares with PUT /v1/media, ownership, expiry, and chunks that fail or are cut off."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import email.utils
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import asyncpg
import httpx
import pytest
from litestar import Litestar

from fieldsync.db.transactions import transaction
from fieldsync.services import identity, upload_leases
from fieldsync.settings import Settings
from fieldsync.storage.multipart import S3UploadArea
from fieldsync.storage.uploads import PartFileArea
from tests import images
from tests.support import Actor, MutableClock, make_user, problem

TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture
async def inspector(conn: asyncpg.Connection, clock: MutableClock) -> Actor:
    return await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())


@pytest.fixture
def photo() -> bytes:
    return images.jpeg(width=800, height=600, seed=41)


def metadata(**values: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in values.items())


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


async def create(
    client: httpx.AsyncClient, actor: Actor, data: bytes, *, sha: str | None = None, content_type: str = "image/jpeg",
    **headers: str,
) -> httpx.Response:
    return await client.post(
        "/v1/uploads",
        headers={
            **actor.headers, **TUS, "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(sha256=sha or images.sha256(data), content_type=content_type, filename="x.jpg"),
            **headers,
        },
    )


async def created_url(client: httpx.AsyncClient, actor: Actor, data: bytes, **kwargs: Any) -> str:
    response = await create(client, actor, data, **kwargs)
    assert response.status_code == 201, response.text
    return response.headers["location"]


async def send(
    client: httpx.AsyncClient, actor: Actor, url: str, data: bytes, offset: int, **headers: str
) -> httpx.Response:
    return await client.patch(
        url, content=data, headers={**actor.headers, **TUS, **CHUNK, "Upload-Offset": str(offset), **headers}
    )


async def offset_of(client: httpx.AsyncClient, actor: Actor, url: str) -> int:
    response = await client.head(url, headers={**actor.headers, **TUS})
    assert response.status_code == 200, response.status_code
    return int(response.headers["upload-offset"])


@pytest.fixture
def store_kind() -> str:
    """The media store, and so the upload area, under test; ``BOTH_STORES`` runs a test on each
    (those whose path through the upload area differs between part files and S3)."""
    return "filesystem"


BOTH_STORES = pytest.mark.parametrize("store_kind", ["filesystem", "s3"])


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str, tmp_path: Path, store_kind: str) -> Settings:
    media = (request.getfixturevalue("s3_settings_overrides") if store_kind == "s3"
             else {"media_url": f"file://{tmp_path / 'media'}"})
    return Settings.from_env({}, data_dir=tmp_path / "data", database_url=database_url, log_json=False, **media)


async def leftovers(app: Litestar) -> list[str]:
    """What the upload area holds, recorded or not: part files, or S3 objects and multipart
    uploads under ``uploads/``."""
    area = app.state.runtime.uploads
    if isinstance(area, PartFileArea):
        return sorted(p.name for p in area.directory.glob("*")) if area.directory.exists() else []
    assert isinstance(area, S3UploadArea)
    client, bucket = area.store.client, area.store.bucket

    def listing() -> list[str]:
        names = [str(item.object_name) for item in client.list_objects(bucket, prefix="uploads/", recursive=True)]
        pending = client._list_multipart_uploads(bucket, prefix="uploads/").uploads
        return sorted(names + [f"multipart {upload.object_name}" for upload in pending])

    return await anyio.to_thread.run_sync(listing)


async def held_bytes(app: Litestar, conn: asyncpg.Connection, url: str) -> bytes:
    """The bytes the upload area holds for what the row records (its part file, or its S3 pieces)."""
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    area = app.state.runtime.uploads
    if isinstance(area, PartFileArea):
        return area.path(upload_id).read_bytes()
    held = b""
    for segment in await conn.fetchval("SELECT segments FROM uploads WHERE id = $1", upload_id):
        assert segment["key"] is not None, "an upload smaller than a part is held in pieces"
        async for block in await app.state.runtime.media.open(segment["key"]):
            held += block
    return held


async def original_of(client: httpx.AsyncClient, actor: Actor, sha256: str) -> bytes:
    """GET /v1/media/{sha256}, following an S3 store's redirect to its presigned URL."""
    response = await client.get(f"/v1/media/{sha256}", headers=actor.headers)
    if response.status_code == 307:
        async with httpx.AsyncClient() as direct:
            response = await direct.get(response.headers["location"], timeout=30)
    assert response.status_code == 200, response.status_code
    return response.content


async def stored_objects(app: Litestar) -> list[str]:
    return sorted([item.key async for item in app.state.runtime.media.list_keys()
                   if not item.key.startswith("uploads/")])


def http_date(value: str) -> dt.datetime:
    parsed = email.utils.parsedate_to_datetime(value)
    assert value.endswith(" GMT") and parsed.tzinfo is not None, value
    return parsed


# --- core and discovery --------------------------------------------------------------------------


async def test_options_advertises_version_extensions_size_and_checksums(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    response = await client.options("/v1/uploads")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation", "creation-with-upload", "checksum", "termination", "expiration"
    }
    assert response.headers["tus-max-size"] == str(settings.max_media_bytes)
    assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"


@BOTH_STORES
async def test_upload_in_chunks_becomes_the_media_object(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, settings: Settings, clock: MutableClock,
    conn: asyncpg.Connection, app: Litestar) -> None:
    sha = images.sha256(photo)
    created = await create(client, inspector, photo)
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    assert url.startswith("/v1/uploads/")
    assert created.headers["tus-resumable"] == "1.0.0"
    assert created.headers["upload-offset"] == "0"
    assert http_date(created.headers["upload-expires"]) == clock.now() + dt.timedelta(seconds=settings.upload_expiry_s)

    head = await client.head(url, headers={**inspector.headers, **TUS})
    assert head.status_code == 200
    assert (head.headers["upload-offset"], head.headers["upload-length"]) == ("0", str(len(photo)))
    assert head.headers["cache-control"] == "no-store"
    assert "sha256 " in head.headers["upload-metadata"]
    assert "fieldsync-media-sha256" not in head.headers

    step = len(photo) // 3 + 1
    offset = 0
    while offset < len(photo):
        clock.advance(minutes=1)
        response = await send(client, inspector, url, photo[offset:offset + step], offset)
        assert response.status_code == 204, response.text
        offset = int(response.headers["upload-offset"])
        assert http_date(response.headers["upload-expires"]) > clock.now()
    assert offset == len(photo)
    assert response.headers["fieldsync-media-sha256"] == sha

    assert (await client.head(f"/v1/media/{sha}", headers=inspector.headers)).status_code == 200
    assert await original_of(client, inspector, sha) == photo
    assert await conn.fetchval("SELECT content_type FROM media WHERE sha256 = $1", sha) == "image/jpeg"
    assert await leftovers(app) == [], "the upload's bytes go once the photo is in the store"

    done = await client.head(url, headers={**inspector.headers, **TUS})
    assert done.headers["upload-offset"] == str(len(photo))
    assert done.headers["fieldsync-media-sha256"] == sha
    replay = await send(client, inspector, url, b"", len(photo))
    assert replay.status_code == 204 and replay.headers["upload-offset"] == str(len(photo))


async def test_upload_of_a_known_photo_completes_without_a_second_object(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, settings: Settings, app: Litestar) -> None:
    put = await client.put(
        f"/v1/media/{images.sha256(photo)}", content=photo, headers={**inspector.headers, "Content-Type": "image/jpeg"}
    )
    assert put.status_code == 201
    before = await stored_objects(app)
    url = await created_url(client, inspector, photo)
    response = await send(client, inspector, url, photo, 0)
    assert response.status_code == 204
    assert response.headers["fieldsync-media-sha256"] == images.sha256(photo)
    assert [o for o in await stored_objects(app) if "original" in o] == [o for o in before if "original" in o]


async def test_offset_other_than_the_current_one_is_409(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes
) -> None:
    url = await created_url(client, inspector, photo)
    assert (await send(client, inspector, url, photo[:1000], 0)).status_code == 204
    for wrong in (0, 999, 1001, len(photo)):
        response = await send(client, inspector, url, photo[wrong:wrong + 10], wrong)
        assert response.status_code == 409
        body = problem(response)
        assert (body["code"], body["offset"]) == ("upload.offset_mismatch", 1000)
    assert await offset_of(client, inspector, url) == 1000


async def test_tus_resumable_other_than_1_0_0_is_412_on_every_method(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes
) -> None:
    url = await created_url(client, inspector, photo)
    for version in (None, "0.2.2", "1.0", ""):
        headers = {**inspector.headers, **({} if version is None else {"Tus-Resumable": version})}
        calls = [
            client.post(
                "/v1/uploads", headers={**headers, "Upload-Length": "10", "Upload-Metadata": metadata(sha256="a" * 64)}
            ),
            client.head(url, headers=headers),
            client.patch(url, content=b"x", headers={**headers, **CHUNK, "Upload-Offset": "0"}),
            client.delete(url, headers=headers),
        ]
        for response in await asyncio.gather(*calls):
            assert response.status_code == 412, (version, response.request.method)
            assert response.headers["tus-version"] == "1.0.0"
            if response.request.method != "HEAD":
                assert problem(response)["code"] == "upload.version_unsupported"
    assert await offset_of(client, inspector, url) == 0


async def test_chunk_must_be_offset_octet_stream(client: httpx.AsyncClient, inspector: Actor, photo: bytes) -> None:
    url = await created_url(client, inspector, photo)
    response = await client.patch(
        url, content=photo[:100],
        headers={**inspector.headers, **TUS, "Content-Type": "image/jpeg", "Upload-Offset": "0"},
    )
    assert response.status_code == 415
    assert problem(response)["code"] == "upload.unsupported_content_type"


@BOTH_STORES
async def test_chunk_past_upload_length_is_413_and_changes_nothing(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, settings: Settings, app: Litestar, conn: asyncpg.Connection) -> None:
    url = await created_url(client, inspector, photo)
    response = await send(client, inspector, url, photo + b"extra", 0)
    assert response.status_code == 413
    assert problem(response)["code"] == "upload.length_exceeded"

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: found out while reading
        yield photo[:1000]
        yield photo[1000:] + b"more bytes than announced"

    headers = {**inspector.headers, **TUS, **CHUNK, "Upload-Offset": "0"}
    response = await client.patch(url, content=streamed(), headers=headers)
    assert response.status_code == 413
    assert await offset_of(client, inspector, url) == 0
    assert await held_bytes(app, conn, url) == b""


async def test_another_user_gets_404_and_the_upload_is_untouched(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, conn: asyncpg.Connection, clock: MutableClock
) -> None:
    url = await created_url(client, inspector, photo)
    stranger = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    admin = await make_user(conn, role="admin", jurisdiction="140400", now=clock.now())
    for other in (stranger, admin):
        assert (await client.head(url, headers={**other.headers, **TUS})).status_code == 404
        patched = await send(client, other, url, photo[:100], 0)
        assert patched.status_code == 404 and problem(patched)["code"] == "upload.not_found"
        deleted = await client.delete(url, headers={**other.headers, **TUS})
        assert deleted.status_code == 404 and problem(deleted)["code"] == "upload.not_found"
    assert await offset_of(client, inspector, url) == 0


async def test_unknown_upload_is_404(client: httpx.AsyncClient, inspector: Actor) -> None:
    unknown = "/v1/uploads/5f0c3c9e-9a8e-4bb4-8d1c-000000000000"
    response = await client.head(unknown, headers={**inspector.headers, **TUS})
    assert response.status_code == 404


# --- creation --------------------------------------------------------------------------------------


BAD_CREATIONS = {
    "no-sha256": ({"Upload-Metadata": metadata(content_type="image/jpeg")}, 400, "upload.metadata_invalid"),
    "no-content-type": ({"Upload-Metadata": metadata(sha256="ab" * 32)}, 400, "upload.metadata_invalid"),
    "sha256-not-hex": (
        {"Upload-Metadata": metadata(sha256="not hex", content_type="image/jpeg")}, 400, "upload.metadata_invalid"
    ),
    "bad-base64": (
        {"Upload-Metadata": "sha256 !!!notbase64, content_type aW1hZ2UvanBlZw=="}, 400, "upload.metadata_invalid"
    ),
    "three-parts": (
        {"Upload-Metadata": "sha256 YQ== extra, content_type aW1hZ2UvanBlZw=="}, 400, "upload.metadata_invalid"
    ),
    "repeated-key": ({"Upload-Metadata": "a YQ==,a YQ=="}, 400, "upload.metadata_invalid"),
    "empty-metadata": ({"Upload-Metadata": ""}, 400, "upload.metadata_invalid"),
    "text-type": (
        {"Upload-Metadata": metadata(sha256="ab" * 32, content_type="text/plain")}, 415, "media.unsupported_type"
    ),
    "svg-type": (
        {"Upload-Metadata": metadata(sha256="ab" * 32, content_type="image/svg+xml")}, 415, "media.unsupported_type"
    ),
    "negative-length": ({"Upload-Length": "-1"}, 400, "upload.invalid_header"),
    "length-not-a-number": ({"Upload-Length": "12abc"}, 400, "upload.invalid_header"),
    "length-huge": ({"Upload-Length": "9" * 40}, 400, "upload.invalid_header"),
    "length-over-limit": ({"Upload-Length": str(32 * 1024 * 1024 + 1)}, 413, "media.too_large"),
    "defer-length": ({"Upload-Defer-Length": "1"}, 400, "upload.invalid_header"),
    "concat": ({"Upload-Concat": "partial"}, 400, "upload.invalid_header"),
}


async def test_creation_with_bad_headers_is_refused_and_creates_nothing(
    client: httpx.AsyncClient, inspector: Actor, conn: asyncpg.Connection, settings: Settings, app: Litestar) -> None:
    base = {
        **inspector.headers, **TUS, "Upload-Length": "1000",
        "Upload-Metadata": metadata(sha256="ab" * 32, content_type="image/jpeg"),
    }
    for case, (headers, status, code) in BAD_CREATIONS.items():
        response = await client.post("/v1/uploads", headers={**base, **headers})
        assert response.status_code == status, (case, response.text)
        assert problem(response)["code"] == code, case
    assert await conn.fetchval("SELECT count(*) FROM uploads") == 0
    assert await leftovers(app) == []


async def test_creation_without_upload_length_is_400(client: httpx.AsyncClient, inspector: Actor) -> None:
    response = await client.post(
        "/v1/uploads",
        headers={**inspector.headers, **TUS, "Upload-Metadata": metadata(sha256="ab" * 32, content_type="image/png")},
    )
    assert response.status_code == 400
    assert problem(response)["field"] == "Upload-Length"


async def test_creation_with_upload_carries_the_first_chunk(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes
) -> None:
    first = photo[:5000]
    response = await client.post(
        "/v1/uploads",
        content=first,
        headers={
            **inspector.headers, **TUS, **CHUNK, "Upload-Length": str(len(photo)),
            "Upload-Metadata": metadata(sha256=images.sha256(photo), content_type="image/jpeg"),
            "Upload-Checksum": checksum("sha1", first),
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == str(len(first))
    url = response.headers["location"]
    assert await offset_of(client, inspector, url) == len(first)
    rest = await send(client, inspector, url, photo[len(first):], len(first))
    assert rest.status_code == 204
    assert rest.headers["fieldsync-media-sha256"] == images.sha256(photo)


@BOTH_STORES
async def test_creation_with_the_whole_file_completes_at_once(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes
) -> None:
    response = await client.post(
        "/v1/uploads",
        content=photo,
        headers={
            **inspector.headers, **TUS, **CHUNK, "Upload-Length": str(len(photo)),
            "Upload-Metadata": metadata(sha256=images.sha256(photo), content_type="image/jpeg"),
        },
    )
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == str(len(photo))
    assert response.headers["fieldsync-media-sha256"] == images.sha256(photo)
    assert (await client.head(f"/v1/media/{images.sha256(photo)}", headers=inspector.headers)).status_code == 200


async def test_creation_with_a_non_chunk_body_is_415(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, conn: asyncpg.Connection
) -> None:
    response = await client.post(
        "/v1/uploads",
        content=photo,
        headers={
            **inspector.headers, **TUS, "Content-Type": "image/jpeg", "Upload-Length": str(len(photo)),
            "Upload-Metadata": metadata(sha256=images.sha256(photo), content_type="image/jpeg"),
        },
    )
    assert response.status_code == 415
    assert await conn.fetchval("SELECT count(*) FROM uploads") == 0


async def test_empty_upload_is_checked_at_creation_and_refused(
    client: httpx.AsyncClient, inspector: Actor, conn: asyncpg.Connection
) -> None:
    response = await create(client, inspector, b"")
    assert response.status_code == 415, response.text
    assert await conn.fetchval("SELECT count(*) FROM uploads") == 0


# --- checksum ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("store_kind", "algorithm"), [("filesystem", "sha1"), ("filesystem", "sha256"), ("s3", "sha256")])
async def test_corrupted_chunk_gets_460_is_discarded_and_the_resent_chunk_completes(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, app: Litestar, conn: asyncpg.Connection, algorithm: str
) -> None:
    url = await created_url(client, inspector, photo)
    half = len(photo) // 2
    first, second = photo[:half], photo[half:]
    sent = await send(client, inspector, url, first, 0, **{"Upload-Checksum": checksum(algorithm, first)})
    assert sent.status_code == 204

    corrupted = bytearray(second)
    corrupted[len(corrupted) // 2] ^= 0xFF
    claimed = {"Upload-Checksum": checksum(algorithm, second)}
    response = await send(client, inspector, url, bytes(corrupted), half, **claimed)
    assert response.status_code == 460
    assert problem(response)["code"] == "upload.checksum_mismatch"
    assert await offset_of(client, inspector, url) == half
    assert await held_bytes(app, conn, url) == first

    resent = await send(client, inspector, url, second, half, **{"Upload-Checksum": checksum(algorithm, second)})
    assert resent.status_code == 204, resent.text
    assert resent.headers["fieldsync-media-sha256"] == images.sha256(photo)
    assert await original_of(client, inspector, images.sha256(photo)) == photo


async def test_unusable_upload_checksum_is_400(client: httpx.AsyncClient, inspector: Actor, photo: bytes) -> None:
    url = await created_url(client, inspector, photo)
    cases = {
        "md5 " + base64.b64encode(hashlib.md5(b"x").digest()).decode(): "upload.checksum_unsupported",
        "crc32 AAAAAA==": "upload.checksum_unsupported",
        "sha1 not*base64": "upload.invalid_header",
        "sha256 " + base64.b64encode(b"short").decode(): "upload.invalid_header",
        "sha1": "upload.invalid_header",
    }
    for value, code in cases.items():
        response = await send(client, inspector, url, photo[:100], 0, **{"Upload-Checksum": value})
        assert response.status_code == 400, value
        assert problem(response)["code"] == code, value
    assert await offset_of(client, inspector, url) == 0


# --- the final checks are PUT /v1/media's ---------------------------------------------------------


@BOTH_STORES
async def test_hash_mismatch_at_the_end_discards_the_upload(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, settings: Settings, conn: asyncpg.Connection, app: Litestar) -> None:
    url = await created_url(client, inspector, photo, sha="0" * 64)
    assert (await send(client, inspector, url, photo[:4000], 0)).status_code == 204
    response = await send(client, inspector, url, photo[4000:], 4000)
    assert response.status_code == 400
    assert problem(response)["code"] == "media.hash_mismatch"
    assert await conn.fetchval("SELECT count(*) FROM uploads") == 0
    assert await conn.fetchval("SELECT count(*) FROM media") == 0
    assert await leftovers(app) == [] and await stored_objects(app) == []
    assert (await client.head(url, headers={**inspector.headers, **TUS})).status_code == 404


@pytest.mark.parametrize(
    ("data", "declared", "status", "code"),
    [
        (images.png(), "image/jpeg", 415, "media.type_mismatch"),
        (b"hello, this is text, not a photo", "image/jpeg", 415, "media.unsupported_type"),
        (images.jpeg()[:3000], "image/jpeg", 422, "media.undecodable"),
    ],
    ids=["png-declared-jpeg", "text", "truncated-jpeg"],
)
async def test_content_that_put_refuses_is_refused_at_the_end(
    client: httpx.AsyncClient, inspector: Actor, settings: Settings, conn: asyncpg.Connection, data: bytes,
    declared: str, status: int, code: str, app: Litestar) -> None:
    put = await client.put(
        f"/v1/media/{images.sha256(data)}", content=data, headers={**inspector.headers, "Content-Type": declared}
    )
    url = await created_url(client, inspector, data, content_type=declared)
    response = await send(client, inspector, url, data, 0)
    assert (put.status_code, problem(put)["code"]) == (status, code)
    assert (response.status_code, problem(response)["code"]) == (status, code)
    assert await conn.fetchval("SELECT count(*) FROM uploads") == 0
    assert await conn.fetchval("SELECT count(*) FROM media") == 0
    assert await leftovers(app) == [] and await stored_objects(app) == []


# --- termination and expiration --------------------------------------------------------------------


@BOTH_STORES
async def test_termination_removes_the_bytes_and_the_state(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, settings: Settings, conn: asyncpg.Connection, app: Litestar) -> None:
    url = await created_url(client, inspector, photo)
    assert (await send(client, inspector, url, photo[:2000], 0)).status_code == 204
    assert len(await leftovers(app)) == 1
    response = await client.delete(url, headers={**inspector.headers, **TUS})
    assert response.status_code == 204
    assert response.headers["tus-resumable"] == "1.0.0"
    assert await leftovers(app) == []
    assert await conn.fetchval("SELECT count(*) FROM uploads") == 0
    assert (await client.head(url, headers={**inspector.headers, **TUS})).status_code == 404
    assert (await send(client, inspector, url, photo[2000:3000], 2000)).status_code == 404


async def signed_in_again(conn: asyncpg.Connection, actor: Actor, now: dt.datetime) -> Actor:
    """The same user with a session issued at ``now`` (the first one expires within a day)."""
    async with transaction(conn):
        token, _ = await identity.issue_session(conn, user_id=actor.user_id, now=now, ttl_s=86400)
    return dataclasses.replace(actor, token=token)


async def test_expired_upload_answers_410(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, settings: Settings, clock: MutableClock,
    conn: asyncpg.Connection
) -> None:
    url = await created_url(client, inspector, photo)
    clock.advance(hours=1)
    assert (await send(client, inspector, url, photo[:2000], 0)).status_code == 204
    clock.advance(seconds=settings.upload_expiry_s - 1)
    inspector = await signed_in_again(conn, inspector, clock.now())
    assert await offset_of(client, inspector, url) == 2000, "a PATCH slides the expiry forward"
    clock.advance(seconds=2)
    assert (await client.head(url, headers={**inspector.headers, **TUS})).status_code == 410
    response = await send(client, inspector, url, photo[2000:], 2000)
    assert response.status_code == 410
    assert problem(response)["code"] == "upload.expired"


# --- interrupted and concurrent chunks -------------------------------------------------------------


async def raw_patch(
    app: Litestar, actor: Actor, url: str, pieces: list[bytes], *, total: int, offset: int, **headers: str
) -> list[dict[str, Any]]:
    """PATCH through the ASGI interface, with a client that vanishes after sending ``pieces``."""
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send_message(message: dict[str, Any]) -> None:
        sent.append(message)

    all_headers = {
        **actor.headers, **TUS, **CHUNK, "Upload-Offset": str(offset), "Content-Length": str(total), **headers,
        "Host": "testserver.local",
    }
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PATCH", "scheme": "http",
        "path": url, "raw_path": url.encode(), "query_string": b"", "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "client": ("127.0.0.1", 50001), "server": ("testserver.local", 80), "state": {},
    }
    await app(scope, receive, send_message)
    return sent


@BOTH_STORES
async def test_interrupted_chunk_keeps_the_bytes_that_arrived(
    app: Litestar, client: httpx.AsyncClient, inspector: Actor, photo: bytes, settings: Settings, conn: asyncpg.Connection) -> None:
    url = await created_url(client, inspector, photo)
    arrived = photo[:3000] + photo[3000:7000]
    await raw_patch(app, inspector, url, [photo[:3000], photo[3000:7000]], total=len(photo), offset=0)
    assert await offset_of(client, inspector, url) == len(arrived)
    assert await held_bytes(app, conn, url) == arrived
    response = await send(client, inspector, url, photo[len(arrived):], len(arrived))
    assert response.status_code == 204
    assert response.headers["fieldsync-media-sha256"] == images.sha256(photo)


@BOTH_STORES
async def test_interrupted_chunk_with_a_checksum_keeps_nothing(
    app: Litestar, client: httpx.AsyncClient, inspector: Actor, photo: bytes
) -> None:
    url = await created_url(client, inspector, photo)
    await raw_patch(
        app, inspector, url, [photo[:3000]], total=len(photo), offset=0, **{"Upload-Checksum": checksum("sha1", photo)}
    )
    assert await offset_of(client, inspector, url) == 0


@BOTH_STORES
async def test_concurrent_chunks_to_one_upload_do_not_interleave(
    client: httpx.AsyncClient, inspector: Actor, photo: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_leases, "LOCK_WAIT_S", 0.3)
    url = await created_url(client, inspector, photo)
    release = asyncio.Event()
    first_half_sent = asyncio.Event()
    half = len(photo) // 2

    async def slow_body() -> AsyncIterator[bytes]:
        yield photo[:half]
        first_half_sent.set()
        await release.wait()
        yield photo[half:]

    slow = asyncio.create_task(
        client.patch(
            url, content=slow_body(),
            headers={**inspector.headers, **TUS, **CHUNK, "Upload-Offset": "0", "Content-Length": str(len(photo))},
        )
    )
    await first_half_sent.wait()
    await asyncio.sleep(0.05)
    rival = await send(client, inspector, url, b"\x00" * 100, 0)
    assert rival.status_code == 409
    assert problem(rival)["code"] == "upload.locked"
    release.set()
    finished = await slow
    assert finished.status_code == 204, finished.text
    assert finished.headers["fieldsync-media-sha256"] == images.sha256(photo)
    late = await send(client, inspector, url, b"\x00" * 100, 0)
    assert late.status_code == 409 and problem(late)["code"] == "upload.offset_mismatch"


@BOTH_STORES
async def test_chunks_streaming_from_more_devices_than_pool_connections_hold_no_connection(
    client: httpx.AsyncClient, app: Litestar, inspector: Actor
) -> None:
    """A PATCH on a poor link streams for minutes. It gives the pooled connection back while the
    body streams (the upload's lock is a file lock, not a database lock), so more devices than
    the pool has connections can each be mid-chunk while the API still answers."""
    from tests.api.test_media_pool import GatedBodies, connections_in_use

    photos = [images.jpeg(64, 48, seed=seed) for seed in range(25)]
    assert len(photos) > app.state.runtime.pool.get_max_size()
    urls = [await created_url(client, inspector, photo) for photo in photos]
    bodies = GatedBodies(len(photos))
    patches = [
        asyncio.create_task(client.patch(url, content=bodies.body(photo), headers={
            **inspector.headers, **TUS, **CHUNK, "Upload-Offset": "0", "Content-Length": str(len(photo))}))
        for url, photo in zip(urls, photos, strict=True)
    ]
    try:
        await asyncio.wait_for(bodies.all_mid_body.wait(), timeout=10)
        await asyncio.sleep(0.05)
        in_use = await connections_in_use(app)
        me = await client.get("/v1/me", headers=inspector.headers)
    finally:
        bodies.gate.set()
        responses = await asyncio.wait_for(asyncio.gather(*patches), timeout=60)

    assert in_use == 0
    assert me.status_code == 200
    assert [r.status_code for r in responses] == [204] * len(photos), [r.text for r in responses if r.status_code != 204]
    assert {r.headers["fieldsync-media-sha256"] for r in responses} == {images.sha256(photo) for photo in photos}


async def test_garbage_tus_headers_get_4xx_never_500(client: httpx.AsyncClient, inspector: Actor, photo: bytes) -> None:
    url = await created_url(client, inspector, photo)
    bad_patches = [
        {"Upload-Offset": "-5"}, {"Upload-Offset": "1e3"}, {"Upload-Offset": ""}, {"Upload-Offset": "0x10"},
        {"Upload-Offset": "0", "Content-Length": "abc"}, {"Upload-Offset": "0", "Upload-Checksum": "sha256  "},
        {"Upload-Offset": "0", "Upload-Checksum": "SHA1 " + "A" * 500},
    ]
    for headers in bad_patches:
        response = await client.patch(url, content=b"abc", headers={**inspector.headers, **TUS, **CHUNK, **headers})
        assert 400 <= response.status_code < 500, (headers, response.status_code, response.text)
        json.loads(response.text)
    no_offset = await client.patch(url, content=b"abc", headers={**inspector.headers, **TUS, **CHUNK})
    assert no_offset.status_code == 400 and problem(no_offset)["field"] == "Upload-Offset"
    assert (await client.head("/v1/uploads/not-a-uuid", headers={**inspector.headers, **TUS})).status_code in (400, 404)
    assert await offset_of(client, inspector, url) == 0
