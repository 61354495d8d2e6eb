"""POST /v1/reports/{id}/transitions: the workflow of SPEC §2 through the API, the audit trail
and its verification."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest

from fieldsync.domain import workflow as rules
from tests import images
from tests.support import Actor, disaster_report, hazard_report, make_device, make_user, principal_of, problem

FUTURE = "2026-07-01T12:00:00+08:00"
FIVE = {
    "responsible_person": "张三", "measures": "更换皮带机跑偏保护装置", "funds_cny": 50000,
    "deadline": FUTURE, "contingency_plan": "停机检修, 人员撤离",
}


@pytest.fixture
async def people(conn, clock) -> dict[str, Actor]:
    now = clock.now()
    return {
        "inspector": await make_user(conn, role="inspector", jurisdiction="140431", now=now),
        "county": await make_user(conn, role="supervisor", jurisdiction="140431", now=now),
        "county2": await make_user(conn, role="supervisor", jurisdiction="140431", now=now),
        "city": await make_user(conn, role="supervisor", jurisdiction="140400", now=now),
        "other_county": await make_user(conn, role="supervisor", jurisdiction="140403", now=now),
        "admin": await make_user(conn, role="admin", jurisdiction="140000", now=now),
    }


async def create(client, actor: Actor, body: dict[str, Any]) -> str:
    report_id = str(uuid.uuid4())
    response = await client.put(f"/v1/reports/{report_id}", json=body, headers=actor.headers)
    assert response.status_code == 201, response.text
    return report_id


async def act(client, actor: Actor, report_id: str, action: str, version: int, **fields: Any):
    return await client.post(
        f"/v1/reports/{report_id}/transitions", json={"action": action, "version": version, **fields},
        headers=actor.headers,
    )


async def step(client, actor: Actor, report_id: str, action: str, **fields: Any) -> dict[str, Any]:
    current = (await client.get(f"/v1/reports/{report_id}", headers=actor.headers)).json()
    response = await act(client, actor, report_id, action, current["version"], **fields)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == current["version"] + 1
    return body


async def upload_after_photo(client, actor: Actor, seed: int = 1) -> str:
    photo = images.jpeg(seed=seed)
    sha = images.sha256(photo)
    response = await client.put(f"/v1/media/{sha}", content=photo, headers={**actor.headers, "Content-Type": "image/jpeg"})
    assert response.status_code in (200, 201)
    return sha


# Every (kind, status, action) the table allows, reached through the API, and every other action
# refused from that status.
PATHS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "submitted": [],
    "verified": [("verify", {})],
    "rejected": [("reject", {})],
    "needs_info": [("request_info", {})],
    "rectifying": [("verify", {}), ("assign_rectification", FIVE)],
    "rectified": [("verify", {}), ("assign_rectification", FIVE), ("submit_rectification", {"media": "AFTER"})],
    "closed": [("verify", {}), ("assign_rectification", FIVE), ("submit_rectification", {"media": "AFTER"}),
               ("accept_rectification", {})],
}


def fields_for(action: str, after: str, into: str) -> dict[str, Any]:
    return {
        "assign_rectification": FIVE,
        "submit_rectification": {"media": [{"sha256": after, "role": "after"}]},
        "merge": {"into": into},
        "list_supervision": {"level": "140400", "deadline": FUTURE},
    }.get(action, {})


@pytest.mark.parametrize("status", list(PATHS))
async def test_every_action_from_every_hazard_status_is_allowed_or_refused_as_the_table_says(
    client, people, status
):
    city = people["city"]
    after = await upload_after_photo(client, people["inspector"])
    into = await create(client, people["inspector"], hazard_report(title="survivor", grade="major"))
    for action in rules.ACTIONS:
        report_id = await create(client, people["inspector"], hazard_report(grade="major"))
        for done, fields in PATHS[status]:
            await step(client, city, report_id, done, **fields_for(done, after, into))
        current = (await client.get(f"/v1/reports/{report_id}", headers=city.headers)).json()
        assert current["status"] == status
        response = await act(client, city, report_id, action, current["version"], **fields_for(action, after, into))
        expected = [m for m in rules.MOVES if m.action == action and "hazard" in m.kinds and status in m.sources]
        if expected:
            assert response.status_code == 200, (status, action, response.text)
            target = expected[0].target or status
            assert response.json()["status"] == target
        else:
            assert response.status_code == 422, (status, action, response.text)
            assert problem(response)["code"] == "workflow.invalid_transition"


async def test_disaster_reports_are_terminal_when_verified_until_reopened(client, people):
    report_id = await create(client, people["inspector"], disaster_report())
    await step(client, people["county"], report_id, "verify")
    refused = await act(client, people["county"], report_id, "assign_rectification", 2, **FIVE)
    assert refused.status_code == 422
    reopened = await step(client, people["county"], report_id, "reopen")
    assert reopened["status"] == "submitted"


async def test_roles_and_scope(client, people):
    report_id = await create(client, people["inspector"], hazard_report())
    inspector_try = await act(client, people["inspector"], report_id, "verify", 1)
    assert inspector_try.status_code == 403
    outsider = await act(client, people["other_county"], report_id, "verify", 1)
    assert outsider.status_code == 404
    missing = await act(client, people["county"], str(uuid.uuid4()), "verify", 1)
    assert missing.status_code == 404


async def test_two_supervisors_on_the_same_version_one_wins_one_conflicts(client, people, conn):
    report_id = await create(client, people["inspector"], hazard_report())
    first, second = await asyncio.gather(
        act(client, people["county"], report_id, "verify", 1),
        act(client, people["county2"], report_id, "reject", 1),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    loser = first if first.status_code == 409 else second
    assert problem(loser)["code"] == "workflow.stale_version"
    row = await conn.fetchrow("SELECT status, version FROM reports WHERE id = $1", uuid.UUID(report_id))
    assert row["version"] == 2 and row["status"] in {"verified", "rejected"}
    events = await conn.fetchval(
        "SELECT count(*) FROM events WHERE report_id = $1 AND action IN ('verify', 'reject')", uuid.UUID(report_id)
    )
    assert events == 1


async def test_five_implementations_are_required(client, people):
    for grade, missing in (("major", "funds_cny"), ("major", "contingency_plan"), ("general", "measures")):
        report_id = await create(client, people["inspector"], hazard_report(grade=grade))
        await step(client, people["county"], report_id, "verify")
        fields = {k: v for k, v in FIVE.items() if k != missing}
        response = await act(client, people["county"], report_id, "assign_rectification", 2, **fields)
        assert response.status_code == 400, (grade, missing)
        assert problem(response)["field"] == missing
    report_id = await create(client, people["inspector"], hazard_report(grade="general"))
    await step(client, people["county"], report_id, "verify")
    general = {k: FIVE[k] for k in ("responsible_person", "measures", "deadline")}
    assert (await act(client, people["county"], report_id, "assign_rectification", 2, **general)).status_code == 200


async def test_submit_rectification_needs_an_after_photo(client, people):
    report_id = await create(client, people["inspector"], hazard_report())
    await step(client, people["county"], report_id, "verify")
    await step(client, people["county"], report_id, "assign_rectification", **FIVE)
    before = await upload_after_photo(client, people["inspector"], seed=9)
    response = await act(client, people["inspector"], report_id, "submit_rectification", 3,
                         media=[{"sha256": before, "role": "before"}])
    assert response.status_code == 400
    assert problem(response)["code"] == "workflow.after_photo_required"


async def test_listed_major_hazard_cannot_be_accepted_by_a_county_supervisor(client, people):
    report_id = await create(client, people["inspector"], hazard_report(grade="major"))
    county, city = people["county"], people["city"]
    await step(client, county, report_id, "verify")
    county_listing = await act(client, county, report_id, "list_supervision", 2, level="140400", deadline=FUTURE)
    assert county_listing.status_code == 403
    listed = await step(client, city, report_id, "list_supervision", level="140400", deadline=FUTURE)
    assert listed["workflow"]["listing"]["level"] == "140400"
    await step(client, county, report_id, "assign_rectification", **FIVE)
    after = await upload_after_photo(client, people["inspector"])
    await step(client, people["inspector"], report_id, "submit_rectification", media=[{"sha256": after, "role": "after"}])
    refused = await act(client, county, report_id, "accept_rectification", 5)
    assert refused.status_code == 403
    assert problem(refused)["code"] == "workflow.listing_level"
    closed = await step(client, city, report_id, "accept_rectification")
    assert closed["status"] == "closed"


async def test_general_hazards_cannot_be_listed(client, people):
    report_id = await create(client, people["inspector"], hazard_report(grade="general"))
    await step(client, people["city"], report_id, "verify")
    response = await act(client, people["city"], report_id, "list_supervision", 2, level="140400", deadline=FUTURE)
    assert response.status_code == 422


async def test_overdue_rectification_is_flagged(client, people, clock):
    report_id = await create(client, people["inspector"], hazard_report())
    await step(client, people["county"], report_id, "verify")
    await step(client, people["county"], report_id, "assign_rectification", **{**FIVE, "deadline": "2026-06-01T20:00:00+08:00"})
    detail = (await client.get(f"/v1/reports/{report_id}", headers=people["county"].headers)).json()
    assert detail["workflow"]["overdue"] is False
    clock.set(dt.datetime(2026, 6, 1, 12, 30, tzinfo=dt.UTC))
    detail = (await client.get(f"/v1/reports/{report_id}", headers=people["county"].headers)).json()
    assert detail["workflow"]["overdue"] is True


async def test_merge_keeps_the_merged_report_and_points_to_the_survivor(client, people):
    survivor = await create(client, people["inspector"], hazard_report(title="first report"))
    duplicate = await create(client, people["inspector"], hazard_report(title="same hazard again"))
    merged = await step(client, people["county"], duplicate, "merge", into=survivor)
    assert merged["status"] == "merged" and merged["duplicate_of"] == survivor
    assert merged["title"] == "same hazard again"
    kept = (await client.get(f"/v1/reports/{survivor}", headers=people["county"].headers)).json()
    assert kept["merged_from"] == [duplicate]
    into_self = await act(client, people["county"], survivor, "merge", 1, into=survivor)
    assert into_self.status_code == 400


async def test_closed_loop_with_the_device_seeing_every_step(client, people, conn, clock):
    from tests.api.test_sync import pull_all, push

    county = people["county"]
    device = await make_device(conn, people["inspector"], principal_of(county, "/140000/140400/140431/"),
                               now=clock.now())
    report_id = str(uuid.uuid4())
    body = hazard_report()
    body["id"] = report_id
    pushed = await push(client, device, [{"mutation_id": str(uuid.uuid4()), "op": "upsert_report", "report": body}])
    assert pushed.json()["results"][0]["status"] == "applied"
    seen, cursor = await pull_all(client, device)
    assert [(c["id"], c["status"]) for c in seen] == [(report_id, "submitted")]

    await step(client, county, report_id, "verify")
    await step(client, county, report_id, "assign_rectification", **FIVE)
    seen, cursor = await pull_all(client, device, cursor)
    assert [(c["status"], c["workflow"]["rectification"]["responsible_person"]) for c in seen] == [("rectifying", "张三")]

    after = await upload_after_photo(client, device)
    fix = {"mutation_id": str(uuid.uuid4()), "op": "submit_rectification", "report_id": report_id,
           "note": "已更换保护装置", "media": [{"sha256": after, "role": "after"}]}
    result = (await push(client, device, [fix])).json()["results"][0]
    assert result["status"] == "applied", result
    assert (await push(client, device, [fix])).json()["results"][0] == result
    comment = {"mutation_id": str(uuid.uuid4()), "op": "add_comment", "report_id": report_id, "body": "请验收"}
    assert (await push(client, device, [comment])).json()["results"][0]["status"] == "applied"

    seen, cursor = await pull_all(client, device, cursor)
    assert [c["status"] for c in seen] == ["rectified"]
    assert any(m["role"] == "after" and m["sha256"] == after for m in seen[0]["media"])

    await step(client, county, report_id, "accept_rectification")
    seen, cursor = await pull_all(client, device, cursor)
    assert [c["status"] for c in seen] == ["closed"]

    events = (await client.get(f"/v1/reports/{report_id}/events", headers=county.headers)).json()
    assert [e["action"] for e in events] == [
        "created", "verify", "assign_rectification", "submit_rectification", "comment", "accept_rectification"
    ]
    comments = (await client.get(f"/v1/reports/{report_id}/comments", headers=county.headers)).json()
    assert [c["body"] for c in comments] == ["请验收"]


async def test_events_are_append_only_for_the_application(client, people, conn):
    report_id = await create(client, people["inspector"], hazard_report())
    import asyncpg

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("UPDATE events SET action = 'forged' WHERE report_id = $1", uuid.UUID(report_id))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await conn.execute("DELETE FROM events WHERE report_id = $1", uuid.UUID(report_id))


async def test_audit_verify_names_the_tampered_row(client, people, conn, settings, monkeypatch, capsys):
    from fieldsync.__main__ import main

    report_id = await create(client, people["inspector"], hazard_report())
    await step(client, people["county"], report_id, "verify")
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", settings.database_url.value)
    monkeypatch.setenv("FIELDSYNC_DATA_DIR", str(settings.data_dir))
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 0
    assert "audit log intact" in capsys.readouterr().out

    target = await conn.fetchval("SELECT id FROM events WHERE report_id = $1 AND action = 'verify'", uuid.UUID(report_id))
    await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    await conn.execute("UPDATE events SET detail = '{\"note\":\"forged\"}' WHERE id = $1", target)
    await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 3
    out = capsys.readouterr().out
    assert f"BROKEN at event {target}" in out


async def test_audit_verify_detects_a_deleted_row(client, people, conn, settings, monkeypatch, capsys):
    from fieldsync.__main__ import main

    report_id = await create(client, people["inspector"], hazard_report())
    await step(client, people["county"], report_id, "verify")
    await step(client, people["county"], report_id, "assign_rectification", **FIVE)
    first, second, third = [r["id"] for r in await conn.fetch(
        "SELECT id FROM events WHERE report_id = $1 ORDER BY id", uuid.UUID(report_id))]
    await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    await conn.execute("DELETE FROM events WHERE id = $1", second)
    await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", settings.database_url.value)
    monkeypatch.setenv("FIELDSYNC_DATA_DIR", str(settings.data_dir))
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 3
    assert f"BROKEN at event {third}" in capsys.readouterr().out


async def test_an_anchor_kept_off_the_box_reveals_a_chain_rewritten_with_its_head(
    client, people, conn, settings, monkeypatch, capsys
):
    """The chains alone cannot reveal a superuser who rewrites a whole chain and its head
    consistently (ADR 0009). A digest taken earlier and kept elsewhere can."""
    from fieldsync.__main__ import main
    from fieldsync.domain.audit import GENESIS, EventFields, event_hash

    report_id = await create(client, people["inspector"], hazard_report())
    await step(client, people["county"], report_id, "verify")
    monkeypatch.setenv("FIELDSYNC_DATABASE_URL", settings.database_url.value)
    monkeypatch.setenv("FIELDSYNC_DATA_DIR", str(settings.data_dir))
    assert await asyncio.to_thread(main, ["audit", "anchor"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]  # request logs come first on stdout
    assert line.startswith("fieldsync-audit-anchor/1 ") and "events=2 " in line

    await step(client, people["county"], report_id, "assign_rectification", **FIVE)  # later events are fine
    assert await asyncio.to_thread(main, ["audit", "verify", "--anchor", line]) == 0
    assert "1 anchor(s) match" in capsys.readouterr().out

    chain = f"report:{report_id}"
    await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    prev = GENESIS
    for row in await conn.fetch("SELECT * FROM events WHERE chain = $1 ORDER BY position", chain):
        detail = '{"note":"forged"}' if row["action"] == "verify" else row["detail"]
        fields = EventFields(
            chain=chain, position=row["position"], report_id=row["report_id"], actor_id=row["actor_id"],
            device_id=row["device_id"], action=row["action"], from_status=row["from_status"],
            to_status=row["to_status"], version=row["version"], detail=detail, created_at=row["created_at"],
        )
        forged = event_hash(prev, fields)
        await conn.execute("UPDATE events SET detail = $2, prev_hash = $3, row_hash = $4 WHERE id = $1",
                           row["id"], detail, prev, forged)
        prev = forged
    await conn.execute("UPDATE audit_heads SET head_hash = $2 WHERE chain = $1", chain, prev)
    await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")

    assert await asyncio.to_thread(main, ["audit", "verify"]) == 0  # consistent: the chains cannot tell
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["audit", "verify", "--anchor", line]) == 3
    assert "BROKEN against the anchor" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["audit", "verify", "--anchor", "not an anchor"]) == 2
    assert await asyncio.to_thread(main, ["audit", "verify", "--anchor-file", str(settings.data_dir / "none")]) == 2


async def test_an_anchor_leaves_out_events_too_young_to_be_settled(people, conn, clock):
    """A transaction still in flight may commit a lower event id than the newest one; events of
    the last minute are left to the next anchor, so a later check cannot mistake them for forgeries."""
    from fieldsync.services import audit

    await audit.record(conn, [audit.NewEvent(chain="media:" + "a" * 64, action="media_viewed",
                                             actor_id=people["county"].user_id)], now=clock.now())
    assert (await audit.take_anchor(conn, now=clock.now())).events == 0
    later = await audit.take_anchor(conn, now=clock.now() + dt.timedelta(seconds=audit.ANCHOR_SETTLE_S + 1))
    assert later.events == 1 and await audit.check_anchor(conn, later) is None
