"""POST /v1/sync/push and GET /v1/sync/pull: per-item results, replays, encodings, and a feed
that never skips a change."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest

from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import HazardReport
from fieldsync.api.sync import decode_push
from fieldsync.db.pool import connect
from fieldsync.db.transactions import transaction
from fieldsync.services import reports as report_service
from fieldsync.services import sync as sync_service
from tests.support import Actor, hazard_report, make_user, principal_of, problem, settled


@pytest.fixture
async def inspector(conn, clock) -> Actor:
    return await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())


def upsert(report_id: uuid.UUID | None = None, **overrides: Any) -> dict[str, Any]:
    body = hazard_report(**overrides)
    body["id"] = str(report_id or uuid.uuid4())
    return {"mutation_id": str(uuid.uuid4()), "op": "upsert_report", "report": body}


async def push(client, actor: Actor, mutations: list[dict[str, Any]], *, msgpack: bool = False):
    if msgpack:
        return await client.post(
            "/v1/sync/push",
            content=msgspec.msgpack.encode({"mutations": mutations}),
            headers={**actor.headers, "Content-Type": "application/msgpack", "Accept": "application/msgpack"},
        )
    return await client.post("/v1/sync/push", json={"mutations": mutations}, headers=actor.headers)


def same_instants(value: Any) -> Any:
    """MessagePack timestamps are UTC instants; JSON keeps the sender's offset. Compare instants."""
    if isinstance(value, dict):
        return {k: same_instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [same_instants(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[10:11] == "T":
        try:
            return dt.datetime.fromisoformat(value).astimezone(dt.UTC)
        except ValueError:
            return value
    return value


def body_of(response) -> dict[str, Any]:
    if response.headers["content-type"].startswith("application/msgpack"):
        decoded = msgspec.msgpack.decode(response.content)
        return msgspec.json.decode(msgspec.json.encode(decoded))  # timestamps become RFC 3339 text
    return response.json()


async def pull_all(client, actor: Actor, cursor: str | None = None, *, limit: int = 1000, msgpack: bool = False):
    """Follow has_more to the end; returns (changes, final cursor)."""
    changes: list[dict[str, Any]] = []
    headers = {**actor.headers, **({"Accept": "application/msgpack"} if msgpack else {})}
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/sync/pull", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = body_of(response)
        changes += page["changes"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return changes, cursor


async def snapshot_tables(conn) -> list[Any]:
    return [
        await conn.fetch("SELECT id, version, body, status FROM reports ORDER BY id"),
        await conn.fetch("SELECT report_id, version FROM report_versions ORDER BY 1, 2"),
        await conn.fetchval("SELECT count(*) FROM sync_mutations"),
    ]


async def test_batch_of_1000_answers_in_order_and_replays_change_nothing(client, inspector, conn):
    existing_id = uuid.uuid4()
    existing = upsert(existing_id)
    assert (await push(client, inspector, [existing])).status_code == 200

    mutations = [upsert() for _ in range(998)]
    bad = upsert(location={"lat": 123, "lon": 112.3, "accuracy_m": 5})
    duplicate = upsert(existing_id)
    mutations.insert(500, bad)
    mutations.insert(700, duplicate)
    response = await push(client, inspector, mutations)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["mutation_id"] for r in results] == [m["mutation_id"] for m in mutations]
    statuses = [r["status"] for r in results]
    assert statuses.count("applied") == 998
    assert results[500]["status"] == "rejected"
    assert results[500]["error"]["field"] == "location.lat"
    assert results[700]["status"] == "duplicate" and results[700]["report_id"] == str(existing_id)
    assert await conn.fetchval("SELECT count(*) FROM reports") == 999

    before = await snapshot_tables(conn)
    replay = await push(client, inspector, mutations)
    assert replay.json()["results"] == results
    assert await snapshot_tables(conn) == before


async def test_a_batch_is_written_with_a_constant_number_of_statements(inspector, conn, clock):
    """Set-based: the statements a batch costs do not grow with its size."""
    actor = principal_of(inspector, "/140000/140400/140431/")

    async def statements_for(batch: int) -> int:
        seen: list[str] = []
        submissions = [
            to_submission(uuid.uuid4(), msgspec.convert(hazard_report(title=f"n{n}"), HazardReport))
            for n in range(batch)
        ]
        def log(record: Any) -> None:
            seen.append(record.query)

        conn.add_query_logger(log)
        try:
            async with transaction(conn):
                outcomes = await report_service.submit_reports(
                    conn, actor, submissions, now=clock.now(), clock_skew_s=600
                )
        finally:
            conn.remove_query_logger(log)
        assert {o.status for o in outcomes} == {"applied"}
        return len(seen)

    await statements_for(3)  # the first call also introspects array types; later calls do not
    small, large = await statements_for(3), await statements_for(1000)
    assert large == small, (small, large)


async def test_msgpack_and_json_give_identical_results(client, conn, clock):
    a = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    b = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    def batch(ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        items = [upsert(i, title=f"t{n}") for n, i in enumerate(ids)]
        items.append(upsert(ids[0], title="conflicting"))
        items.append({"mutation_id": str(uuid.uuid4()), "op": "add_comment", "report_id": str(ids[0]), "body": "x"})
        items.append({"op": "upsert_report"})
        return items

    json_results = (await push(client, a, batch([uuid.uuid4() for _ in range(5)]))).json()["results"]
    msgpack_response = await push(client, b, batch([uuid.uuid4() for _ in range(5)]), msgpack=True)
    assert msgpack_response.headers["content-type"].startswith("application/msgpack")
    msgpack_results = body_of(msgpack_response)["results"]
    strip = lambda rs: [{k: v for k, v in r.items() if k not in {"mutation_id", "report_id"}} for r in rs]  # noqa: E731
    assert strip(json_results) == strip(msgpack_results)
    assert [r["status"] for r in json_results] == ["applied"] * 5 + ["conflict", "applied", "rejected"]
    assert json_results[7]["error"]["field"] == "mutation_id"

    json_pull, _ = await pull_all(client, b)
    msgpack_pull, _ = await pull_all(client, b, msgpack=True)
    assert same_instants(json_pull) == same_instants(msgpack_pull) and len(json_pull) == 5


async def test_more_than_1000_mutations_is_413_and_applies_nothing(client, inspector, conn):
    response = await push(client, inspector, [upsert() for _ in range(1001)])
    assert response.status_code == 413
    assert problem(response)["code"] == "sync.too_many_mutations"
    assert await conn.fetchval("SELECT count(*) FROM reports") == 0


async def test_replayed_mutation_answers_its_first_result(client, inspector):
    first = upsert()
    applied = (await push(client, inspector, [first])).json()["results"][0]
    changed = dict(first, report=dict(first["report"], title="changed later"))
    replay = (await push(client, inspector, [changed])).json()["results"][0]
    assert replay == applied


async def test_same_report_twice_in_one_batch_is_applied_in_order(client, inspector):
    report_id = uuid.uuid4()
    create = upsert(report_id)
    revise = upsert(report_id, title="revised in the same batch")
    revise["base_version"] = 1
    results = (await push(client, inspector, [create, revise])).json()["results"]
    assert [(r["status"], r["version"]) for r in results] == [("applied", 1), ("applied", 2)]


async def test_bad_bodies_are_400_problems(client, inspector):
    for content in (b"not json", b'{"mutations": 5}', b"[]"):
        response = await client.post(
            "/v1/sync/push", content=content, headers={**inspector.headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, content
        problem(response)
    wrong_type = await client.post(
        "/v1/sync/push", content=b"x", headers={**inspector.headers, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    bad_cursor = await client.get("/v1/sync/pull", params={"cursor": "garbage!"}, headers=inspector.headers)
    assert bad_cursor.status_code == 400 and problem(bad_cursor)["field"] == "cursor"


async def test_pull_never_skips_a_transaction_that_commits_out_of_order(client, inspector, conn, database_url, clock):
    """Writer A takes its transaction id first but commits last; B commits in between while a
    reader pulls. A's report must arrive on the reader's next pull."""
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    _, cursor = await pull_all(client, supervisor)
    actor = principal_of(inspector, "/140000/140400/140431/")
    slow_id, fast_id = uuid.uuid4(), uuid.uuid4()

    writer_a = await connect(database_url)
    try:
        tx = writer_a.transaction()
        await tx.start()
        await writer_a.fetchval("SELECT pg_current_xact_id()")  # A holds the older transaction id
        submission = to_submission(slow_id, msgspec.convert(hazard_report(title="slow writer"), HazardReport))
        await report_service.submit_reports(writer_a, actor, [submission], now=clock.now(), clock_skew_s=600)

        fast = await client.put(f"/v1/reports/{fast_id}", json=hazard_report(title="fast writer"),
                                headers=inspector.headers)
        assert fast.status_code == 201
        seen, cursor = await pull_all(client, supervisor, cursor)
        assert [c["id"] for c in seen] == [str(fast_id)]
        await tx.commit()
    finally:
        await writer_a.close()

    later, cursor = await pull_all(client, supervisor, cursor)
    assert [c["id"] for c in later] == [str(slow_id)]
    assert (await pull_all(client, supervisor, cursor))[0] == []


async def test_incremental_pulls_equal_a_fresh_full_listing(client, conn, clock):
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    here = [await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now()) for _ in range(2)]
    there = await make_user(conn, role="inspector", jurisdiction="140403", now=clock.now())
    view: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    foreign_ids: set[str] = set()
    ids: list[tuple[Actor, uuid.UUID]] = []
    for step in range(40):
        author = here[step % 2]
        if step % 5 == 4 and ids:
            owner, report_id = ids[step % len(ids)]
            current = (await client.get(f"/v1/reports/{report_id}", headers=owner.headers)).json()
            await client.put(f"/v1/reports/{report_id}", headers=owner.headers,
                             json=hazard_report(title=f"rev {step}", base_version=current["version"]))
        elif step % 7 == 6:
            report_id = uuid.uuid4()
            await client.put(f"/v1/reports/{report_id}", json=hazard_report(jurisdiction="140403"),
                             headers=there.headers)
            foreign_ids.add(str(report_id))
        else:
            report_id = uuid.uuid4()
            await client.put(f"/v1/reports/{report_id}", json=hazard_report(title=f"new {step}"),
                             headers=author.headers)
            ids.append((author, report_id))
        if step % 3 == 0:
            changes, cursor = await pull_all(client, supervisor, cursor, limit=4)
            for change in changes:
                view[change["id"]] = change
    await settled(conn)  # near-duplicate detection re-stamps what it pairs, a moment after each PUT
    changes, cursor = await pull_all(client, supervisor, cursor, limit=4)
    for change in changes:
        view[change["id"]] = change
    fresh, _ = await pull_all(client, supervisor)
    assert view == {c["id"]: c for c in fresh}
    assert not foreign_ids & set(view)

    own_view, _ = await pull_all(client, here[0])
    assert {c["author"]["username"] for c in own_view} == {here[0].username}


async def test_a_report_moved_to_another_county_is_a_tombstone_for_the_old_one(client, inspector, conn, clock):
    city_inspector = await make_user(conn, role="inspector", jurisdiction="140400", now=clock.now())
    county_supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    report_id = uuid.uuid4()
    await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=city_inspector.headers)
    first, cursor = await pull_all(client, county_supervisor)
    assert [c["id"] for c in first] == [str(report_id)]
    moved = await client.put(f"/v1/reports/{report_id}", headers=city_inspector.headers,
                             json=hazard_report(jurisdiction="140403", base_version=1))
    assert moved.status_code == 200
    after, _ = await pull_all(client, county_supervisor, cursor)
    assert after == [{"id": str(report_id), "deleted": True}]


async def test_a_replay_sent_while_the_first_push_is_uncommitted_answers_the_first_results(
    inspector, conn, database_url, clock
):
    """A device that times out sends its queue again while the first push is still running; the
    second answer must be the first one, not 'duplicate' (the spec: a replayed mutation_id answers
    its first result)."""
    actor = principal_of(inspector, "/140000/140400/140431/")
    mutations = [upsert() for _ in range(20)]
    first_conn, second_conn = await connect(database_url), await connect(database_url)
    try:
        first = first_conn.transaction()
        await first.start()
        answered = await sync_service.push(first_conn, actor, decode_push(msgspec.json.encode(
            {"mutations": mutations}), "application/json"), now=clock.now(), clock_skew_s=600)

        async def replay() -> list[dict[str, Any]]:
            async with transaction(second_conn):
                return await sync_service.push(second_conn, actor, decode_push(msgspec.json.encode(
                    {"mutations": mutations[::-1]}), "application/json"), now=clock.now(), clock_skew_s=600)

        replaying = asyncio.create_task(replay())
        pid = second_conn.get_server_pid()
        for _ in range(500):
            if await conn.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid) == "Lock":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the replay never waited for the first push")
        await first.commit()
        replayed = await replaying
    finally:
        await first_conn.close()
        await second_conn.close()
    assert [r["status"] for r in answered] == ["applied"] * 20
    assert replayed[::-1] == answered


async def test_concurrent_pushes_of_one_queue_in_two_orders_do_not_deadlock(client, inspector, conn):
    """Two sends of one queue in flight at once, the second reordered: inserting the same new ids
    in opposite orders deadlocked (one send failed and had to be sent a third time); now the second
    waits for the first and both answer the first results."""
    mutations = [upsert() for _ in range(300)]
    forward, backward = await asyncio.gather(
        push(client, inspector, mutations), push(client, inspector, mutations[::-1])
    )
    assert (forward.status_code, backward.status_code) == (200, 200), (forward.text[:200], backward.text[:200])
    assert backward.json()["results"][::-1] == forward.json()["results"]
    assert await conn.fetchval("SELECT count(*) FROM reports") == 300


async def test_pushed_reports_get_their_duplicate_candidates_in_the_background(client, inspector, conn, clock):
    """A bulk push queues duplicate detection instead of doing it inline; the worker finds the
    pair and re-stamps the rows, so the next pull carries the candidates."""
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    first = upsert(title="主斜井皮带机保护装置失效", description="煤矿主斜井皮带机跑偏保护失效")
    second = upsert(title="主斜井皮带机保护装置失效", description="煤矿主斜井皮带机跑偏保护失效")
    results = (await push(client, inspector, [first, second])).json()["results"]
    assert [r["status"] for r in results] == ["applied", "applied"]
    ids = {first["report"]["id"], second["report"]["id"]}
    for _ in range(100):
        if await conn.fetchval("SELECT count(*) FROM jobs WHERE kind = 'duplicates'") == 0:
            break
        await asyncio.sleep(0.05)
    changes, _ = await pull_all(client, supervisor)
    by_id = {c["id"]: c for c in changes}
    assert {str(x) for x in by_id[first["report"]["id"]]["possible_duplicates"]} == ids - {first["report"]["id"]}


async def test_a_photo_arriving_later_puts_its_report_back_on_the_feed(client, inspector, conn, clock):
    from tests import images

    supervisor = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    photo = images.jpeg(seed=77)
    sha = images.sha256(photo)
    mutation = upsert(media=[{"sha256": sha, "role": "photo"}])
    assert (await push(client, inspector, [mutation])).json()["results"][0]["missing_media"] == [sha]
    first, cursor = await pull_all(client, supervisor)
    assert first[0]["missing_media"] == [sha]
    uploaded = await client.put(
        f"/v1/media/{sha}", content=photo, headers={**inspector.headers, "Content-Type": "image/jpeg"}
    )
    assert uploaded.status_code == 201
    later, _ = await pull_all(client, supervisor, cursor)
    assert [(c["id"], c["missing_media"]) for c in later] == [(mutation["report"]["id"], [])]


async def test_a_deadlock_answers_409_request_retry_changes_nothing_and_the_retry_applies(
    client, inspector, conn, database_url
):
    """A real deadlock: another session holds the report's row and then asks for the user's push
    lock, which the push holds while it waits for that row. PostgreSQL aborts the push; the
    device gets 409 ``request.retry`` with Retry-After, nothing of the push is kept, and sending
    it again applies it."""
    report_id = uuid.uuid4()
    assert (await push(client, inspector, [upsert(report_id, title="原标题")])).status_code == 200
    revision = upsert(report_id, title="修改后的标题")
    revision["base_version"] = 1
    rival = await connect(database_url)
    try:
        held = rival.transaction()
        await held.start()
        await rival.execute("SELECT 1 FROM reports WHERE id = $1 FOR UPDATE", report_id)
        request = asyncio.create_task(push(client, inspector, [revision]))
        for _ in range(1000):
            if await conn.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1""",
                rival.get_server_pid(),
            ):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the push never waited for the report's row")
        closing = asyncio.create_task(rival.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('fieldsync.sync_push:' || $1::uuid::text, 0))",
            inspector.user_id,
        ))
        response = await asyncio.wait_for(request, timeout=30)
        await asyncio.wait_for(closing, timeout=30)
        await held.rollback()
    finally:
        await rival.close()

    assert response.status_code == 409, response.text
    assert problem(response)["code"] == "request.retry"
    assert response.headers["Retry-After"] == "1"
    assert await conn.fetchval("SELECT title FROM reports WHERE id = $1", report_id) == "原标题"
    again = await push(client, inspector, [revision])
    assert again.status_code == 200 and again.json()["results"][0]["status"] == "applied", again.text
    assert await conn.fetchval("SELECT title FROM reports WHERE id = $1", report_id) == "修改后的标题"
