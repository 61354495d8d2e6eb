"""PUT /v1/reports/{id}: exactly-once creation, replays, conflicts, revisions and validation."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest

from tests.support import Actor, disaster_report, hazard_report, make_user, problem


@pytest.fixture
async def inspector(conn, clock) -> Actor:
    return await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())


def sha(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


async def test_new_report_is_created_with_a_receipt(client, inspector, conn):
    report_id = uuid.uuid4()
    response = await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=inspector.headers)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "id": str(report_id), "version": 1, "status": "submitted", "missing_media": [], "duplicate": False,
        "possible_duplicates": [], "duplicate_candidates": [],
    }
    row = await conn.fetchrow("SELECT author_id, version, grade, credit_code FROM reports WHERE id = $1", report_id)
    assert row["author_id"] == inspector.user_id
    assert (row["grade"], row["credit_code"]) == ("general", "91350100M000100Y43")


async def test_fifty_concurrent_identical_puts_make_exactly_one_row(client, inspector, conn):
    report_id = uuid.uuid4()
    body = hazard_report()
    responses = await asyncio.gather(
        *(client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1 and statuses.count(200) == 49, statuses
    receipts = {(r.json()["id"], r.json()["version"], r.json()["status"]) for r in responses}
    assert receipts == {(str(report_id), 1, "submitted")}
    assert sum(r.json()["duplicate"] for r in responses) == 49
    assert await conn.fetchval("SELECT count(*) FROM reports WHERE id = $1", report_id) == 1
    assert await conn.fetchval("SELECT count(*) FROM report_versions WHERE report_id = $1", report_id) == 1


async def test_changed_content_without_base_version_conflicts_and_changes_nothing(client, inspector, conn):
    report_id = uuid.uuid4()
    await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=inspector.headers)
    before = await conn.fetchrow("SELECT body, version, updated_at FROM reports WHERE id = $1", report_id)
    response = await client.put(
        f"/v1/reports/{report_id}", json=hazard_report(title="另一个标题"), headers=inspector.headers
    )
    assert response.status_code == 409
    body = problem(response)
    assert body["code"] == "report.conflict"
    assert body["version"] == 1
    after = await conn.fetchrow("SELECT body, version, updated_at FROM reports WHERE id = $1", report_id)
    assert after == before


async def test_replay_with_reordered_keys_and_unknown_fields_is_a_duplicate(client, inspector):
    report_id = uuid.uuid4()
    body = hazard_report()
    assert (await client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers)).status_code == 201
    reordered = dict(reversed(list(body.items())))
    reordered["app_build"] = "2.7.1"
    reordered["id"] = str(report_id)
    replay = await client.put(f"/v1/reports/{report_id}", json=reordered, headers=inspector.headers)
    assert replay.status_code == 200
    assert replay.json()["duplicate"] is True


async def test_revision_with_current_base_version_makes_a_new_version(client, inspector, conn):
    report_id = uuid.uuid4()
    await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=inspector.headers)
    revised = await client.put(
        f"/v1/reports/{report_id}", json=hazard_report(title="修订后的标题", base_version=1), headers=inspector.headers
    )
    assert revised.status_code == 200, revised.text
    assert revised.json()["version"] == 2 and revised.json()["duplicate"] is False
    assert await conn.fetchval("SELECT title FROM reports WHERE id = $1", report_id) == "修订后的标题"
    versions = await conn.fetch("SELECT version FROM report_versions WHERE report_id = $1 ORDER BY 1", report_id)
    assert [v["version"] for v in versions] == [1, 2]

    again = await client.put(
        f"/v1/reports/{report_id}", json=hazard_report(title="修订后的标题", base_version=1), headers=inspector.headers
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["version"] == 2

    late_replay_of_v1 = await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=inspector.headers)
    assert late_replay_of_v1.status_code == 200
    assert late_replay_of_v1.json()["duplicate"] is True and late_replay_of_v1.json()["version"] == 1


async def test_stale_base_version_conflicts(client, inspector):
    report_id = uuid.uuid4()
    await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=inspector.headers)
    await client.put(f"/v1/reports/{report_id}", json=hazard_report(title="v2", base_version=1), headers=inspector.headers)
    stale = await client.put(
        f"/v1/reports/{report_id}", json=hazard_report(title="v3?", base_version=1), headers=inspector.headers
    )
    assert stale.status_code == 409
    assert problem(stale)["code"] == "report.stale_version"
    assert problem(stale)["version"] == 2


async def test_locked_report_cannot_be_revised(client, inspector, conn):
    report_id = uuid.uuid4()
    await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=inspector.headers)
    await conn.execute("UPDATE reports SET status = 'verified' WHERE id = $1", report_id)
    response = await client.put(
        f"/v1/reports/{report_id}", json=hazard_report(title="too late", base_version=1), headers=inspector.headers
    )
    assert response.status_code == 409
    assert problem(response)["code"] == "report.locked"


async def test_needs_info_report_returns_to_submitted_on_revision(client, inspector, conn):
    report_id = uuid.uuid4()
    await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=inspector.headers)
    await conn.execute("UPDATE reports SET status = 'needs_info' WHERE id = $1", report_id)
    response = await client.put(
        f"/v1/reports/{report_id}", json=hazard_report(title="补充信息", base_version=1), headers=inspector.headers
    )
    assert response.status_code == 200
    assert response.json()["status"] == "submitted"


async def test_another_inspector_cannot_touch_a_report(client, inspector, conn, clock):
    other = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    report_id = uuid.uuid4()
    await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=inspector.headers)
    response = await client.put(
        f"/v1/reports/{report_id}", json=hazard_report(title="hijack", base_version=1), headers=other.headers
    )
    assert response.status_code == 409
    assert "version" not in problem(response)
    assert (await client.get(f"/v1/reports/{report_id}", headers=other.headers)).status_code == 404


async def test_missing_media_shrinks_as_photos_arrive(client, inspector, conn, clock):
    first, second = sha("photo-1"), sha("photo-2")
    report_id = uuid.uuid4()
    body = hazard_report(media=[{"sha256": first, "role": "photo"}, {"sha256": second, "role": "before"}])
    created = await client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers)
    assert created.json()["missing_media"] == [first, second]
    await conn.execute(
        "INSERT INTO media (sha256, bytes, content_type, width, height, created_at) VALUES ($1, 10, 'image/jpeg', 1, 1, $2)",
        first,
        clock.now(),
    )
    unproven = await client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers)
    assert unproven.json()["missing_media"] == [first, second], "the author never sent these bytes"
    await conn.execute("INSERT INTO media_uploads (sha256, user_id, uploaded_at) VALUES ($1, $2, $3)",
                       first, inspector.user_id, clock.now())
    replay = await client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers)
    assert replay.json()["missing_media"] == [second]
    assert replay.json()["duplicate"] is True


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"location": {"lat": 91, "lon": 112.3, "accuracy_m": 5}}, "location.lat"),
        ({"location": {"lat": 36.5, "lon": -181, "accuracy_m": 5}}, "location.lon"),
        ({"category": "flood"}, "category"),
        ({"category": "no_such_thing"}, "category"),
        ({"enterprise": {"name": "x", "credit_code": "91350100M000100Y44"}}, "enterprise.credit_code"),
        ({"observed_at": "2027-06-01T15:30:00+08:00"}, "observed_at"),
        ({"observed_at": "2026-06-01T15:30:00"}, "observed_at"),
        ({"jurisdiction": "999999"}, "jurisdiction"),
        ({"grade": "huge"}, "grade"),
        ({"kind": "meteor"}, "kind"),
        ({"title": ""}, "title"),
        ({"title": "nul\u0000byte"}, "title"),
        ({"media": [{"sha256": "XYZ", "role": "photo"}]}, "media[0].sha256"),
    ],
)
async def test_invalid_reports_get_400_naming_the_field(client, inspector, conn, overrides, field):
    report_id = uuid.uuid4()
    response = await client.put(f"/v1/reports/{report_id}", json=hazard_report(**overrides), headers=inspector.headers)
    assert response.status_code == 400, response.text
    assert problem(response)["field"] == field
    assert await conn.fetchval("SELECT count(*) FROM reports") == 0


async def test_negative_losses_are_rejected(client, inspector):
    response = await client.put(
        f"/v1/reports/{uuid.uuid4()}", json=disaster_report(losses={"deaths": -1}), headers=inspector.headers
    )
    assert response.status_code == 400
    assert problem(response)["field"] == "losses.deaths"


async def test_body_id_must_match_the_path(client, inspector):
    response = await client.put(
        f"/v1/reports/{uuid.uuid4()}", json=hazard_report(id=str(uuid.uuid4())), headers=inspector.headers
    )
    assert response.status_code == 400
    assert problem(response)["field"] == "id"


async def test_jurisdiction_outside_the_authors_scope_is_forbidden(client, inspector):
    response = await client.put(
        f"/v1/reports/{uuid.uuid4()}", json=hazard_report(jurisdiction="140403"), headers=inspector.headers
    )
    assert response.status_code == 403
    assert problem(response)["code"] == "jurisdiction.out_of_scope"


async def test_only_inspectors_author_reports(client, conn, clock):
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    response = await client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(), headers=supervisor.headers)
    assert response.status_code == 403


async def test_all_three_kinds_round_trip_through_the_detail(client, inspector, conn, clock):
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140400", now=clock.now())
    bodies = [
        hazard_report(),
        disaster_report(),
        {**hazard_report(), "kind": "accident", "category": "gas_explosion", "deaths": 1, "injured": 3,
         "direct_loss_cny": 1.5e6},
    ]
    bodies[2].pop("grade")
    for body in bodies:
        report_id = uuid.uuid4()
        created = await client.put(f"/v1/reports/{report_id}", json=body, headers=inspector.headers)
        assert created.status_code == 201, created.text
        detail = await client.get(f"/v1/reports/{report_id}", headers=supervisor.headers)
        assert detail.status_code == 200, detail.text
        got = detail.json()
        assert got["kind"] == body["kind"] and got["title"] == body["title"]
        assert got["author"]["username"] == inspector.username
        assert got["version"] == 1 and got["status"] == "submitted"
        if body["kind"] == "disaster":
            assert got["losses"] == {"affected_people": 120, "evacuated_people": 40}
            assert got["stage"] == "initial"
        if body["kind"] == "accident":
            assert (got["deaths"], got["injured"]) == (1, 3)
