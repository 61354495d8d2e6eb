"""Near-duplicate candidates name only reports the caller may see: receipt, detail, list,
`has_duplicates`, pull, `/duplicates`, merged_from; a merge into a report out of view is 404.

Two counties share a border: an inspector of 沁源县 (140431) and one of 潞州区 (140403) report the
same hazard at the same enterprise. Only the city (140400) sees both reports, so only the city
sees them as candidates of each other."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.api.test_sync import pull_all
from tests.support import Actor, hazard_report, make_user, problem, settled

QINYUAN, LUZHOU = "140431", "140403"


@pytest.fixture
async def people(conn, clock) -> dict[str, Actor]:
    now = clock.now()
    return {
        "qinyuan_inspector": await make_user(conn, role="inspector", jurisdiction=QINYUAN, now=now),
        "luzhou_inspector": await make_user(conn, role="inspector", jurisdiction=LUZHOU, now=now),
        "qinyuan": await make_user(conn, role="supervisor", jurisdiction=QINYUAN, now=now),
        "city": await make_user(conn, role="supervisor", jurisdiction="140400", now=now),
    }


async def put(client, actor: Actor, **overrides: Any) -> tuple[str, dict[str, Any]]:
    report_id = str(uuid.uuid4())
    response = await client.put(f"/v1/reports/{report_id}", json=hazard_report(**overrides), headers=actor.headers)
    assert response.status_code == 201, response.text
    return report_id, response.json()


@pytest.fixture
async def twins(client, conn, people) -> tuple[str, str]:
    """The 潞州区 report first, then the same hazard from 沁源县; returns (luzhou, qinyuan) ids."""
    luzhou, _ = await put(client, people["luzhou_inspector"], jurisdiction=LUZHOU)
    qinyuan, receipt = await put(client, people["qinyuan_inspector"])
    assert receipt["possible_duplicates"] == [] and receipt["duplicate_candidates"] == []
    await settled(conn)
    city_view = (await client.get(f"/v1/reports/{qinyuan}", headers=people["city"].headers)).json()
    assert city_view["possible_duplicates"] == [luzhou], "the pair must exist for the test to mean anything"
    return luzhou, qinyuan


async def test_the_county_sees_no_candidate_from_another_county_anywhere(client, people, twins) -> None:
    luzhou, qinyuan = twins
    county = people["qinyuan"]
    detail = (await client.get(f"/v1/reports/{qinyuan}", headers=county.headers)).json()
    assert detail["possible_duplicates"] == []
    assert (await client.get(f"/v1/reports/{qinyuan}/duplicates", headers=county.headers)).json() == []
    listed = (await client.get("/v1/reports", params={"has_duplicates": "true"}, headers=county.headers)).json()
    assert listed["items"] == []
    without = (await client.get("/v1/reports", params={"has_duplicates": "false"}, headers=county.headers)).json()
    assert [item["id"] for item in without["items"]] == [qinyuan]
    changes, _ = await pull_all(client, county)
    assert [(c["id"], c["possible_duplicates"]) for c in changes] == [(qinyuan, [])]
    exported = await client.get("/v1/export", params={"has_duplicates": "true"}, headers=county.headers)
    assert luzhou not in exported.text and qinyuan not in exported.text
    mine = (await client.get(f"/v1/reports/{qinyuan}", headers=people["qinyuan_inspector"].headers)).json()
    assert mine["possible_duplicates"] == []
    # the device sends it again: the receipt of a replay names the stored candidates, in scope
    replay = await client.put(f"/v1/reports/{qinyuan}", json=hazard_report(), headers=people["qinyuan_inspector"].headers)
    assert replay.status_code == 200, replay.text
    assert replay.json()["possible_duplicates"] == [] and replay.json()["duplicate_candidates"] == []


async def test_the_city_sees_the_pair_everywhere(client, people, twins) -> None:
    luzhou, qinyuan = twins
    city = people["city"]
    assert [c["id"] for c in (await client.get(f"/v1/reports/{qinyuan}/duplicates", headers=city.headers)).json()] == [
        luzhou]
    listed = (await client.get("/v1/reports", params={"has_duplicates": "true"}, headers=city.headers)).json()
    assert {item["id"] for item in listed["items"]} == {luzhou, qinyuan}
    changes, _ = await pull_all(client, city)
    assert {c["id"]: c["possible_duplicates"] for c in changes} == {luzhou: [qinyuan], qinyuan: [luzhou]}


async def test_merging_into_a_report_out_of_view_is_404_and_changes_nothing(client, people, twins) -> None:
    luzhou, qinyuan = twins
    county = people["qinyuan"]
    response = await client.post(f"/v1/reports/{qinyuan}/transitions",
                                 json={"action": "merge", "version": 1, "into": luzhou}, headers=county.headers)
    assert response.status_code == 404
    assert problem(response)["field"] == "into"
    assert (await client.get(f"/v1/reports/{qinyuan}", headers=county.headers)).json()["status"] == "submitted"


async def test_a_report_merged_from_another_county_is_not_named_on_the_survivor(client, people, twins) -> None:
    luzhou, qinyuan = twins
    merged = await client.post(f"/v1/reports/{luzhou}/transitions",
                               json={"action": "merge", "version": 1, "into": qinyuan}, headers=people["city"].headers)
    assert merged.status_code == 200, merged.text
    county_view = (await client.get(f"/v1/reports/{qinyuan}", headers=people["qinyuan"].headers)).json()
    assert county_view["merged_from"] == [] and county_view["merged_media"] == []
    city_view = (await client.get(f"/v1/reports/{qinyuan}", headers=people["city"].headers)).json()
    assert city_view["merged_from"] == [luzhou]


async def test_a_pair_gone_while_another_transaction_holds_the_report_still_reaches_the_feed(
    client, people, twins, database_url
) -> None:
    """Revising one report of a pair removes the pair, so the other report must be re-sent to
    devices; at that moment a transaction that never writes that row (a comment, a refused
    transition) holds it. The change still reaches the feed once the holder lets go."""
    from fieldsync.db.pool import connect

    luzhou, qinyuan = twins
    city = people["city"]
    _, cursor = await pull_all(client, city)
    holder = await connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM reports WHERE id = $1 FOR UPDATE", uuid.UUID(luzhou))
            revised = await client.put(f"/v1/reports/{qinyuan}", json=hazard_report(
                category="gas", title="燃气管道阀门锈蚀", description="阀门井积水, 阀体锈蚀严重",
                location={"lat": 36.9, "lon": 112.9, "accuracy_m": 5.0}, base_version=1,
            ), headers=people["qinyuan_inspector"].headers)
            assert revised.status_code == 200, revised.text
    finally:
        await holder.close()
    seen: dict[str, list[str]] = {}
    for _ in range(100):
        changes, _ = await pull_all(client, city, cursor)
        seen = {c["id"]: c["possible_duplicates"] for c in changes}
        if seen.get(luzhou) == []:
            break
        await asyncio.sleep(0.1)
    assert seen == {luzhou: [], qinyuan: []}, seen
