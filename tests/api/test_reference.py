"""GET /v1/jurisdictions and GET /v1/categories: the seeded reference data and its filters."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.support import Actor, MutableClock, make_user, problem

CHANGZHI_COUNTIES = {
    "140403", "140404", "140405", "140406", "140423", "140425",
    "140426", "140427", "140428", "140429", "140430", "140431",
}


async def _codes(client: httpx.AsyncClient, actor: Actor, **params: str) -> list[str]:
    response = await client.get("/v1/jurisdictions", params=params, headers=actor.headers)
    assert response.status_code == 200, response.text
    return [item["code"] for item in response.json()]


async def test_all_provinces_and_changzhi_with_its_counties_are_seeded(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    response = await client.get("/v1/jurisdictions", headers=inspector.headers)
    by_code = {item["code"]: item for item in response.json()}

    assert sum(1 for item in by_code.values() if item["level"] == "province") == 34
    assert by_code["140400"] | {} == {
        "code": "140400", "parent_code": "140000", "name_zh": "长治市", "name_en": "Changzhi", "level": "city",
    }
    assert {code for code, item in by_code.items() if item["parent_code"] == "140400"} == CHANGZHI_COUNTIES
    assert by_code["140431"]["name_zh"] == "沁源县"


@pytest.mark.parametrize(
    ("role", "home", "expected"),
    [
        ("inspector", "140431", {"140431"}),
        ("supervisor", "140400", {"140400"} | CHANGZHI_COUNTIES),
    ],
)
async def test_scope_mine_lists_only_the_callers_subtree(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock, role: str, home: str, expected: set[str]) -> None:
    actor = await make_user(conn, role=role, jurisdiction=home, now=clock.now())
    assert set(await _codes(client, actor, scope="mine")) == expected
    assert len(await _codes(client, actor, scope="all")) > len(expected)
    assert await _codes(client, actor) == await _codes(client, actor, scope="all")


async def test_scope_mine_of_an_admin_is_everything(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    admin = await make_user(conn, role="admin", jurisdiction="140431", now=clock.now())
    assert await _codes(client, admin, scope="mine") == await _codes(client, admin, scope="all")


async def test_unknown_scope_is_400(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    response = await client.get("/v1/jurisdictions", params={"scope": "country"}, headers=inspector.headers)
    assert response.status_code == 400
    assert problem(response)["code"] == "request.invalid"


async def test_categories_cover_the_spec_and_filter_by_kind(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> None:
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    everything = (await client.get("/v1/categories", headers=inspector.headers)).json()
    hazard = (await client.get("/v1/categories", params={"kind": "hazard"}, headers=inspector.headers)).json()
    disaster = (await client.get("/v1/categories", params={"kind": "disaster"}, headers=inspector.headers)).json()

    assert {c["kind"] for c in hazard} == {"hazard"}
    assert {
        "coal_mine", "metal_nonmetal_mine", "tailings_pond", "hazardous_chemicals", "fireworks", "metallurgy",
        "industry_trade", "fire_safety", "gas", "construction", "road_transport", "other",
    } <= {c["code"] for c in hazard}
    assert {
        "flood", "drought", "typhoon", "wind_hail", "low_temperature", "snow", "sandstorm", "earthquake", "collapse",
        "landslide", "debris_flow", "storm_surge", "forest_grassland_fire", "biological", "other",
    } <= {c["code"] for c in disaster}
    assert all(c["name_zh"] and c["name_en"] for c in everything)
    assert len(everything) >= len(hazard) + len(disaster)
