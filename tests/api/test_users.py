"""POST/GET /v1/users: who may create whom, where, and who sees which users."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from tests.support import Actor, MutableClock, make_device, make_user, principal_of, problem


@pytest.fixture
async def admin(conn: asyncpg.Connection, clock: MutableClock) -> Actor:
    return await make_user(conn, role="admin", jurisdiction="140000", username="root-admin", now=clock.now())


@pytest.fixture
async def city_supervisor(conn: asyncpg.Connection, clock: MutableClock) -> Actor:
    """A supervisor at 长治市 (140400): its subtree is the city and its 12 counties."""
    return await make_user(conn, role="supervisor", jurisdiction="140400", username="city-sup", now=clock.now())


async def _create(client: httpx.AsyncClient, actor: Actor, **body: object) -> httpx.Response:
    return await client.post("/v1/users", json=body, headers=actor.headers)


async def test_admin_creates_users_of_any_role_anywhere(client: httpx.AsyncClient, admin: Actor) -> None:
    for username, role, jurisdiction in [
        ("s-admin", "admin", "110000"),
        ("s-sup", "supervisor", "140100"),
        ("s-insp", "inspector", "140431"),
    ]:
        response = await _create(
            client, admin, username=username, role=role, jurisdiction=jurisdiction, display_name=f"{role} one"
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["username"] == username
        assert body["role"] == role
        assert body["jurisdiction"] == jurisdiction
        assert body["display_name"] == f"{role} one"
        assert body["disabled"] is False
        assert "password" not in body and "password_hash" not in body


async def test_created_user_can_log_in_with_its_password(client: httpx.AsyncClient, admin: Actor) -> None:
    created = await _create(
        client, admin, username="wang.li", role="inspector", jurisdiction="140431", password="mountain-pass-9"
    )
    assert created.status_code == 201, created.text
    login = await client.post("/v1/auth/login", json={"username": "wang.li", "password": "mountain-pass-9"})
    assert login.status_code == 200, login.text
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {login.json()['token']}"})
    assert me.json()["user_id"] == created.json()["id"]


async def test_supervisor_creates_inspectors_in_its_subtree(client: httpx.AsyncClient, city_supervisor: Actor) -> None:
    for jurisdiction in ("140400", "140431"):
        response = await _create(
            client, city_supervisor, username=f"insp-{jurisdiction}", role="inspector", jurisdiction=jurisdiction
        )
        assert response.status_code == 201, response.text


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_supervisor_cannot_create_other_roles(client: httpx.AsyncClient, conn: asyncpg.Connection, city_supervisor: Actor, role: str) -> None:
    response = await _create(client, city_supervisor, username="ambitious", role=role, jurisdiction="140431")
    assert response.status_code == 403
    assert problem(response)["code"] == "auth.forbidden"
    assert await conn.fetchval("SELECT count(*) FROM users WHERE username = 'ambitious'") == 0


@pytest.mark.parametrize("jurisdiction", ["140100", "140000", "110000"])
async def test_supervisor_cannot_create_outside_its_subtree(client: httpx.AsyncClient, conn: asyncpg.Connection, city_supervisor: Actor, jurisdiction: str) -> None:
    response = await _create(client, city_supervisor, username="faraway", role="inspector", jurisdiction=jurisdiction)
    assert response.status_code == 403
    body = problem(response)
    assert body["code"] == "jurisdiction.out_of_scope"
    assert body["field"] == "jurisdiction"
    assert await conn.fetchval("SELECT count(*) FROM users WHERE username = 'faraway'") == 0


async def test_inspector_cannot_create_users(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    response = await _create(client, inspector, username="sidekick", role="inspector", jurisdiction="140431")
    assert response.status_code == 403
    assert problem(response)["code"] == "auth.forbidden"


async def test_device_cannot_create_users(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock, city_supervisor: Actor) -> None:
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    device = await make_device(conn, inspector, principal_of(city_supervisor, "/140000/140400/"), now=clock.now())
    response = await _create(client, device, username="sidekick", role="inspector", jurisdiction="140431")
    assert response.status_code == 403


async def test_duplicate_username_is_a_conflict_whatever_the_case(client: httpx.AsyncClient, admin: Actor) -> None:
    first = await _create(client, admin, username="Zhang.Wei", role="inspector", jurisdiction="140431")
    assert first.status_code == 201
    for username in ("Zhang.Wei", "zhang.wei", "ZHANG.WEI"):
        again = await _create(client, admin, username=username, role="supervisor", jurisdiction="140400")
        assert again.status_code == 409
        assert problem(again)["code"] == "user.exists"


async def test_unknown_jurisdiction_is_a_bad_request_naming_the_field(client: httpx.AsyncClient, admin: Actor) -> None:
    response = await _create(client, admin, username="lost", role="inspector", jurisdiction="999999")
    assert response.status_code == 400
    body = problem(response)
    assert body["code"] == "jurisdiction.unknown"
    assert body["field"] == "jurisdiction"


async def test_supervisor_gets_the_same_answer_for_unknown_jurisdictions(client: httpx.AsyncClient, city_supervisor: Actor) -> None:
    response = await _create(client, city_supervisor, username="lost", role="inspector", jurisdiction="999999")
    assert response.status_code == 400
    assert problem(response)["code"] == "jurisdiction.unknown"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x", "role": "inspector", "jurisdiction": "140431"}, "username"),
        ({"username": "has space", "role": "inspector", "jurisdiction": "140431"}, "username"),
        ({"username": "-dash-first", "role": "inspector", "jurisdiction": "140431"}, "username"),
        ({"username": "ok.name", "role": "king", "jurisdiction": "140431"}, "role"),
        ({"username": "ok.name", "role": "inspector", "jurisdiction": "14043"}, "jurisdiction"),
        ({"username": "ok.name", "role": "inspector", "jurisdiction": 140431}, "jurisdiction"),
        ({"username": "ok.name", "role": "inspector", "jurisdiction": "140431", "password": "short"}, "password"),
        ({"username": "ok.name", "role": "inspector", "jurisdiction": "140431", "display_name": "a\u0000b"}, "display_name"),
        ({"role": "inspector", "jurisdiction": "140431"}, "username"),
    ],
)
async def test_invalid_user_bodies_answer_400_naming_the_field(client: httpx.AsyncClient, admin: Actor, body: Any, field: str) -> None:
    response = await client.post("/v1/users", json=body, headers=admin.headers)
    assert response.status_code == 400, response.text
    problem_body = problem(response)
    assert problem_body["code"] == "request.invalid"
    assert problem_body["field"] == field


async def _all_pages(client: httpx.AsyncClient, actor: Actor, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/users", params=params, headers=actor.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        pages.append([item["username"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not terminate"


async def test_user_list_pages_with_a_cursor_without_gaps_or_repeats(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock, admin: Actor) -> None:
    names = [f"Insp-{i:02d}" if i % 2 else f"insp-{i:02d}" for i in range(7)]
    for name in names:
        await make_user(conn, role="inspector", jurisdiction="140431", username=name, now=clock.now())

    pages = await _all_pages(client, admin, limit=3)

    flat = [name for page in pages for name in page]
    expected = sorted([*names, admin.username], key=str.lower)
    assert flat == expected
    assert [len(page) for page in pages] == [3, 3, 2]


async def test_exact_last_page_has_no_next_cursor(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock, admin: Actor) -> None:
    await make_user(conn, role="inspector", jurisdiction="140431", username="only-one", now=clock.now())
    response = await client.get("/v1/users", params={"limit": 2}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    assert len(response.json()["items"]) == 2


async def test_supervisor_lists_only_inspectors_in_its_subtree(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    county_sup = await make_user(conn, role="supervisor", jurisdiction="140431", username="qinyuan-sup", now=clock.now())
    for username, role, jurisdiction in [
        ("in-county", "inspector", "140431"),
        ("other-county", "inspector", "140403"),
        ("in-city", "inspector", "140400"),
        ("peer-sup", "supervisor", "140431"),
        ("an-admin", "admin", "140431"),
    ]:
        await make_user(conn, role=role, jurisdiction=jurisdiction, username=username, now=clock.now())

    pages = await _all_pages(client, county_sup, limit=1)

    assert [name for page in pages for name in page] == ["in-county"]


async def test_admin_lists_users_of_every_role_everywhere(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock, admin: Actor) -> None:
    await make_user(conn, role="supervisor", jurisdiction="110000", username="beijing-sup", now=clock.now())
    await make_user(conn, role="inspector", jurisdiction="140431", username="qinyuan-insp", now=clock.now())
    pages = await _all_pages(client, admin, limit=500)
    assert {name for page in pages for name in page} == {admin.username, "beijing-sup", "qinyuan-insp"}


async def test_inspector_cannot_list_users(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    response = await client.get("/v1/users", headers=inspector.headers)
    assert response.status_code == 403
    assert problem(response)["code"] == "auth.forbidden"


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "501"}, {"limit": "ten"}, {"cursor": "x" * 65}, {"cursor": "\u0000"}, {"cursor": "a\u0000b"}],
)
async def test_bad_list_parameters_answer_400(client: httpx.AsyncClient, admin: Actor, params: dict[str, str]) -> None:
    response = await client.get("/v1/users", params=params, headers=admin.headers)
    assert response.status_code == 400, response.text
    assert problem(response)["code"] == "request.invalid"
