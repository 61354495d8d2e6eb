"""GET /v1/reports: every filter against one varied dataset, scope per caller, keyset pages that
stay stable while reports are inserted, the indexes the filters are meant to use, and 400s that
name the bad parameter."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from fieldsync.db import listing as q
from fieldsync.domain.filters import BBox, Near, ReportFilter
from fieldsync.domain.principals import Visibility
from tests import images
from tests.support import Actor, MutableClock, disaster_report, hazard_report, make_user, problem, settled

FIVE = {
    "responsible_person": "张三", "measures": "更换燃气管道", "funds_cny": 80000,
    "deadline": "2026-06-01T20:00:00+08:00", "contingency_plan": "关阀停气, 疏散住户",
}
MISSING_PHOTO = "ab" * 32


def accident_report(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "accident",
        "category": "machinery_injury",
        "title": "选煤厂机械伤害事故",
        "description": "检修时设备误启动",
        "jurisdiction": "140431",
        "location": {"lat": 36.45, "lon": 112.35, "accuracy_m": 10.0},
        "observed_at": "2026-05-25T09:00:00+08:00",
        "enterprise": {"name": "沁源县某选煤厂", "credit_code": "91350100M000100Y43"},
        "injured": 1,
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, actor: Actor, body: dict[str, Any]) -> str:
    report_id = str(uuid.uuid4())
    response = await client.put(f"/v1/reports/{report_id}", json=body, headers=actor.headers)
    assert response.status_code == 201, response.text
    return report_id


async def step(client: httpx.AsyncClient, actor: Actor, report_id: str, action: str, **fields: Any) -> None:
    current = (await client.get(f"/v1/reports/{report_id}", headers=actor.headers)).json()
    response = await client.post(
        f"/v1/reports/{report_id}/transitions",
        json={"action": action, "version": current["version"], **fields},
        headers=actor.headers,
    )
    assert response.status_code == 200, response.text


async def listed(client: httpx.AsyncClient, actor: Actor, **params: Any) -> list[str]:
    """Ids of every report the list answers for these filters, through all pages."""
    found: list[str] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/reports", params=query, headers=actor.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        found += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


@pytest.fixture
async def people(conn: asyncpg.Connection, clock: MutableClock) -> dict[str, Actor]:
    now = clock.now()
    return {
        "inspector": await make_user(conn, role="inspector", jurisdiction="140431", now=now),
        "inspector2": await make_user(conn, role="inspector", jurisdiction="140431", now=now),
        "luzhou_inspector": await make_user(conn, role="inspector", jurisdiction="140403", now=now),
        "county": await make_user(conn, role="supervisor", jurisdiction="140431", now=now),
        "city": await make_user(conn, role="supervisor", jurisdiction="140400", now=now),
        "luzhou": await make_user(conn, role="supervisor", jurisdiction="140403", now=now),
        "admin": await make_user(conn, role="admin", jurisdiction="110000", now=now),
    }


@pytest.fixture
async def world(client: httpx.AsyncClient, people: dict[str, Actor], clock: MutableClock) -> dict[str, str]:
    """Named reports, each picked out by at least one filter; created one minute apart."""
    inspector = people["inspector"]
    ids: dict[str, str] = {}

    async def add(name: str, actor: Actor, body: dict[str, Any]) -> None:
        clock.advance(minutes=1)
        ids[name] = await create(client, actor, body)

    await add("belt", inspector, hazard_report(
        title="主斜井皮带机保护装置失效", description="煤矿主斜井皮带机跑偏保护失效, 现场未停机",
    ))
    await add("gas", inspector, hazard_report(
        category="gas", grade="major", title="燃气管道泄漏", description="居民楼燃气管道腐蚀 100% 需更换",
        location={"lat": 36.0, "lon": 113.0, "accuracy_m": 5.0}, observed_at="2026-05-20T10:00:00+08:00",
    ))
    await add("flood", inspector, disaster_report(location={"lat": 36.6, "lon": 112.2, "accuracy_m": 20.0}))
    await add("accident", inspector, accident_report())
    await add("photo_missing", people["inspector2"], hazard_report(
        title="尾矿库坝体渗水", description="坝体下游坡面渗水", category="tailings_pond",
        media=[{"sha256": MISSING_PHOTO, "role": "photo"}], location={"lat": 36.7, "lon": 112.5, "accuracy_m": 8.0},
    ))
    await add("repeat", inspector, hazard_report(
        title="皮带机保护失效(重复上报)", description="同一隐患再次上报 snake_case",
    ))
    await add("luzhou", people["luzhou_inspector"], hazard_report(
        jurisdiction="140403", title="潞州区加油站消防设施缺失", description="灭火器过期", category="fire_safety",
        location={"lat": 36.2, "lon": 113.1, "accuracy_m": 6.0},
    ))
    # gas: verified, listed by the city bureau, rectification assigned (deadline 12:00 UTC)
    await step(client, people["county"], ids["gas"], "verify")
    await step(
        client, people["city"], ids["gas"], "list_supervision", level="140400", deadline="2026-06-30T12:00:00+08:00"
    )
    await step(client, people["county"], ids["gas"], "assign_rectification", **FIVE)
    # repeat: merged into belt
    await step(client, people["county"], ids["repeat"], "merge", into=ids["belt"])
    return ids


def names(world: dict[str, str], ids: list[str]) -> set[str]:
    by_id = {report_id: name for name, report_id in world.items()}
    return {by_id.get(report_id, report_id) for report_id in ids}


EVERY_IN_QINYUAN = {"belt", "gas", "flood", "accident", "photo_missing", "repeat"}

# (query, the names the county supervisor of 沁源县 must see): each differs from EVERY_IN_QINYUAN,
# so a filter that were ignored would fail its row.
FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"kind": "disaster"}, {"flood"}),
    ({"kind": ["accident", "disaster"]}, {"flood", "accident"}),
    ({"category": "gas"}, {"gas"}),
    ({"category": ["tailings_pond", "machinery_injury"]}, {"photo_missing", "accident"}),
    ({"status": "rectifying"}, {"gas"}),
    ({"status": ["merged", "rectifying"]}, {"gas", "repeat"}),
    ({"grade": "major"}, {"gas"}),
    ({"grade": "general"}, {"belt", "photo_missing", "repeat"}),
    ({"observed_from": "2026-05-21T00:00:00+08:00"}, {"belt", "flood", "accident", "photo_missing", "repeat"}),
    ({"observed_to": "2026-05-21T00:00:00+08:00"}, {"gas"}),
    ({"observed_to": "2026-05-21"}, {"gas"}),  # a date: midnight China Standard Time
    ({"observed_from": "2026-06-01", "kind": ["hazard", "accident"]}, {"belt", "photo_missing", "repeat"}),
    ({"observed_from": "2026-05-25T09:00:00+08:00", "observed_to": "2026-06-01T14:00:00+08:00"}, {"accident"}),
    # world() created the reports at 08:01..08:07 UTC and then changed gas and repeat
    ({"updated_since": "2026-06-01T08:05:00Z"}, {"gas", "photo_missing", "repeat"}),
    ({"bbox": "112.25,36.45,112.4,36.55"}, {"belt", "accident", "repeat"}),
    ({"bbox": "112.9,35.9,113.05,36.1"}, {"gas"}),
    ({"near": "36.6,112.2,2000"}, {"flood"}),
    ({"near": "36.5,112.3,10000"}, {"belt", "accident", "repeat"}),
    # accident lies 7134 m away: inside the prefilter box of a 7000 m circle, outside the circle
    ({"near": "36.5,112.3,7000"}, {"belt", "repeat"}),
    ({"q": "煤矿"}, {"belt"}),
    ({"q": "皮带机"}, {"belt", "repeat"}),
    ({"q": "煤"}, {"belt", "accident"}),
    ({"q": "皮带机 重复"}, {"repeat"}),
    ({"q": "100%"}, {"gas"}),
    ({"q": "snake_case"}, {"repeat"}),
    ({"q": "_"}, {"repeat"}),
    ({"q": "渗水"}, {"photo_missing"}),
    ({"listed": "true"}, {"gas"}),
    ({"listed": "false"}, EVERY_IN_QINYUAN - {"gas"}),
    ({"missing_media": "true"}, {"photo_missing"}),
    ({"missing_media": "false"}, EVERY_IN_QINYUAN - {"photo_missing"}),
    ({"overdue": "true"}, set()),
    ({"kind": "hazard", "grade": "general", "q": "皮带机"}, {"belt", "repeat"}),
]


async def test_every_filter_narrows_the_list_as_documented(
    client: httpx.AsyncClient, people: dict[str, Actor], world: dict[str, str]
) -> None:
    county = people["county"]
    assert names(world, await listed(client, county)) == EVERY_IN_QINYUAN
    mismatches = []
    for query, expected in FILTER_CASES:
        assert expected != EVERY_IN_QINYUAN, f"{query} would pass with the filter ignored"
        got = names(world, await listed(client, county, **query))
        if got != expected:
            mismatches.append(f"{query}: expected {sorted(expected)}, got {sorted(got)}")
    assert not mismatches, "\n".join(mismatches)


async def test_has_duplicates_is_exactly_a_non_empty_possible_duplicates(
    client: httpx.AsyncClient, conn: asyncpg.Connection, people: dict[str, Actor], world: dict[str, str],
    clock: MutableClock,
) -> None:
    county = people["county"]
    assert await listed(client, county, has_duplicates="true") == []  # world's only pair is merged
    clock.advance(minutes=1)
    again = await create(client, people["inspector"], hazard_report(
        title="主斜井皮带机保护装置失效", description="煤矿主斜井皮带机跑偏保护失效, 未停机",
        location={"lat": 36.5001, "lon": 112.3001, "accuracy_m": 8.0},
    ))
    await settled(conn)
    items = []
    cursor = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        body = (await client.get("/v1/reports", params=params, headers=county.headers)).json()
        items += body["items"]
        if (cursor := body["next_cursor"]) is None:
            break
    with_candidates = {item["id"] for item in items if item["possible_duplicates"]}
    assert again in with_candidates and world["belt"] in with_candidates
    assert set(await listed(client, county, has_duplicates="true")) == with_candidates
    assert set(await listed(client, county, has_duplicates="false")) == {item["id"] for item in items} - with_candidates


async def test_overdue_follows_the_application_clock(
    client: httpx.AsyncClient, people: dict[str, Actor], world: dict[str, str], clock: MutableClock
) -> None:
    county = people["county"]
    assert await listed(client, county, overdue="true") == []
    clock.set(dt.datetime(2026, 6, 1, 11, 59, tzinfo=dt.UTC))
    assert await listed(client, county, overdue="true") == []
    clock.set(dt.datetime(2026, 6, 1, 12, 1, tzinfo=dt.UTC))  # the deadline was 20:00 +08:00 = 12:00 UTC
    assert await listed(client, county, overdue="true") == [world["gas"]]
    assert names(world, await listed(client, county, overdue="false")) == EVERY_IN_QINYUAN - {"gas"}
    item = (await client.get("/v1/reports", params={"overdue": "true"}, headers=county.headers)).json()["items"][0]
    assert item["workflow"]["overdue"] is True


async def test_missing_media_clears_when_the_photo_arrives(
    client: httpx.AsyncClient, people: dict[str, Actor], world: dict[str, str], conn: asyncpg.Connection
) -> None:
    county = people["county"]
    assert await listed(client, county, missing_media="true") == [world["photo_missing"]]
    photo = images.jpeg(width=32, height=24, seed=3)
    await conn.execute("UPDATE report_media SET sha256 = $1 WHERE sha256 = $2", images.sha256(photo), MISSING_PHOTO)
    assert await listed(client, county, missing_media="true") == [world["photo_missing"]]
    response = await client.put(
        f"/v1/media/{images.sha256(photo)}", content=photo,
        headers={**people["inspector2"].headers, "Content-Type": "image/jpeg"},
    )
    assert response.status_code == 201
    assert await listed(client, county, missing_media="true") == []


async def test_each_caller_lists_what_it_may_see_and_jurisdiction_narrows_it(
    client: httpx.AsyncClient, people: dict[str, Actor], world: dict[str, str]
) -> None:
    everything = EVERY_IN_QINYUAN | {"luzhou"}
    assert names(world, await listed(client, people["admin"])) == everything
    assert names(world, await listed(client, people["city"])) == everything
    assert names(world, await listed(client, people["luzhou"])) == {"luzhou"}
    assert names(world, await listed(client, people["inspector"])) == EVERY_IN_QINYUAN - {"photo_missing"}
    assert names(world, await listed(client, people["inspector2"])) == {"photo_missing"}

    assert names(world, await listed(client, people["city"], jurisdiction="140403")) == {"luzhou"}
    assert names(world, await listed(client, people["city"], jurisdiction="140431")) == EVERY_IN_QINYUAN
    assert names(world, await listed(client, people["admin"], jurisdiction="140400")) == everything
    assert await listed(client, people["admin"], jurisdiction="110000") == []
    assert names(world, await listed(client, people["inspector2"], jurisdiction="140431")) == {"photo_missing"}

    for actor, code in ((people["county"], "140403"), (people["county"], "140400"), (people["inspector"], "140403")):
        response = await client.get("/v1/reports", params={"jurisdiction": code}, headers=actor.headers)
        assert response.status_code == 403, response.text
        assert problem(response)["code"] == "jurisdiction.out_of_scope"
        assert problem(response)["field"] == "jurisdiction"


async def test_pages_never_repeat_or_skip_a_report_while_others_are_inserted(
    client: httpx.AsyncClient, people: dict[str, Actor], clock: MutableClock
) -> None:
    inspector, county = people["inspector"], people["county"]
    existing: list[str] = []
    for index in range(9):
        if index % 3 == 0:  # groups of three share an updated_at: the id breaks the tie
            clock.advance(seconds=1)
        existing.append(await create(client, inspector, hazard_report(title=f"既有隐患 {index}")))
    seen: list[str] = []
    inserted: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/reports", params=params, headers=county.headers)).json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        # between pages, a new report
        clock.advance(seconds=1)
        inserted.append(await create(client, inspector, hazard_report(title=f"新隐患 {pages}")))
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)), "a report appeared on two pages"
    assert [i for i in seen if i in existing] == [i for i in await listed(client, county) if i in existing]
    assert set(existing) <= set(seen), "a report that existed when the listing began was skipped"
    assert not set(inserted) & set(seen), "a report inserted while paging shifted into a later page"


async def test_limit_defaults_to_100_and_is_capped_at_500(
    client: httpx.AsyncClient, people: dict[str, Actor], conn: asyncpg.Connection, clock: MutableClock
) -> None:
    author = people["inspector"].user_id
    await conn.execute(
        """
        INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body, content_hash,
                             author_id, received_at, updated_at, grade)
        SELECT gen_random_uuid(), 'hazard', 'coal_mine', 'bulk ' || i, '140431', 36.5, 112.3, $2::timestamptz,
               $3::jsonb, '\\x00', $1, $2::timestamptz, $2::timestamptz + i * interval '1 ms', 'general'
        FROM generate_series(1, 120) i
        """,
        author, clock.now(), hazard_report(title="bulk"),
    )
    county = people["county"]
    body = (await client.get("/v1/reports", headers=county.headers)).json()
    assert len(body["items"]) == 100 and body["next_cursor"]
    params = {"cursor": body["next_cursor"], "limit": 500}
    rest = (await client.get("/v1/reports", params=params, headers=county.headers)).json()
    assert len(rest["items"]) == 20 and rest["next_cursor"] is None
    for limit in ("0", "501", "-1", "ten"):
        response = await client.get("/v1/reports", params={"limit": limit}, headers=county.headers)
        assert response.status_code == 400, (limit, response.text)
        assert problem(response)["field"] == "limit"


BAD_PARAMETERS: list[tuple[dict[str, str], str]] = [
    ({"bbox": "112.2,36.4,112.4"}, "bbox"),
    ({"bbox": "112.2,36.4,112.4,100"}, "bbox"),
    ({"bbox": "112.4,36.4,112.2,36.6"}, "bbox"),
    ({"bbox": "a,b,c,d"}, "bbox"),
    ({"bbox": "nan,36,113,37"}, "bbox"),
    ({"near": "100,112.3,1000"}, "near"),
    ({"near": "36.5,200,1000"}, "near"),
    ({"near": "36.5,112.3,-5"}, "near"),
    ({"near": "36.5,112.3,0"}, "near"),
    ({"near": "36.5,112.3,inf"}, "near"),
    ({"near": "36.5,112.3"}, "near"),
    ({"status": "open"}, "status"),
    ({"kind": "incident"}, "kind"),
    ({"grade": "minor"}, "grade"),
    ({"category": "no_such_category"}, "category"),
    ({"category": "Bad Code"}, "category"),
    ({"jurisdiction": "999999"}, "jurisdiction"),
    ({"jurisdiction": "14"}, "jurisdiction"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": "MTIzLmFiYw"}, "cursor"),
    ({"observed_from": "2026-06-01T08:00:00"}, "observed_from"),
    ({"observed_to": "yesterday"}, "observed_to"),
    ({"observed_to": "2026-02-30"}, "observed_to"),
    ({"updated_since": "0001-01-01T00:00:00+08:00"}, "updated_since"),
    ({"overdue": "maybe"}, "overdue"),
    ({"q": "a b c d e f g h i"}, "q"),
    ({"q": "x" * 201}, "q"),
    ({"q": "\x00"}, "q"),
]


async def test_bad_parameters_answer_400_naming_the_parameter(
    client: httpx.AsyncClient, people: dict[str, Actor]
) -> None:
    mismatches = []
    for params, field in BAD_PARAMETERS:
        for path in ("/v1/reports",) if field == "cursor" else ("/v1/reports", "/v1/export"):
            response = await client.get(path, params=params, headers=people["admin"].headers)
            if response.status_code != 400 or problem(response)["field"] != field:
                mismatches.append(f"{path} {params}: {response.status_code} {response.text[:200]}")
    assert not mismatches, "\n".join(mismatches)


async def test_times_accept_an_offset_whose_plus_arrived_as_a_space(
    client: httpx.AsyncClient, people: dict[str, Actor], world: dict[str, str]
) -> None:
    raw = "/v1/reports?observed_to=2026-05-21T00:00:00+08:00"  # '+' not percent-encoded
    response = await client.get(raw, headers=people["county"].headers)
    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["items"]] == [world["gas"]]


def _plan_sql(where: ReportFilter, now: dt.datetime) -> tuple[str, list[Any]]:
    params = q._Params()
    clause = q.where_clause(params, Visibility(None, "/"), where, now=now)
    return f"SELECT r.id FROM reports r WHERE {clause}", params.values


# (filter, what its plan must show): the index by name, or for the spatial filters a GiST index
# condition on point(lon, lat) (reports_point_idx, or a wider GiST holding that point).
@pytest.mark.parametrize(
    ("where", "index"),
    [
        (ReportFilter(terms=("皮带机保护",)), "reports_text_trgm_idx"),
        (ReportFilter(terms=("coal mine",)), "reports_text_trgm_idx"),
        (ReportFilter(bbox=BBox(112.2, 36.4, 112.4, 36.6)), "Index Cond: (point(lon, lat) <@"),
        (ReportFilter(near=Near(36.5, 112.3, 5000)), "Index Cond: (point(lon, lat) <@"),
        (ReportFilter(overdue=True), "reports_overdue_idx"),
    ],
)
async def test_filters_are_served_by_their_index(
    conn: asyncpg.Connection, where: ReportFilter, index: str
) -> None:
    sql, values = _plan_sql(where, dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *values))
    assert index in plan, plan


async def test_cjk_text_yields_trigrams_in_a_utf8_ctype(conn: asyncpg.Connection) -> None:
    """ADR 0006: under a UTF-8 ctype (the embedded cluster's C.UTF-8) pg_trgm extracts trigrams from
    Chinese text, so the index serves CJK terms of three characters or more; a shorter term has
    no trigram at all and is matched by the ILIKE alone (FILTER_CASES: 煤, 煤矿)."""
    ctype = await conn.fetchval("SELECT datctype FROM pg_database WHERE datname = current_database()")
    if ctype in ("C", "POSIX"):
        pytest.skip(f"ctype {ctype}: CJK characters are not alphanumeric, the index cannot narrow CJK terms")
    assert len(await conn.fetchval("SELECT show_trgm('煤矿主斜井')")) == 6
    assert await conn.fetchval("SELECT show_trgm('煤')") != []
    assert await conn.fetchval("SELECT count(*) FROM (SELECT unnest(show_trgm('%煤矿%'))) t") == 3
