"""Webhooks (SPEC §9) through the API, delivered by the app's own worker to a real receiver on
127.0.0.1 that verifies every signature with the ``standardwebhooks`` package.

The clock starts at the real time (receivers reject a ``webhook-timestamp`` more than five
minutes off) and is moved forward to make retries fall due: no test sleeps through a backoff.
After moving it a test wakes the workers (``NOTIFY``), as the poll would a moment later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar

from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import ReportWrite
from fieldsync.app import create_app
from fieldsync.db import webhooks as webhooks_q
from fieldsync.db.pool import connect, create_pool
from fieldsync.db.transactions import transaction
from fieldsync.domain.webhooks import RetryPolicy
from fieldsync.outbound import WebhookSender
from fieldsync.ports import SystemClock
from fieldsync.services import events, reports
from fieldsync.services.delivery import DeliveryWorker, WorkerConfig
from fieldsync.settings import Settings
from tests.conftest import running
from tests.support import Actor, MutableClock, disaster_report, hazard_report, make_user, principal_of, problem
from tests.webhook_receiver import HANG, Receiver, Reply

ALL_EVENTS = ["report.created", "report.updated", "report.status_changed", "report.merged",
              "incident.report_added", "incident.deadline_missed", "hazard.overdue"]


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


def webhook_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path / "data", database_url=database_url, media_url=f"file://{tmp_path / 'media'}",
        log_json=False, webhook_allow_private=True, webhook_timeout_s=1,
    )
    values.update(overrides)
    return Settings.from_env({}, **values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return webhook_settings(database_url, tmp_path)


@pytest.fixture
def receiver() -> AsyncIterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
async def people(conn: asyncpg.Connection, clock: MutableClock) -> dict[str, Actor]:
    now = clock.now()
    return {
        "admin": await make_user(conn, role="admin", jurisdiction="110000", now=now),
        "inspector": await make_user(conn, role="inspector", jurisdiction="140431", now=now),
        "luzhou": await make_user(conn, role="inspector", jurisdiction="140403", now=now),
        "city": await make_user(conn, role="supervisor", jurisdiction="140400", now=now),
    }


async def subscribe(client: httpx.AsyncClient, admin: Actor, receiver: Receiver, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ALL_EVENTS, **body}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    receiver.secret = created["secret"]
    return created


def recent(clock: MutableClock, **overrides: Any) -> dict[str, Any]:
    """A hazard report observed an hour before the test clock."""
    observed = (clock.now() - dt.timedelta(hours=1)).isoformat()
    return hazard_report(observed_at=observed, **overrides)


async def put_report(client: httpx.AsyncClient, author: Actor, body: dict[str, Any], report_id: str | None = None,
                     expect: int = 201) -> str:
    report_id = report_id or str(uuid.uuid4())
    response = await client.put(f"/v1/reports/{report_id}", json=body, headers=author.headers)
    assert response.status_code == expect, response.text
    return report_id


async def act(client: httpx.AsyncClient, actor: Actor, report_id: str, action: str, **fields: Any) -> dict[str, Any]:
    current = (await client.get(f"/v1/reports/{report_id}", headers=actor.headers)).json()
    response = await client.post(
        f"/v1/reports/{report_id}/transitions", json={"action": action, "version": current["version"], **fields},
        headers=actor.headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliveries(client: httpx.AsyncClient, admin: Actor, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/webhooks/{webhook_id}/deliveries", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def wait_until(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def advance(conn: asyncpg.Connection, clock: MutableClock, **delta: float) -> None:
    """Move the clock and wake the workers, as their poll would a moment later."""
    clock.advance(**delta)
    await webhooks_q.wake_workers(conn)


async def settled(client: httpx.AsyncClient, admin: Actor, webhook_id: str, attempts: int) -> dict[str, Any]:
    """The only delivery of a subscription, once it has recorded ``attempts`` attempts."""

    async def check() -> dict[str, Any] | None:
        items = await deliveries(client, admin, webhook_id)
        if len(items) == 1 and len(items[0]["attempt_log"]) >= attempts and not items[0]["in_flight"]:
            return items[0]
        return None

    found: dict[str, Any] = await wait_until(check)
    return found


# --- management ---------------------------------------------------------------------------------


async def test_admin_subscribes_and_the_secret_is_shown_only_in_the_creation_answer(
    client: httpx.AsyncClient, people: dict[str, Actor], receiver: Receiver
) -> None:
    admin = people["admin"]
    created = await subscribe(client, admin, receiver, events=["report.created", "report.created"],
                              jurisdiction="140431")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["report.created"] and created["jurisdiction"] == "140431"

    listed = (await client.get("/v1/webhooks", headers=admin.headers)).json()["items"]
    assert [item["id"] for item in listed] == [created["id"]]
    assert "secret" not in listed[0] and created["secret"] not in str(listed)

    removed = await client.delete(f"/v1/webhooks/{created['id']}", headers=admin.headers)
    assert removed.status_code == 200 and removed.json()["id"] == created["id"]
    gone = await client.get(f"/v1/webhooks/{created['id']}/deliveries", headers=admin.headers)
    assert gone.status_code == 404 and problem(gone)["code"] == "webhook.not_found"
    again = await client.delete(f"/v1/webhooks/{created['id']}", headers=admin.headers)
    assert again.status_code == 404


async def test_bad_subscriptions_are_4xx_problems_naming_the_field(
    client: httpx.AsyncClient, people: dict[str, Actor]
) -> None:
    admin = people["admin"]
    cases = [
        ({"url": "ftp://hooks.example.com/x", "events": ["report.created"]}, "url"),
        ({"url": "https://user:pw@hooks.example.com/", "events": ["report.created"]}, "url"),
        ({"url": "https://hooks.example.com/", "events": ["report.deleted"]}, "events"),
        ({"url": "https://hooks.example.com/", "events": []}, "events"),
        ({"url": "https://hooks.example.com/", "events": ["report.created"], "jurisdiction": "999999"}, "jurisdiction"),
    ]
    for body, field in cases:
        response = await client.post("/v1/webhooks", json=body, headers=admin.headers)
        assert response.status_code == 400, (body, response.text)
        assert re.split(r"[.\[]", problem(response).get("field", ""))[0] == field, response.text
    assert (await client.get("/v1/webhooks", headers=admin.headers)).json()["items"] == []


async def test_internal_targets_are_refused_unless_private_targets_are_allowed(
    database_url: str, tmp_path: Path, conn: asyncpg.Connection, clock: MutableClock
) -> None:
    app = create_app(webhook_settings(database_url, tmp_path, webhook_allow_private=False), clock=clock)
    admin = await make_user(conn, role="admin", jurisdiction="110000", now=clock.now())
    async with running(app), _client(app) as client:
        for url in ["http://127.0.0.1:8080/hook", "http://10.0.0.7/hook", "http://169.254.169.254/latest",
                    "http://[::1]/hook", "http://localhost:9000/hook", "http://api.localhost/hook",
                    "http://[::ffff:192.168.0.1]/hook", "http://0.0.0.0/hook"]:
            response = await client.post("/v1/webhooks", json={"url": url, "events": ALL_EVENTS},
                                         headers=admin.headers)
            assert response.status_code == 400, (url, response.text)
            assert problem(response)["code"] == "webhook.target_forbidden" and problem(response)["field"] == "url"
        # a name that does not resolve yet is accepted: the worker checks it before every call
        response = await client.post("/v1/webhooks", json={"url": "https://hooks.example.invalid/in",
                                                           "events": ALL_EVENTS}, headers=admin.headers)
        assert response.status_code == 201, response.text


def _client(app: Litestar) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver.local")


# --- what is sent -------------------------------------------------------------------------------


async def test_a_new_report_is_delivered_as_a_signed_cloud_event(
    client: httpx.AsyncClient, people: dict[str, Actor], receiver: Receiver, clock: MutableClock
) -> None:
    hook = await subscribe(client, people["admin"], receiver)
    report_id = await put_report(client, people["inspector"], recent(clock))

    (got,) = await receiver.wait_for(1)
    assert got.verified, got.verify_error
    assert got.headers["content-type"] == "application/cloudevents+json"
    event = got.event
    assert event["id"] == got.webhook_id and event["specversion"] == "1.0"
    assert (event["type"], event["subject"], event["source"]) == ("report.created", report_id, "/v1/reports")
    assert event["data"]["report_id"] == report_id and event["data"]["jurisdiction"] == "140431"
    assert event["data"]["status"] == "submitted" and event["data"]["version"] == 1
    assert int(got.timestamp) == int(clock.now().timestamp())

    delivery = await settled(client, people["admin"], hook["id"], attempts=1)
    assert delivery["state"] == "delivered" and delivery["event_id"] == got.webhook_id
    assert [(a["attempt"], a["status_code"], a["error"]) for a in delivery["attempt_log"]] == [(1, 200, None)]
    assert delivery["attempt_log"][0]["latency_ms"] >= 0


async def test_every_change_through_every_entry_point_emits_its_events_in_order(
    client: httpx.AsyncClient, people: dict[str, Actor], receiver: Receiver, clock: MutableClock
) -> None:
    hook = await subscribe(client, people["admin"], receiver)
    inspector, city = people["inspector"], people["city"]
    first = await put_report(client, inspector, recent(clock, title="主斜井皮带机保护装置失效", grade="major"))
    await act(client, city, first, "request_info", note="请补充照片")
    revised = {**recent(clock, title="主斜井皮带机保护装置失效(补充)", grade="major"), "base_version": 2}
    await put_report(client, inspector, revised, first, expect=200)
    pushed = str(uuid.uuid4())
    mutation = {"mutation_id": str(uuid.uuid4()), "op": "upsert_report",
                "report": recent(clock, id=pushed, title="主斜井皮带机保护装置失效", description="另一台", grade="major")}
    response = await client.post("/v1/sync/push", json={"mutations": [mutation]}, headers=inspector.headers)
    assert response.json()["results"][0]["status"] == "applied"
    await act(client, city, first, "verify")
    await act(client, city, first, "list_supervision", level="140400",
              deadline=(clock.now() + dt.timedelta(days=30)).isoformat())
    await act(client, city, pushed, "merge", into=first)
    incident = str(uuid.uuid4())
    disaster = await put_report(client, inspector, disaster_report(
        incident_id=incident, observed_at=(clock.now() - dt.timedelta(minutes=30)).isoformat()))

    expected = [
        ("report.created", first, {}),
        ("report.status_changed", first, {"from_status": "submitted", "to_status": "needs_info"}),
        ("report.updated", first, {"version": 3}),
        ("report.status_changed", first, {"from_status": "needs_info", "to_status": "submitted", "action": "resubmit"}),
        ("report.created", pushed, {}),
        ("report.status_changed", first, {"to_status": "verified", "action": "verify"}),
        ("report.updated", first, {"action": "list_supervision", "status": "verified"}),
        ("report.status_changed", pushed, {"to_status": "merged", "action": "merge"}),
        ("report.merged", pushed, {"into": first}),
        ("report.created", disaster, {"incident_id": incident}),
        ("incident.report_added", disaster, {"incident_id": incident, "stage": "initial"}),
    ]
    got = await receiver.wait_for(len(expected))
    assert all(r.verified for r in got), [r.verify_error for r in got]
    by_report: dict[str, list[dict[str, Any]]] = {}
    for received in got:
        by_report.setdefault(received.event["subject"], []).append(received.event)
    for report_id in (first, pushed, disaster):
        want = [(t, fields) for t, r, fields in expected if r == report_id]
        have = by_report[report_id]
        assert [e["type"] for e in have] == [t for t, _ in want], report_id
        for event, (_, fields) in zip(have, want, strict=True):
            assert fields.items() <= event["data"].items(), (event["type"], event["data"])
    await asyncio.sleep(0.2)
    assert len(receiver.received) == len(expected), "a replayed or unchanged request sent an event"

    paged: list[str] = []
    cursor: str | None = None
    while True:
        response = await client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=people["admin"].headers,
                                    params={"limit": 4, **({"cursor": cursor} if cursor else {})})
        page = response.json()
        paged += [d["event_id"] for d in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert len(paged) == len(set(paged)) and set(paged) == {r.webhook_id for r in got}, "each once across pages"
    newest = next(r for r in got if r.event["type"] == "incident.report_added")
    assert (paged[0], paged[-1]) == (newest.webhook_id, got[0].webhook_id), "newest event first, oldest last"


async def test_a_subscription_for_one_county_never_receives_another_countys_report(
    client: httpx.AsyncClient, people: dict[str, Actor], clock: MutableClock
) -> None:
    with Receiver() as qinyuan, Receiver() as luzhou, Receiver() as city:
        await subscribe(client, people["admin"], qinyuan, jurisdiction="140431")
        await subscribe(client, people["admin"], luzhou, jurisdiction="140403")
        await subscribe(client, people["admin"], city, jurisdiction="140400")
        in_qinyuan = await put_report(client, people["inspector"], recent(clock))
        in_luzhou = await put_report(client, people["luzhou"], recent(clock, jurisdiction="140403",
                                                                       location={"lat": 36.2, "lon": 113.1, "accuracy_m": 5.0}))
        await act(client, people["city"], in_luzhou, "merge", into=in_qinyuan)

        await city.wait_for(4)
        await qinyuan.wait_for(1)
        await luzhou.wait_for(3)
        await asyncio.sleep(0.2)
        assert {e["subject"] for e in qinyuan.events()} == {in_qinyuan}
        assert {e["subject"] for e in luzhou.events()} == {in_luzhou}
        merged = [e for e in luzhou.events() if e["type"] == "report.merged"]
        assert merged[0]["data"]["into"] is None, "the survivor lies in another county: not named"
        assert "140431" not in str(luzhou.events()) and in_qinyuan not in str(luzhou.events())
        assert [e["data"]["into"] for e in city.events() if e["type"] == "report.merged"] == [in_qinyuan]


async def test_a_rolled_back_change_sends_nothing(
    client: httpx.AsyncClient, conn: asyncpg.Connection, people: dict[str, Actor], receiver: Receiver,
    clock: MutableClock
) -> None:
    await subscribe(client, people["admin"], receiver)
    inspector = principal_of(people["inspector"], "/140000/140400/140431/")
    doomed = to_submission(uuid.uuid4(), msgspec.convert(recent(clock), ReportWrite))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        async with transaction(conn):
            receipt = await reports.submit_report(conn, inspector, doomed, now=clock.now(), clock_skew_s=600)
            assert receipt.version == 1
            assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
            raise RuntimeError("the request failed after the change")
    assert await conn.fetchval("SELECT count(*) FROM webhook_events") == 0
    assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 0

    kept = await put_report(client, people["inspector"], recent(clock, title="另一条隐患"))
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert [e["subject"] for e in receiver.events()] == [kept]


# --- retries, Retry-After, 410, timeouts, dead letters -------------------------------------------


async def test_a_500_is_retried_after_the_backoff_with_the_same_webhook_id(
    client: httpx.AsyncClient, conn: asyncpg.Connection, people: dict[str, Actor], receiver: Receiver,
    clock: MutableClock
) -> None:
    receiver.answer(Reply(500))
    hook = await subscribe(client, people["admin"], receiver)
    await put_report(client, people["inspector"], recent(clock))
    first = await settled(client, people["admin"], hook["id"], attempts=1)
    assert first["state"] == "pending" and first["last_status"] == 500 and "HTTP 500" in first["last_error"]
    wait = dt.datetime.fromisoformat(first["next_attempt_at"]) - clock.now()
    assert dt.timedelta(seconds=5) <= wait <= dt.timedelta(seconds=6), "first retry: 5 s plus up to 20 % jitter"

    await advance(conn, clock, seconds=2)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1, "not due yet"
    await advance(conn, clock, seconds=5)
    second, = (await receiver.wait_for(2))[1:]
    assert second.webhook_id == receiver.received[0].webhook_id and second.body == receiver.received[0].body
    assert second.verified and second.timestamp != receiver.received[0].timestamp
    done = await settled(client, people["admin"], hook["id"], attempts=2)
    assert done["state"] == "delivered"
    assert [a["status_code"] for a in done["attempt_log"]] == [500, 200]


async def test_retry_after_from_the_receiver_is_honoured(
    client: httpx.AsyncClient, conn: asyncpg.Connection, people: dict[str, Actor], receiver: Receiver,
    clock: MutableClock
) -> None:
    receiver.answer(Reply(503, {"Retry-After": "120"}))
    hook = await subscribe(client, people["admin"], receiver)
    await put_report(client, people["inspector"], recent(clock))
    first = await settled(client, people["admin"], hook["id"], attempts=1)
    assert dt.datetime.fromisoformat(first["next_attempt_at"]) - clock.now() >= dt.timedelta(seconds=120)

    await advance(conn, clock, seconds=60)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1, "the schedule's 5 s passed, the receiver's 120 s did not"
    await advance(conn, clock, seconds=61)
    await receiver.wait_for(2)
    assert (await settled(client, people["admin"], hook["id"], attempts=2))["state"] == "delivered"


async def test_410_disables_the_subscription_until_an_admin_retries_a_delivery(
    client: httpx.AsyncClient, conn: asyncpg.Connection, people: dict[str, Actor], receiver: Receiver,
    clock: MutableClock
) -> None:
    admin = people["admin"]
    receiver.answer(Reply(410))
    hook = await subscribe(client, admin, receiver)
    await put_report(client, people["inspector"], recent(clock))
    gone = await settled(client, admin, hook["id"], attempts=1)
    assert gone["state"] == "dead" and gone["last_status"] == 410
    listed = (await client.get("/v1/webhooks", headers=admin.headers)).json()["items"][0]
    assert listed["disabled_at"] is not None and "410" in listed["disabled_reason"]

    await put_report(client, people["inspector"], recent(clock, title="停用期间的隐患"))
    await advance(conn, clock, minutes=2)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1 and len(await deliveries(client, admin, hook["id"])) == 1

    retried = await client.post(f"/v1/webhooks/{hook['id']}/deliveries/{gone['id']}/retry", headers=admin.headers)
    assert retried.status_code == 202, retried.text
    assert retried.json()["state"] == "pending"
    again = (await receiver.wait_for(2))[1]
    assert again.webhook_id == gone["event_id"] and again.verified
    listed = (await client.get("/v1/webhooks", headers=admin.headers)).json()["items"][0]
    assert listed["disabled_at"] is None


async def test_a_hanging_receiver_times_out_and_never_holds_up_another_subscription(
    client: httpx.AsyncClient, people: dict[str, Actor], clock: MutableClock
) -> None:
    with Receiver(default=HANG) as stuck, Receiver() as fast:
        slow_hook = await subscribe(client, people["admin"], stuck, events=["report.created"])
        await subscribe(client, people["admin"], fast, events=["report.created"])
        ids = [str(uuid.uuid4()) for _ in range(20)]
        mutations = [{"mutation_id": str(uuid.uuid4()), "op": "upsert_report",
                      "report": recent(clock, id=report_id, title=f"隐患 {n}")} for n, report_id in enumerate(ids)]
        loop = asyncio.get_running_loop()
        response = await client.post("/v1/sync/push", json={"mutations": mutations},
                                     headers=people["inspector"].headers)
        assert {r["status"] for r in response.json()["results"]} == {"applied"}
        committed = loop.time()
        await fast.wait_for(20, timeout_s=3)
        assert loop.time() - committed < 0.9, "the fast receiver waited for the hanging one's 1 s timeout"
        assert {e["subject"] for e in fast.events()} == set(ids)
        first_wave = [r for r in stuck.received if r.at - stuck.received[0].at < 0.9]
        assert len(first_wave) == 8, "half the worker's 16 slots, no more, go to one subscription"

        async def timed_out() -> list[dict[str, Any]]:
            items = await deliveries(client, people["admin"], slow_hook["id"])
            return [d for d in items if d["attempt_log"]]

        failed = await wait_until(timed_out, timeout_s=5)
        attempt = failed[0]["attempt_log"][0]
        assert attempt["status_code"] is None and "within 1 s" in attempt["error"]
        assert 1000 <= attempt["latency_ms"] < 2000
        assert failed[0]["state"] == "pending"


async def test_a_delivery_is_dead_lettered_after_a_day_of_failures_and_the_retry_endpoint_resends_it(
    client: httpx.AsyncClient, conn: asyncpg.Connection, people: dict[str, Actor], receiver: Receiver,
    clock: MutableClock
) -> None:
    admin = people["admin"]
    receiver.default = Reply(500)
    hook = await subscribe(client, admin, receiver)
    await put_report(client, people["inspector"], recent(clock))
    start = clock.now()
    attempts = 1
    delivery = await settled(client, admin, hook["id"], attempts=1)
    while delivery["state"] == "pending":
        await advance(conn, clock, seconds=(dt.datetime.fromisoformat(delivery["next_attempt_at"]) - clock.now())
                      .total_seconds() + 1)
        attempts += 1
        admin = await make_user(conn, role="admin", jurisdiction="110000", now=clock.now())  # sessions expire
        delivery = await settled(client, admin, hook["id"], attempts=attempts)
    assert delivery["state"] == "dead" and attempts == 8
    assert dt.datetime.fromisoformat(delivery["dead_at"]) - start >= dt.timedelta(hours=24)
    assert len({r.webhook_id for r in receiver.received}) == 1 and len(receiver.received) == 8
    assert [d["id"] for d in await deliveries(client, admin, hook["id"], state="dead")] == [delivery["id"]]
    assert await deliveries(client, admin, hook["id"], state="pending") == []

    clock.set(dt.datetime.now(dt.UTC))
    admin = people["admin"]
    receiver.default = Reply(204)
    retried = await client.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/retry", headers=admin.headers)
    assert retried.status_code == 202, retried.text
    resent = (await receiver.wait_for(9))[-1]
    assert resent.webhook_id == delivery["event_id"] and resent.verified
    done = await settled(client, admin, hook["id"], attempts=9)
    assert done["state"] == "delivered" and done["attempt_log"][-1]["status_code"] == 204

    missing = await client.post(f"/v1/webhooks/{hook['id']}/deliveries/{uuid.uuid4()}/retry", headers=admin.headers)
    assert missing.status_code == 404 and problem(missing)["code"] == "webhook.delivery_not_found"


async def test_a_target_that_resolves_inside_at_delivery_time_is_not_called(
    database_url: str, tmp_path: Path, conn: asyncpg.Connection, clock: MutableClock, receiver: Receiver
) -> None:
    """DNS rebinding: the URL passed the check when it was registered and points inside now."""
    app = create_app(webhook_settings(database_url, tmp_path, webhook_allow_private=False), clock=clock)
    admin = await make_user(conn, role="admin", jurisdiction="110000", now=clock.now())
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    async with running(app), _client(app) as client:
        response = await client.post("/v1/webhooks", json={"url": "https://hooks.example.invalid/in",
                                                           "events": ALL_EVENTS}, headers=admin.headers)
        hook = response.json()
        rebound = receiver.url.replace("127.0.0.1", "localhost")
        await conn.execute("UPDATE webhook_subscriptions SET url = $1 WHERE id = $2", rebound, uuid.UUID(hook["id"]))
        await put_report(client, inspector, recent(clock))
        delivery = await settled(client, admin, hook["id"], attempts=1)
    assert "localhost is this machine" in delivery["attempt_log"][0]["error"]
    assert delivery["state"] == "pending" and receiver.received == []


# --- deadline events ----------------------------------------------------------------------------


async def test_overdue_hazards_and_missed_initial_reports_are_announced_exactly_once(
    client: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str, people: dict[str, Actor],
    receiver: Receiver, clock: MutableClock
) -> None:
    real_now = clock.now()
    clock.set(real_now - dt.timedelta(hours=1, minutes=30))  # receivers want a timestamp near their clock
    await subscribe(client, people["admin"], receiver, events=["hazard.overdue", "incident.deadline_missed"])
    hazard = await put_report(client, people["inspector"], recent(clock))
    await act(client, people["city"], hazard, "verify")
    deadline = clock.now() + dt.timedelta(hours=1)
    await act(client, people["city"], hazard, "assign_rectification", responsible_person="张三",
              measures="更换保护装置", deadline=deadline.isoformat())
    incident = str(uuid.uuid4())
    update = await put_report(client, people["inspector"], disaster_report(
        incident_id=incident, stage="update", observed_at=(clock.now() - dt.timedelta(hours=1)).isoformat()))

    clock.set(real_now)
    others = [await connect(database_url) for _ in range(2)]
    try:
        async def check(other: asyncpg.Connection) -> int:
            async with other.transaction():
                found = await events.check_deadlines(other, now=clock.now())
                await asyncio.sleep(0.1)
                return found

        await asyncio.gather(*(check(other) for other in others))
        async with transaction(conn):
            await events.check_deadlines(conn, now=clock.now())
    finally:
        for other in others:
            await other.close()

    got = await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 2 and all(r.verified for r in got)
    by_type = {r.event["type"]: r.event for r in got}
    overdue, missed = by_type["hazard.overdue"], by_type["incident.deadline_missed"]
    assert overdue["subject"] == hazard and overdue["time"] == deadline.isoformat().replace("+00:00", "Z")
    assert overdue["data"]["status"] == "rectifying"
    assert missed["subject"] == update and missed["data"]["incident_id"] == incident
    assert missed["data"]["met_at"] is None and missed["data"]["deadline_stage"] == "initial"


# --- several workers ----------------------------------------------------------------------------


class CountingSender:
    """The real sender, counting the calls one worker makes."""

    def __init__(self, inner: WebhookSender) -> None:
        self.inner = inner
        self.calls = 0

    async def post(self, target: Any, headers: dict[str, str], body: bytes) -> Any:
        self.calls += 1
        return await self.inner.post(target, headers, body)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_two_workers_deliver_each_reports_events_in_order_through_random_failures(
    database_url: str, tmp_path: Path, conn: asyncpg.Connection, clock: MutableClock, receiver: Receiver
) -> None:
    app = create_app(webhook_settings(database_url, tmp_path, webhook_concurrency=0), clock=SystemClock())
    admin = await make_user(conn, role="admin", jurisdiction="110000", now=clock.now())
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    rng = random.Random(15)
    receiver.answer(*[Reply(500) if rng.random() < 0.3 else Reply(200) for _ in range(300)])
    ids = [str(uuid.uuid4()) for _ in range(10)]
    mutations = [
        {"mutation_id": str(uuid.uuid4()), "op": "upsert_report",
         "report": recent(clock, id=report_id, title=f"隐患 {n} 第{version}版"),
         **({"base_version": version - 1} if version > 1 else {})}
        for version in (1, 2, 3, 4) for n, report_id in enumerate(ids)
    ]
    async with running(app), _client(app) as client:
        await subscribe(client, admin, receiver)
        response = await client.post("/v1/sync/push", json={"mutations": mutations}, headers=inspector.headers)
        assert {r["status"] for r in response.json()["results"]} == {"applied"}, response.text
    assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'") == 40

    config = WorkerConfig(concurrency=8, per_subscription=8, timeout_s=2, poll_s=0.05, deadline_check_s=3600,
                          policy=RetryPolicy(delays_s=(0.05,) * 20, jitter=0.5))
    pool = await create_pool(database_url, min_size=1, max_size=6)
    senders = [CountingSender(WebhookSender(timeout_s=2, allow_private=True, max_keepalive=8)) for _ in range(2)]
    try:
        workers = [DeliveryWorker(pool, SystemClock(), sender, config) for sender in senders]
        async with workers[0].running(), workers[1].running():
            async def all_delivered() -> bool:
                left = await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'")
                return left == 0

            await wait_until(all_delivered, timeout_s=20)
    finally:
        await pool.close()

    assert all(sender.calls > 0 for sender in senders), [sender.calls for sender in senders]
    assert any(r.answered == 500 for r in receiver.received), "the script failed no request"
    arrivals: dict[str, list[int]] = {}
    for received in receiver.received:
        assert received.verified, received.verify_error
        arrivals.setdefault(received.event["subject"], []).append(received.event["data"]["version"])
    for report_id in ids:
        versions = arrivals[report_id]
        assert versions == sorted(versions), f"{report_id} arrived out of order: {versions}"
        assert sorted(set(versions)) == [1, 2, 3, 4]


async def test_a_backlog_drains_at_once_without_waiting_for_the_poll(
    database_url: str, tmp_path: Path, conn: asyncpg.Connection, clock: MutableClock, receiver: Receiver
) -> None:
    """Freed slots are refilled as calls finish; the idle poll (a minute here) never paces a backlog."""
    app = create_app(webhook_settings(database_url, tmp_path, webhook_concurrency=0), clock=clock)
    admin = await make_user(conn, role="admin", jurisdiction="110000", now=clock.now())
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    mutations = [{"mutation_id": str(uuid.uuid4()), "op": "upsert_report",
                  "report": recent(clock, id=str(uuid.uuid4()), title=f"隐患 {n}")} for n in range(60)]
    async with running(app), _client(app) as client:
        await subscribe(client, admin, receiver, events=["report.created"])
        response = await client.post("/v1/sync/push", json={"mutations": mutations}, headers=inspector.headers)
        assert {r["status"] for r in response.json()["results"]} == {"applied"}

    config = WorkerConfig(concurrency=4, per_subscription=2, timeout_s=2, poll_s=60, deadline_check_s=3600)
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        worker = DeliveryWorker(pool, clock, WebhookSender(timeout_s=2, allow_private=True, max_keepalive=4), config)
        async with worker.running():
            await receiver.wait_for(60, timeout_s=10)
    finally:
        await pool.close()
    assert len({r.webhook_id for r in receiver.received}) == 60 and all(r.verified for r in receiver.received)


async def test_a_change_racing_the_deletion_of_its_subscription_commits_without_a_delivery(
    client: httpx.AsyncClient, conn: asyncpg.Connection, database_url: str, people: dict[str, Actor],
    receiver: Receiver, clock: MutableClock
) -> None:
    hook = await subscribe(client, people["admin"], receiver, events=["report.updated"])
    report_id = uuid.UUID(await put_report(client, people["inspector"], recent(clock)))
    deleter = await connect(database_url)
    try:
        deleting = deleter.transaction()
        await deleting.start()
        await deleter.execute("DELETE FROM webhook_subscriptions WHERE id = $1", uuid.UUID(hook["id"]))

        async def change() -> int:
            async with transaction(conn):
                return await webhooks_q.emit(conn, [webhooks_q.NewEvent("report.updated", report_id, clock.now())],
                                             now=clock.now())

        racing = asyncio.create_task(change())
        await asyncio.sleep(0.3)
        assert not racing.done(), "the change waits for the deletion to settle"
        await deleting.commit()
        assert await racing == 0
    finally:
        await deleter.close()
    assert await conn.fetchval("SELECT count(*) FROM webhook_deliveries") == 0
