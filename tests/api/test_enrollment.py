"""Enrollment → device token → /v1/me; used and expired codes; revocation on the next request."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import MutableClock, make_user, problem


@pytest.fixture
async def county(conn, clock):
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    return supervisor, inspector


async def _code(client: httpx.AsyncClient, supervisor, username: str, **extra) -> str:
    response = await client.post("/v1/enrollments", json={"username": username, **extra}, headers=supervisor.headers)
    assert response.status_code == 201, response.text
    return response.json()["code"]


async def test_enrolled_device_acts_as_its_inspector(client, county):
    supervisor, inspector = county
    code = await _code(client, supervisor, inspector.username)
    enrolled = await client.post("/v1/devices/enroll", json={"code": code, "label": "Huawei P60", "platform": "android"})
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    assert body["token"].startswith("fsd_")

    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json() | {} == {
        "kind": "device",
        "user_id": str(inspector.user_id),
        "username": inspector.username,
        "role": "inspector",
        "jurisdiction": "140431",
        "jurisdiction_name": "沁源县",
        "device_id": body["device_id"],
    }


async def test_enrollment_code_works_once(client, county):
    supervisor, inspector = county
    code = await _code(client, supervisor, inspector.username)
    first = await client.post("/v1/devices/enroll", json={"code": code, "label": "a"})
    assert first.status_code == 201
    second = await client.post("/v1/devices/enroll", json={"code": code, "label": "b"})
    assert second.status_code == 401
    assert problem(second)["code"] == "enrollment.used"


async def test_typed_code_with_lowercase_and_no_dashes_is_accepted(client, county):
    supervisor, inspector = county
    code = await _code(client, supervisor, inspector.username)
    typed = code.replace("-", " ").lower()
    response = await client.post("/v1/devices/enroll", json={"code": typed, "label": "typed"})
    assert response.status_code == 201, response.text


async def test_expired_enrollment_code_is_refused(client, county, clock: MutableClock):
    supervisor, inspector = county
    code = await _code(client, supervisor, inspector.username, ttl_s=60)
    clock.advance(seconds=61)
    response = await client.post("/v1/devices/enroll", json={"code": code, "label": "late"})
    assert response.status_code == 401
    assert problem(response)["code"] == "enrollment.expired"


async def test_unknown_code_is_refused(client):
    response = await client.post("/v1/devices/enroll", json={"code": "AAAA-BBBB-CCCC", "label": "x"})
    assert response.status_code == 401
    assert problem(response)["code"] == "enrollment.invalid"


async def test_revoked_device_fails_on_its_very_next_request(client, county):
    supervisor, inspector = county
    code = await _code(client, supervisor, inspector.username)
    body = (await client.post("/v1/devices/enroll", json={"code": code, "label": "p"})).json()
    device_headers = {"Authorization": f"Bearer {body['token']}"}
    assert (await client.get("/v1/me", headers=device_headers)).status_code == 200

    revoked = await client.delete(f"/v1/devices/{body['device_id']}", headers=supervisor.headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None

    after = await client.get("/v1/me", headers=device_headers)
    assert after.status_code == 401
    assert problem(after)["code"] == "auth.revoked"


async def test_supervisor_cannot_issue_codes_for_inspectors_of_another_county(client, conn, clock):
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    elsewhere = await make_user(conn, role="inspector", jurisdiction="140403", now=clock.now())
    response = await client.post("/v1/enrollments", json={"username": elsewhere.username}, headers=supervisor.headers)
    assert response.status_code == 404
    assert problem(response)["code"] == "user.not_found"


async def test_codes_are_only_for_inspectors(client, conn, clock):
    admin = await make_user(conn, role="admin", jurisdiction="140400", now=clock.now())
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    response = await client.post("/v1/enrollments", json={"username": supervisor.username}, headers=admin.headers)
    assert response.status_code == 422
    assert problem(response)["code"] == "enrollment.not_inspector"


async def test_repeated_bad_codes_are_throttled(client, settings):
    for _ in range(settings.throttle_max_failures):
        response = await client.post("/v1/devices/enroll", json={"code": "ZZZZ-ZZZZ-ZZZZ", "label": "x"})
        assert response.status_code == 401
    throttled = await client.post("/v1/devices/enroll", json={"code": "ZZZZ-ZZZZ-ZZZZ", "label": "x"})
    assert throttled.status_code == 429
    assert problem(throttled)["code"] == "auth.throttled"
    assert int(throttled.headers["retry-after"]) > 0


async def test_refused_requests_give_their_connection_back(client, app):
    """A 401 raised while resolving the principal must not leak the request's pooled connection."""
    for _ in range(30):
        assert (await client.get("/v1/me", headers={"Authorization": "Bearer fsd_nope"})).status_code == 401
        assert (await client.get("/v1/me")).status_code == 401
    pool = app.state.runtime.pool
    assert pool.get_idle_size() == pool.get_size()


async def test_concurrent_bad_codes_cannot_outrun_the_throttle(client, settings):
    """Codes sent in parallel are counted before they are checked, not after."""
    attempts = settings.throttle_max_failures * 4
    responses = await asyncio.gather(
        *(client.post("/v1/devices/enroll", json={"code": f"ZZZZ-ZZZZ-{i:04d}", "label": "x"}) for i in range(attempts))
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(401) <= settings.throttle_max_failures, statuses
    assert statuses.count(429) == attempts - statuses.count(401)


async def test_one_code_enrolls_exactly_one_device_under_concurrency(client, county, conn, settings):
    supervisor, inspector = county
    code = await _code(client, supervisor, inspector.username)
    attempts = settings.throttle_max_failures
    responses = await asyncio.gather(
        *(client.post("/v1/devices/enroll", json={"code": code, "label": f"phone {i}"}) for i in range(attempts))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [401] * (attempts - 1), statuses
    assert {problem(r)["code"] for r in responses if r.status_code == 401} == {"enrollment.used"}
    assert await conn.fetchval("SELECT count(*) FROM devices WHERE user_id = $1", inspector.user_id) == 1
