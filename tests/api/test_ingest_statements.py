"""The statements saved on the report ingest hot path keep their behaviour.

scripts/bench/run.py showed each PUT /v1/reports/{id} paying a database round trip for work that
had no effect: a "last seen" UPDATE that matched no row, a DELETE of photo rows a report created
in the same transaction cannot have, and two separate reference-data reads. These tests pin what
those statements stood for, so that skipping them changes no outcome.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.support import Actor, hazard_report, make_device, make_user, principal_of


@pytest.fixture
async def admin(conn, clock) -> Actor:
    return await make_user(conn, role="admin", jurisdiction="140000", now=clock.now())


def sha(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


async def test_device_last_seen_is_written_on_first_use_then_at_most_every_five_minutes(client, conn, clock, admin):
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    device = await make_device(conn, inspector, principal_of(admin, "/"), now=clock.now())
    seen = "SELECT last_seen_at FROM devices WHERE id = $1"
    assert await conn.fetchval(seen, device.device_id) is None

    first = clock.now()
    assert (await client.get("/v1/me", headers=device.headers)).status_code == 200
    assert await conn.fetchval(seen, device.device_id) == first

    clock.advance(minutes=4, seconds=59)
    assert (await client.get("/v1/me", headers=device.headers)).status_code == 200
    assert await conn.fetchval(seen, device.device_id) == first

    clock.advance(seconds=2)
    assert (await client.get("/v1/me", headers=device.headers)).status_code == 200
    assert await conn.fetchval(seen, device.device_id) == clock.now()


async def test_new_report_and_its_revision_keep_exactly_the_listed_photos(client, conn, clock):
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    report_id = uuid.uuid4()
    photos = "SELECT position, sha256, role FROM report_media WHERE report_id = $1 ORDER BY position"
    body = hazard_report(media=[{"sha256": sha("a"), "role": "photo"}, {"sha256": sha("b"), "role": "before"}])

    created = await client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers)
    assert created.status_code == 201, created.text
    assert created.json()["missing_media"] == [sha("a"), sha("b")]
    assert [tuple(r) for r in await conn.fetch(photos, report_id)] == [(1, sha("a"), "photo"), (2, sha("b"), "before")]

    revised = await client.put(
        f"/v1/reports/{report_id}",
        json=hazard_report(media=[{"sha256": sha("c"), "role": "after"}], base_version=1),
        headers=inspector.headers,
    )
    assert revised.status_code == 200, revised.text
    assert revised.json()["missing_media"] == [sha("c")]
    assert [tuple(r) for r in await conn.fetch(photos, report_id)] == [(1, sha("c"), "after")]


async def test_category_of_another_kind_and_unknown_jurisdiction_are_told_apart(client, conn, clock):
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    wrong_kind = await client.put(
        f"/v1/reports/{uuid.uuid4()}", json=hazard_report(category="flood"), headers=inspector.headers
    )
    unknown_place = await client.put(
        f"/v1/reports/{uuid.uuid4()}", json=hazard_report(jurisdiction="140499"), headers=inspector.headers
    )
    assert (wrong_kind.status_code, wrong_kind.json()["field"]) == (400, "category")
    assert unknown_place.status_code == 400
    assert (unknown_place.json()["code"], unknown_place.json()["field"]) == ("jurisdiction.unknown", "jurisdiction")
