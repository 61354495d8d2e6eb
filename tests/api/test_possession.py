"""Knowing a hash grants nothing (SPEC §3): a report's photo counts only once its author (or the
user who attached it) uploaded the bytes; until then it stays in missing_media, and neither the
original, its derivatives, HEAD nor /missing treat it as held by anyone who merely named it."""

from __future__ import annotations

import uuid

import pytest

from tests import images
from tests.api.test_duplicates import upload
from tests.api.test_sync import pull_all
from tests.support import Actor, hazard_report, make_user


@pytest.fixture
async def people(conn, clock) -> dict[str, Actor]:
    now = clock.now()
    return {
        "victim": await make_user(conn, role="inspector", jurisdiction="140403", now=now),
        "snoop": await make_user(conn, role="inspector", jurisdiction="140431", now=now),
        "snoop_county": await make_user(conn, role="supervisor", jurisdiction="140431", now=now),
    }


@pytest.fixture
async def secret_photo(client, people) -> tuple[str, bytes]:
    """A photo with GPS in its EXIF, uploaded and used by the 潞州区 inspector only."""
    data = images.encode(images.scene(5), quality=88)
    sha = await upload(client, people["victim"], data)
    response = await client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(
        jurisdiction="140403", media=[{"sha256": sha, "role": "photo"}]), headers=people["victim"].headers)
    assert response.status_code == 201 and response.json()["missing_media"] == []
    return sha, data


async def snoop_report(client, snoop: Actor, sha: str) -> str:
    report_id = str(uuid.uuid4())
    response = await client.put(f"/v1/reports/{report_id}", json=hazard_report(
        media=[{"sha256": sha, "role": "photo"}]), headers=snoop.headers)
    assert response.status_code == 201, response.text
    assert response.json()["missing_media"] == [sha], "the object exists, but its author never sent it"
    return report_id


async def test_naming_a_hash_grants_nothing(client, people, secret_photo) -> None:
    sha, _ = secret_photo
    report_id = await snoop_report(client, people["snoop"], sha)
    for reader in (people["snoop"], people["snoop_county"]):
        for suffix in ("", "/preview", "/thumbnail"):
            got = await client.get(f"/v1/media/{sha}{suffix}", headers=reader.headers)
            assert got.status_code == 404, (reader.role, suffix, got.status_code)
        assert (await client.head(f"/v1/media/{sha}", headers=reader.headers)).status_code == 404
        asked = await client.post("/v1/media/missing", json={"sha256": [sha]}, headers=reader.headers)
        assert asked.json() == {"missing": [sha]}
    detail = (await client.get(f"/v1/reports/{report_id}", headers=people["snoop_county"].headers)).json()
    assert detail["missing_media"] == [sha]
    assert detail["media"][0]["present"] is False and detail["media"][0]["url"] is None
    listed = await client.get("/v1/reports", params={"missing_media": "true"}, headers=people["snoop_county"].headers)
    assert [item["id"] for item in listed.json()["items"]] == [report_id]


async def test_wrong_bytes_for_the_hash_prove_nothing(client, people, secret_photo) -> None:
    sha, _ = secret_photo
    report_id = await snoop_report(client, people["snoop"], sha)
    forged = images.encode(images.scene(6), quality=88)
    response = await client.put(f"/v1/media/{sha}", content=forged,
                                headers={**people["snoop"].headers, "Content-Type": "image/jpeg"})
    assert response.status_code == 400 and response.json()["code"] == "media.hash_mismatch"
    detail = (await client.get(f"/v1/reports/{report_id}", headers=people["snoop"].headers)).json()
    assert detail["missing_media"] == [sha]


async def test_uploading_the_bytes_proves_possession_and_is_pulled(client, people, secret_photo) -> None:
    sha, data = secret_photo
    snoop = people["snoop"]
    report_id = await snoop_report(client, snoop, sha)
    _, cursor = await pull_all(client, snoop)

    sent = await client.put(f"/v1/media/{sha}", content=data, headers={**snoop.headers, "Content-Type": "image/jpeg"})
    assert sent.status_code == 200, "the object was known: one object in storage"

    detail = (await client.get(f"/v1/reports/{report_id}", headers=snoop.headers)).json()
    assert detail["missing_media"] == [] and detail["media"][0]["present"] is True
    original = await client.get(f"/v1/media/{sha}", headers=people["snoop_county"].headers)
    assert original.status_code == 200 and original.content == data
    changes, _ = await pull_all(client, snoop, cursor)
    assert [(c["id"], c["missing_media"]) for c in changes] == [(report_id, [])]


async def test_after_photo_from_the_authors_device_counts_when_a_supervisor_attaches_it(client, conn, clock) -> None:
    now = clock.now()
    author = await make_user(conn, role="inspector", jurisdiction="140431", now=now)
    county = await make_user(conn, role="supervisor", jurisdiction="140431", now=now)
    report_id = str(uuid.uuid4())
    created = await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=author.headers)
    assert created.status_code == 201
    version = 1
    for action, extra in (("verify", {}), ("assign_rectification", {
        "responsible_person": "张三", "measures": "更换保护装置", "deadline": "2026-07-01T00:00:00+08:00"})):
        moved = await client.post(f"/v1/reports/{report_id}/transitions",
                                  json={"action": action, "version": version, **extra}, headers=county.headers)
        assert moved.status_code == 200, moved.text
        version = moved.json()["version"]
    after = await upload(client, author, images.encode(images.scene(8)))
    fixed = await client.post(f"/v1/reports/{report_id}/transitions", json={
        "action": "submit_rectification", "version": version, "media": [{"sha256": after, "role": "after"}]},
        headers=county.headers)
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["missing_media"] == []
    original = await client.get(f"/v1/media/{after}", headers=county.headers)
    assert original.status_code == 200
