"""No input produces a 500: deep nesting, patterns that must match the whole value, database
rules, and per-mutation refusals in a push that leave the rest of the batch applied."""

from __future__ import annotations

import uuid

import pytest

from tests.api.test_sync import push, upsert
from tests.support import Actor, hazard_report, make_user, problem

HASH = "ab" * 32


@pytest.fixture
async def inspector(conn, clock) -> Actor:
    return await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())


@pytest.mark.parametrize("body", [b"[" * 5000, b'{"username": ' + b"[" * 5000, b"{\"a\":" * 5000])
async def test_a_body_nested_too_deeply_is_a_400(client, body: bytes) -> None:
    response = await client.post("/v1/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert problem(response)["code"] == "request.too_deep"


async def test_a_deep_push_envelope_is_a_400_and_applies_nothing(client, inspector, conn) -> None:
    body = b'{"mutations": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    response = await client.post("/v1/sync/push", content=body,
                                 headers={**inspector.headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert await conn.fetchval("SELECT count(*) FROM reports") == 0


@pytest.mark.parametrize("bad", [HASH + "\n", HASH.upper(), HASH[:-1], " " + HASH])
async def test_a_photo_hash_must_be_exactly_64_lower_case_hex_digits(client, inspector, conn, bad: str) -> None:
    body = hazard_report(media=[{"sha256": bad, "role": "photo"}])
    response = await client.put(f"/v1/reports/{uuid.uuid4()}", json=body, headers=inspector.headers)
    assert response.status_code == 400, response.text
    assert problem(response)["field"].startswith("media")
    assert await conn.fetchval("SELECT count(*) FROM reports") == 0


@pytest.mark.parametrize("field, value", [
    ("jurisdiction", "140431\n"), ("category", "coal_mine\n"),
    ("enterprise", {"name": "x", "credit_code": "91350100M000100Y43\n"}),
])
async def test_anchored_patterns_refuse_a_trailing_newline(client, inspector, field: str, value: object) -> None:
    response = await client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(**{field: value}),
                                headers=inspector.headers)
    assert response.status_code == 400, response.text


async def test_a_hash_with_a_newline_in_the_path_is_refused(client, inspector) -> None:
    response = await client.head(f"/v1/media/{HASH}%0A", headers=inspector.headers)
    assert response.status_code in (400, 404)


async def test_an_empty_comment_in_a_push_is_rejected_alone(client, inspector, conn) -> None:
    report_id = uuid.uuid4()
    created = await push(client, inspector, [upsert(report_id)])
    assert created.json()["results"][0]["status"] == "applied"
    empty = {"mutation_id": str(uuid.uuid4()), "op": "add_comment", "report_id": str(report_id), "body": ""}
    good = {"mutation_id": str(uuid.uuid4()), "op": "add_comment", "report_id": str(report_id), "body": "已到现场"}
    response = await push(client, inspector, [empty, upsert(), good])
    assert response.status_code == 200, response.text
    statuses = [result["status"] for result in response.json()["results"]]
    assert statuses == ["rejected", "applied", "applied"]
    assert response.json()["results"][0]["error"]["field"] == "body"
    assert await conn.fetchval("SELECT count(*) FROM comments WHERE report_id = $1", report_id) == 1


async def test_a_report_the_database_refuses_is_rejected_and_its_batch_neighbours_apply(
    client, inspector, conn
) -> None:
    """A rule only the database knows (here a constraint added by the test) refuses one report
    of a batch: that report alone is rejected, the others are applied (the batch is retried one
    report at a time)."""
    await conn.execute("ALTER TABLE reports ADD CONSTRAINT test_no_poison CHECK (title <> 'poison')")
    mutations = [upsert(), upsert(title="poison"), upsert()]
    response = await push(client, inspector, mutations)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["applied", "rejected", "applied"]
    assert results[1]["error"]["code"] == "request.rule_violated"
    titles = await conn.fetch("SELECT title FROM reports")
    assert len(titles) == 2 and all(row["title"] != "poison" for row in titles)


async def test_a_single_report_the_database_refuses_is_a_4xx(client, inspector, conn) -> None:
    await conn.execute("ALTER TABLE reports ADD CONSTRAINT test_no_poison CHECK (title <> 'poison')")
    response = await client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(title="poison"),
                                headers=inspector.headers)
    assert response.status_code == 422
    assert problem(response)["code"] == "request.rule_violated"


async def test_a_refusal_that_quotes_a_nul_byte_is_stored_for_replays(client, inspector) -> None:
    """The error detail quotes the bad tag; the stored result (for replays) must hold it too."""
    odd = upsert()
    odd["report"]["kind"] = "\x00"
    response = await push(client, inspector, [odd, upsert()])
    assert response.status_code == 200, response.text
    first = response.json()["results"]
    assert [r["status"] for r in first] == ["rejected", "applied"]
    again = await push(client, inspector, [odd])
    assert again.json()["results"][0] == first[0]
