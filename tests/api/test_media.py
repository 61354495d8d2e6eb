"""PUT/HEAD/GET /v1/media: streamed, hashed, checked uploads; derivatives; who may download."""

from __future__ import annotations

import dataclasses
import io
import uuid
from pathlib import Path

import asyncpg
import pytest
from PIL import Image

from fieldsync.services import media
from fieldsync.storage import FilesystemMediaStore, keys, open_spool
from tests import images
from tests.support import Actor, hazard_report, make_user, principal_of, problem


@pytest.fixture
async def inspector(conn, clock) -> Actor:
    return await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())


async def upload(client, actor: Actor, data: bytes, *, content_type: str = "image/jpeg", sha: str | None = None):
    return await client.put(
        f"/v1/media/{sha or images.sha256(data)}",
        content=data,
        headers={**actor.headers, "Content-Type": content_type},
    )


def stored_objects(settings) -> list[str]:
    root = settings.data_dir.parent / "media"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


async def test_upload_returns_metadata_and_is_idempotent(client, inspector):
    photo = images.jpeg(gps=(36.5, 112.3))
    first = await upload(client, inspector, photo)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["sha256"] == images.sha256(photo)
    assert (body["bytes"], body["content_type"], body["width"], body["height"]) == (len(photo), "image/jpeg", 640, 480)
    assert body["exif"]["make"] == "HUAWEI" and body["exif"]["model"] == "P60"
    assert body["exif"]["lat"] == pytest.approx(36.5, abs=1e-4)
    assert body["exif"]["lon"] == pytest.approx(112.3, abs=1e-4)
    assert body["exif"]["taken_at"].startswith("2026-06-01T15:20:00")
    again = await upload(client, inspector, photo)
    assert again.status_code == 200
    assert again.json() == body


async def test_hash_mismatch_is_rejected_and_nothing_is_kept(client, inspector, settings, conn):
    photo = images.jpeg()
    response = await upload(client, inspector, photo, sha="0" * 64)
    assert response.status_code == 400
    assert problem(response)["code"] == "media.hash_mismatch"
    assert stored_objects(settings) == []
    assert await conn.fetchval("SELECT count(*) FROM media") == 0
    assert list((settings.data_dir / "spool").glob("*")) == []


async def test_oversized_body_gets_413_before_it_is_read(client, inspector, settings, conn):
    too_big = settings.max_media_bytes + 1
    response = await client.put(
        f"/v1/media/{'a' * 64}",
        content=b"\xff" * 1024,
        headers={**inspector.headers, "Content-Type": "image/jpeg", "Content-Length": str(too_big)},
    )
    assert response.status_code == 413
    assert problem(response)["code"] == "media.too_large"


async def test_streamed_body_over_the_limit_is_cut_off(app, client, inspector, settings):
    limit = settings.max_media_bytes
    sent = 0

    async def body():
        nonlocal sent
        chunk = b"\x00" * (1024 * 1024)
        while sent < limit + 4 * len(chunk):
            sent += len(chunk)
            yield chunk

    response = await client.put(
        f"/v1/media/{'b' * 64}", content=body(), headers={**inspector.headers, "Content-Type": "image/jpeg"}
    )
    assert response.status_code == 413
    assert sent <= limit + 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"hello, this is text", "image/jpeg", 415, "media.unsupported_type"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>', "image/jpeg", 415,
         "media.unsupported_type"),
        (images.png(), "image/jpeg", 415, "media.type_mismatch"),
        (images.jpeg()[:3000], "image/jpeg", 422, "media.undecodable"),
        (images.jpeg(), "image/svg+xml", 415, "media.unsupported_type"),
        (images.jpeg(), "text/plain", 415, "media.unsupported_type"),
    ],
    ids=["text", "svg", "png-declared-jpeg", "truncated-jpeg", "svg-content-type", "text-content-type"],
)
async def test_bad_images_get_4xx_and_leave_nothing(client, inspector, settings, conn, data, content_type, status, code):
    response = await upload(client, inspector, data, content_type=content_type)
    assert response.status_code == status, response.text
    assert problem(response)["code"] == code
    assert stored_objects(settings) == []
    assert await conn.fetchval("SELECT count(*) FROM media") == 0


async def test_decompression_bomb_is_refused(client, inspector, settings):
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")
    bomb = out.getvalue()
    assert len(bomb) < 200_000
    response = await upload(client, inspector, bomb, content_type="image/png")
    assert response.status_code == 422
    assert problem(response)["code"] == "media.too_many_pixels"
    assert stored_objects(settings) == []


async def test_head_and_missing(client, inspector):
    photo = images.jpeg(seed=5)
    sha = images.sha256(photo)
    other = images.sha256(b"never uploaded")
    assert (await client.head(f"/v1/media/{sha}", headers=inspector.headers)).status_code == 404
    await upload(client, inspector, photo)
    assert (await client.head(f"/v1/media/{sha}", headers=inspector.headers)).status_code == 200
    response = await client.post("/v1/media/missing", json={"sha256": [sha, other, other]}, headers=inspector.headers)
    assert response.status_code == 200
    assert response.json() == {"missing": [other]}
    too_many = await client.post("/v1/media/missing", json={"sha256": [other] * 1001}, headers=inspector.headers)
    assert too_many.status_code == 400


async def test_upload_removes_photo_from_report_missing_media(client, inspector):
    first, second = images.jpeg(seed=11), images.jpeg(seed=12)
    report_id = uuid.uuid4()
    body = hazard_report(
        media=[{"sha256": images.sha256(first), "role": "photo"}, {"sha256": images.sha256(second), "role": "photo"}]
    )
    created = await client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers)
    assert created.json()["missing_media"] == [images.sha256(first), images.sha256(second)]
    await upload(client, inspector, first)
    replay = await client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers)
    assert replay.json()["missing_media"] == [images.sha256(second)]


async def test_originals_are_byte_identical_and_derivatives_are_stripped(client, inspector, conn, clock):
    photo = images.jpeg(width=2000, height=1500, gps=(36.5, 112.3), orientation=6)
    sha = images.sha256(photo)
    await upload(client, inspector, photo)
    report_id = uuid.uuid4()
    await client.put(
        f"/v1/reports/{report_id}", json=hazard_report(media=[{"sha256": sha, "role": "photo"}]),
        headers=inspector.headers,
    )
    original = await client.get(f"/v1/media/{sha}", headers=inspector.headers)
    assert original.status_code == 200
    assert images.sha256(original.content) == sha
    for kind, bound in (("preview", 1280), ("thumbnail", 320)):
        response = await client.get(f"/v1/media/{sha}/{kind}", headers=inspector.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        derived = Image.open(io.BytesIO(response.content))
        assert max(derived.size) <= bound
        assert derived.height > derived.width, "orientation 6 (rotate 90) must be applied"
        assert len(derived.getexif()) == 0
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(derived.info)


async def test_inspector_of_another_county_gets_404_for_original_and_derivatives(client, inspector, conn, clock):
    photo = images.jpeg(seed=21)
    sha = images.sha256(photo)
    await upload(client, inspector, photo)
    await client.put(
        f"/v1/reports/{uuid.uuid4()}", json=hazard_report(media=[{"sha256": sha, "role": "photo"}]),
        headers=inspector.headers,
    )
    stranger = await make_user(conn, role="inspector", jurisdiction="140403", now=clock.now())
    county_supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    other_supervisor = await make_user(conn, role="supervisor", jurisdiction="140403", now=clock.now())
    for suffix in ("", "/preview", "/thumbnail"):
        assert (await client.get(f"/v1/media/{sha}{suffix}", headers=stranger.headers)).status_code == 404
        assert (await client.get(f"/v1/media/{sha}{suffix}", headers=other_supervisor.headers)).status_code == 404
        assert (await client.get(f"/v1/media/{sha}{suffix}", headers=county_supervisor.headers)).status_code == 200


async def test_report_detail_flags_a_photo_taken_far_away(client, inspector, conn, clock):
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    near = images.jpeg(seed=31, gps=(36.5005, 112.3005), taken_at="2026:06:01 15:20:00")
    far = images.jpeg(seed=32, gps=(36.86, 112.3), taken_at="2026:05:20 09:00:00")
    for photo in (near, far):
        await upload(client, inspector, photo)
    report_id = uuid.uuid4()
    await client.put(
        f"/v1/reports/{report_id}",
        json=hazard_report(media=[{"sha256": images.sha256(near)}, {"sha256": images.sha256(far)}]),
        headers=inspector.headers,
    )
    detail = (await client.get(f"/v1/reports/{report_id}", headers=supervisor.headers)).json()
    near_item, far_item = detail["media"]
    assert near_item["present"] and near_item["evidence"]["flags"] == []
    assert near_item["evidence"]["distance_m"] < 100
    assert far_item["evidence"]["distance_m"] > 39_000
    assert set(far_item["evidence"]["flags"]) == {"location_far", "time_far"}
    assert near_item["url"] == f"/v1/media/{images.sha256(near)}"


async def test_derivatives_are_stored_with_the_upload_from_its_one_decode(client, inspector, conn, settings):
    photo = images.jpeg(seed=41, gps=(36.5, 112.3))
    sha = images.sha256(photo)
    answer = await upload(client, inspector, photo)
    assert answer.status_code == 201
    assert await conn.fetchval("SELECT derivatives_at IS NOT NULL FROM media WHERE sha256 = $1", sha)
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0, "no background job for a photo rendered at once"
    names = stored_objects(settings)
    assert any(n.endswith(f"{sha}/preview.jpg") for n in names)
    assert any(n.endswith(f"{sha}/thumbnail.jpg") for n in names)
    preview = await client.get(f"/v1/media/{sha}/preview", headers=inspector.headers)
    assert preview.status_code == 200
    assert b"Exif" not in preview.content and b"GPS" not in preview.content


async def test_a_derivative_a_power_cut_left_empty_is_rendered_again(client, inspector, settings):
    """Derivatives are stored without fsync (they can be made again): one found empty is remade."""
    photo = images.jpeg(seed=43)
    sha = images.sha256(photo)
    assert (await upload(client, inspector, photo)).status_code == 201
    [thumbnail] = [settings.data_dir.parent / "media" / name for name in stored_objects(settings)
                   if name.endswith(f"{sha}/thumbnail.jpg")]
    thumbnail.chmod(0o644)
    thumbnail.write_bytes(b"")

    answer = await client.get(f"/v1/media/{sha}/thumbnail", headers=inspector.headers)

    assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8"
    assert Image.open(io.BytesIO(answer.content)).size == (320, 240)
    assert thumbnail.stat().st_size == len(answer.content)


async def test_a_photo_kept_without_derivatives_gets_them_from_the_background_job(
    conn, database_url, settings, clock, inspector
):
    """The fallback when rendering failed after a clean decode: the row is kept, the job queued,
    and the worker renders them from the stored original."""
    store = FilesystemMediaStore(Path(settings.media_url.removeprefix("file://")))
    await store.ensure_root()
    spool = await open_spool(settings)
    actor = principal_of(inspector, "/140000/140400/140431/")
    async with spool.staged() as staged:
        await staged.write(images.jpeg(seed=42))
        await staged.finish()
        checked = await media.check_media(staged, expected_sha256=staged.sha256, declared_type="image/jpeg",
                                          max_pixels=10_000_000)
        kept = await media.keep_media(media.holding(conn), actor, staged=staged,
                                      checked=dataclasses.replace(checked, derivatives=None), store=store,
                                      now=clock.now())
    assert kept.created and kept.queued
    sha = kept.record.sha256
    assert await conn.fetchval("SELECT derivatives_at IS NULL FROM media WHERE sha256 = $1", sha)
    assert not await store.exists(keys.derivative_key(sha, "preview"))
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        assert await media.run_one_derivative_job(pool, store, clock)
    finally:
        await pool.close()
    assert await store.exists(keys.derivative_key(sha, "preview"))
    assert await store.exists(keys.derivative_key(sha, "thumbnail"))
    assert await conn.fetchval("SELECT derivatives_at IS NOT NULL FROM media WHERE sha256 = $1", sha)
    assert await conn.fetchval("SELECT count(*) FROM jobs") == 0


async def test_every_download_of_an_original_and_a_supervisors_look_are_audit_events(client, inspector, conn, clock):
    photo = images.jpeg(seed=51)
    sha = images.sha256(photo)
    await upload(client, inspector, photo)
    await client.put(
        f"/v1/reports/{uuid.uuid4()}", json=hazard_report(media=[{"sha256": sha}]), headers=inspector.headers
    )
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    assert (await client.get(f"/v1/media/{sha}", headers=inspector.headers)).status_code == 200
    assert (await client.get(f"/v1/media/{sha}/thumbnail", headers=inspector.headers)).status_code == 200
    assert (await client.get(f"/v1/media/{sha}", headers=supervisor.headers)).status_code == 200
    assert (await client.get(f"/v1/media/{sha}/thumbnail", headers=supervisor.headers)).status_code == 200
    rows = await conn.fetch("SELECT actor_id, action, detail FROM events WHERE chain = $1 ORDER BY position", f"media:{sha}")
    assert [(r["actor_id"], r["action"], r["detail"]) for r in rows] == [
        (inspector.user_id, "media_access", '{"variant":"original"}'),
        (supervisor.user_id, "media_access", '{"variant":"original"}'),
        (supervisor.user_id, "media_access", '{"variant":"thumbnail"}'),
    ]


async def test_originals_are_attachments_that_are_never_sniffed(client, inspector):
    photo = images.jpeg(seed=52)
    sha = images.sha256(photo)
    await upload(client, inspector, photo)
    original = await client.get(f"/v1/media/{sha}", headers=inspector.headers)
    assert original.headers["content-disposition"] == f'attachment; filename="{sha}.jpg"'
    assert original.headers["x-content-type-options"] == "nosniff"
    preview = await client.get(f"/v1/media/{sha}/preview", headers=inspector.headers)
    assert preview.headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in preview.headers
