"""GET /v1/export: CSV (BOM, bilingual header, RFC 4180 quoting, Chinese intact, formulas
neutralised) and GeoJSON (an RFC 7946 FeatureCollection of [lon, lat] points with flat
properties), exactly the reports the list shows for the same filters, across batch boundaries."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from fieldsync.api.schemas.listing import EXPORT_COLUMNS
from fieldsync.db import listing as q
from fieldsync.domain.filters import ReportFilter
from fieldsync.domain.principals import Visibility
from fieldsync.services import listing as listing_service
from tests.api.test_report_list import FIVE, accident_report, create, listed, step
from tests.support import Actor, MutableClock, disaster_report, hazard_report, make_user, problem

BOM = "\ufeff"
TRICKY = '含逗号, "引号" 与\n换行的描述 — 煤矿'


@pytest.fixture
async def people(conn: asyncpg.Connection, clock: MutableClock) -> dict[str, Actor]:
    now = clock.now()
    return {
        "inspector": await make_user(conn, role="inspector", jurisdiction="140431", now=now),
        "county": await make_user(conn, role="supervisor", jurisdiction="140431", now=now),
        "luzhou": await make_user(conn, role="supervisor", jurisdiction="140403", now=now),
        "admin": await make_user(conn, role="admin", jurisdiction="110000", now=now),
    }


@pytest.fixture
async def reports(client: httpx.AsyncClient, people: dict[str, Actor], clock: MutableClock) -> dict[str, str]:
    inspector = people["inspector"]
    ids = {
        "belt": await create(client, inspector, hazard_report(description=TRICKY)),
        "gas": await create(client, inspector, hazard_report(
            category="gas", grade="major", title="燃气管道泄漏",
            location={"lat": 36.25, "lon": 112.75, "accuracy_m": 5.0},
        )),
        "flood": await create(client, inspector, disaster_report(
            losses={"deaths": 2, "affected_people": 1200, "crop_area_ha": 35.5, "direct_loss_cny": 1250000.5},
        )),
        "accident": await create(client, inspector, accident_report(deaths=1, title="=HYPERLINK(\"http://x\")")),
        "formula": await create(client, inspector, hazard_report(title="-2+3 号井", description="@SUM(A1:A9)")),
    }
    await step(client, people["county"], ids["gas"], "verify")
    await step(client, people["county"], ids["gas"], "assign_rectification", **FIVE)
    clock.set(dt.datetime(2026, 6, 1, 12, 1, tzinfo=dt.UTC))  # FIVE's deadline (12:00 UTC) has passed
    return ids


def read_csv(response: httpx.Response) -> list[dict[str, str]]:
    text = response.content.decode("utf-8")
    assert text.startswith(BOM)
    return list(csv.DictReader(io.StringIO(text[1:], newline="")))


async def test_csv_has_a_bom_bilingual_header_and_chinese_that_round_trips(
    client: httpx.AsyncClient, people: dict[str, Actor], reports: dict[str, str]
) -> None:
    response = await client.get("/v1/export", params={"format": "csv"}, headers=people["county"].headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith(b"\xef\xbb\xbf")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and 'filename="fieldsync-reports-' in disposition
    assert disposition.endswith('.csv"')

    rows = read_csv(response)
    header = list(rows[0])
    assert header[:3] == ["编号 id", "类型 kind", "类别代码 category"]
    assert {"纬度 latitude", "经度 longitude", "状态 status", "隐患等级 grade", "企业名称 enterprise",
            "统一社会信用代码 credit code", "直接经济损失(元) direct loss (CNY)", "整改期限 rectification deadline",
            "是否逾期 overdue"} <= set(header)
    by_id = {row["编号 id"]: row for row in rows}
    belt = by_id[reports["belt"]]
    assert belt["描述 description"] == TRICKY
    assert belt["标题 title"] == "主斜井皮带机保护装置失效"
    assert belt["企业名称 enterprise"] == "沁源县某煤业有限公司"
    assert belt["行政区划 jurisdiction name"] == "沁源县"
    assert belt["类别 category name"] == "煤矿"
    assert (belt["纬度 latitude"], belt["经度 longitude"]) == ("36.5", "112.3")
    assert belt["发现时间 observed at"] == "2026-06-01T15:30:00+08:00"
    gas = by_id[reports["gas"]]
    assert (gas["状态 status"], gas["隐患等级 grade"], gas["是否逾期 overdue"]) == ("rectifying", "major", "true")
    assert gas["整改责任人 responsible person"] == "张三"
    assert gas["整改期限 rectification deadline"] == "2026-06-01T12:00:00Z"
    assert belt["是否逾期 overdue"] == "false"
    flood = by_id[reports["flood"]]
    assert (flood["死亡人数 deaths"], flood["受灾人口 affected people"]) == ("2", "1200")
    assert flood["农作物受灾面积(公顷) crop area (ha)"] == "35.5"
    assert flood["直接经济损失(元) direct loss (CNY)"] == "1250000.5"
    assert flood["失踪人数 missing"] == ""
    assert by_id[reports["accident"]]["死亡人数 deaths"] == "1"


async def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised(
    client: httpx.AsyncClient, people: dict[str, Actor], reports: dict[str, str]
) -> None:
    response = await client.get("/v1/export", headers=people["county"].headers)
    by_id = {row["编号 id"]: row for row in read_csv(response)}
    assert by_id[reports["accident"]]["标题 title"] == "'=HYPERLINK(\"http://x\")"
    assert by_id[reports["formula"]]["标题 title"] == "'-2+3 号井"
    assert by_id[reports["formula"]]["描述 description"] == "'@SUM(A1:A9)"
    assert by_id[reports["gas"]]["经度 longitude"] == "112.75"


@pytest.mark.parametrize(
    "params",
    [{}, {"kind": "hazard"}, {"overdue": "true"}, {"q": "煤矿"}, {"bbox": "112.7,36.2,112.8,36.3"}, {"grade": "major"}],
)
async def test_the_export_holds_exactly_the_reports_the_list_shows(
    client: httpx.AsyncClient, people: dict[str, Actor], reports: dict[str, str], params: dict[str, Any]
) -> None:
    county = people["county"]
    expected = await listed(client, county, **params)
    csv_response = await client.get("/v1/export", params={**params, "format": "csv"}, headers=county.headers)
    assert [row["编号 id"] for row in read_csv(csv_response)] == expected
    geo = await client.get("/v1/export", params={**params, "format": "geojson"}, headers=county.headers)
    assert [feature["id"] for feature in geo.json()["features"]] == expected
    if params:
        assert len(expected) < len(reports), "the filter must narrow the export"


async def test_geojson_is_a_feature_collection_of_lon_lat_points_with_flat_properties(
    client: httpx.AsyncClient, people: dict[str, Actor], reports: dict[str, str]
) -> None:
    response = await client.get("/v1/export", params={"format": "geojson"}, headers=people["county"].headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    assert response.headers["content-disposition"].endswith('.geojson"')
    document = json.loads(response.content.decode("utf-8"))
    assert set(document) == {"type", "features"} and document["type"] == "FeatureCollection"
    assert len(document["features"]) == len(reports)
    for feature in document["features"]:
        assert set(feature) == {"type", "id", "geometry", "properties"} and feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        assert (lat, lon) == (feature["properties"]["lat"], feature["properties"]["lon"])
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        assert all(not isinstance(value, (dict, list)) for value in feature["properties"].values())
        assert feature["properties"]["id"] == feature["id"]
    by_id = {feature["id"]: feature for feature in document["features"]}
    assert by_id[reports["gas"]]["geometry"]["coordinates"] == [112.75, 36.25]
    gas = by_id[reports["gas"]]["properties"]
    assert gas["overdue"] is True and gas["grade"] == "major" and gas["version"] == 3
    assert by_id[reports["flood"]]["properties"]["deaths"] == 2
    assert by_id[reports["belt"]]["properties"]["description"] == TRICKY


async def test_batches_join_into_one_document(
    client: httpx.AsyncClient, people: dict[str, Actor], reports: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing_service, "EXPORT_BATCH", 2)
    county = people["county"]
    expected = await listed(client, county)
    geo = (await client.get("/v1/export", params={"format": "geojson"}, headers=county.headers)).json()
    assert [feature["id"] for feature in geo["features"]] == expected
    rows = read_csv(await client.get("/v1/export", headers=county.headers))
    assert [row["编号 id"] for row in rows] == expected


async def test_an_empty_export_is_still_a_valid_file(
    client: httpx.AsyncClient, people: dict[str, Actor], reports: dict[str, str]
) -> None:
    luzhou = people["luzhou"]
    response = await client.get("/v1/export", headers=luzhou.headers)
    assert response.status_code == 200
    text = response.content.decode("utf-8")
    assert text.startswith(BOM + "编号 id,") and text.count("\r\n") == 1
    geo = await client.get("/v1/export", params={"format": "geojson"}, headers=luzhou.headers)
    assert geo.json() == {"type": "FeatureCollection", "features": []}


async def test_bad_filters_are_problems_before_any_byte_is_streamed(
    client: httpx.AsyncClient, people: dict[str, Actor]
) -> None:
    for params, field in (({"format": "xlsx"}, "format"), ({"jurisdiction": "140403"}, "jurisdiction")):
        response = await client.get("/v1/export", params=params, headers=people["county"].headers)
        assert response.status_code in (400, 403), response.text
        assert problem(response)["field"] == field
    unauthenticated = await client.get("/v1/export")
    assert unauthenticated.status_code == 401


async def test_export_leaves_no_transaction_open(
    client: httpx.AsyncClient, people: dict[str, Actor], reports: dict[str, str], conn: asyncpg.Connection
) -> None:
    await client.get("/v1/export", headers=people["county"].headers)
    lingering = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND state LIKE 'idle in transaction%'"
    )
    assert lingering == 0


async def test_the_export_query_selects_the_columns_in_the_encoders_order(
    conn: asyncpg.Connection, reports: dict[str, str], clock: MutableClock
) -> None:
    async with conn.transaction():
        batches = q.export_batches(conn, Visibility(None, "/"), ReportFilter(), now=clock.now(), batch_size=10)
        rows = [row async for batch in batches for row in batch]
    assert len(rows) == len(reports)
    assert list(rows[0].keys()) == [column.key for column in EXPORT_COLUMNS]


@pytest.mark.parametrize("slow_client", [False, True])
async def test_a_client_that_hangs_up_leaves_no_transaction_behind(
    app: Litestar, client: httpx.AsyncClient, people: dict[str, Actor], reports: dict[str, str],
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, slow_client: bool,
) -> None:
    """The stream is cancelled mid-file (inside the generator, or while the client is slow): the
    snapshot is rolled back before the connection returns to the pool, nothing is left open and
    asyncpg has nothing to complain about."""
    monkeypatch.setattr(listing_service, "EXPORT_BATCH", 1)
    complaints: list[str] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: complaints.append(str(context.get("message"))))
    first_chunk = asyncio.Event()
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        await first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))
            first_chunk.set()
            if slow_client:
                await asyncio.sleep(0.2)

    token = people["county"].token
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/v1/export", "raw_path": b"/v1/export", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver.local"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000), "server": ("testserver.local", 80), "state": {},
    }
    try:
        await app(scope, receive, send)  # type: ignore[arg-type]
    finally:
        loop.set_exception_handler(None)
    assert sent and len(b"".join(sent).splitlines()) < 1 + len(reports), "the client hung up mid-file"
    lingering = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND state LIKE 'idle in transaction%'"
    )
    assert lingering == 0
    assert not [c for c in complaints if "active transaction" in c], complaints
    after = await client.get("/v1/reports", headers=people["county"].headers)
    assert after.status_code == 200 and len(after.json()["items"]) == len(reports)
