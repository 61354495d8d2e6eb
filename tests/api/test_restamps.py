"""Restamps a near-duplicate search causes for reports it did not search for (services.feed,
decisions/0018): gathered into one job per report while queued, run after the searches unless
overdue, in batches that never wait for a holder.

The app here runs no background worker, so each test decides when searches and restamps run."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest

from fieldsync.app import create_app
from fieldsync.db import jobs
from fieldsync.db.pool import connect, create_pool
from fieldsync.services import duplicates, feed
from tests.api.test_sync import pull_all
from tests.support import Actor, hazard_report, make_device, make_user, principal_of

QINYUAN = "140431"


@pytest.fixture
def app(settings, clock):
    return create_app(dataclasses.replace(settings, derivative_workers=0), clock=clock)


@pytest.fixture
async def pool(database_url) -> AsyncIterator:
    made = await create_pool(database_url, min_size=1, max_size=3)
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def people(conn, clock) -> dict[str, Actor]:
    now = clock.now()
    admin = await make_user(conn, role="admin", jurisdiction="140000", now=now)
    issuer = principal_of(admin, "/14/1404/")
    return {
        "phone_a": await make_device(conn, await make_user(conn, role="inspector", jurisdiction=QINYUAN, now=now),
                                     issuer, now=now),
        "phone_b": await make_device(conn, await make_user(conn, role="inspector", jurisdiction=QINYUAN, now=now),
                                     issuer, now=now),
        "county": await make_user(conn, role="supervisor", jurisdiction=QINYUAN, now=now),
    }


async def put(client, actor: Actor, body) -> str:
    report_id = str(uuid.uuid4())
    response = await client.put(f"/v1/reports/{report_id}", json=body, headers=actor.headers)
    assert response.status_code == 201, response.text
    return report_id


async def stamp_of(conn, report_id: str) -> int:
    return int(await conn.fetchval("SELECT change_xid::text FROM reports WHERE id = $1", uuid.UUID(report_id)))


async def restamp_jobs(conn) -> list[tuple[str, dt.datetime, int]]:
    rows = await conn.fetch("SELECT key, run_after, attempts FROM jobs WHERE kind = $1", feed.RESTAMP_JOB)
    return sorted((row["key"], row["run_after"], row["attempts"]) for row in rows)


async def test_a_report_several_searches_pair_with_is_stamped_once_when_the_restamps_run(
    client, people, conn, clock, pool
):
    """Three new reports of one hazard, each searched in its own transaction, each pair with X: X is
    not rewritten as each search commits; it has one queued restamp (due when the first search
    asked), and one run stamps it, after which the pull carries X with all three candidates."""
    x = await put(client, people["phone_a"], hazard_report(observed_at="2026-06-01T15:00:00+08:00"))
    async with conn.transaction():
        await duplicates.detect_queued(conn, now=clock.now())
    before = await stamp_of(conn, x)
    _, cursor = await pull_all(client, people["county"])
    others = []
    for minute in (10, 20, 30):
        others.append(await put(client, people["phone_b"],
                                hazard_report(observed_at=f"2026-06-01T15:{minute}:00+08:00")))
        async with conn.transaction():
            assert await duplicates.detect_queued(conn, now=clock.now())
        clock.advance(seconds=0.1)

    asked = {x: 0.0, others[0]: 0.1, others[1]: 0.2}  # when a search first paired with each, in s
    start = clock.now() - dt.timedelta(seconds=0.3)
    assert await stamp_of(conn, x) == before, "X was rewritten by a search that did not search for it"
    assert await restamp_jobs(conn) == sorted((r, start + dt.timedelta(seconds=s), 0) for r, s in asked.items())
    assert await feed.run_restamp_jobs(pool, clock)

    assert await stamp_of(conn, x) > before
    assert await restamp_jobs(conn) == []
    changes, _ = await pull_all(client, people["county"], cursor)
    assert {c["id"]: set(c["possible_duplicates"]) for c in changes}[x] == set(others)


async def test_an_overdue_restamp_runs_before_fresher_work_and_a_fresh_one_waits(client, people, conn, clock, pool):
    """The worker tries ``run_restamp_jobs(waited_s=OVERDUE_S)`` first: under a sustained burst of
    searches, a restamp queued ``OVERDUE_S`` ago runs anyway; a fresher one waits for the burst."""
    x = await put(client, people["phone_a"], hazard_report())
    await jobs.enqueue(conn, kind=feed.RESTAMP_JOB, keys=[x], now=clock.now())
    before = await stamp_of(conn, x)

    assert not await feed.run_restamp_jobs(pool, clock, waited_s=feed.OVERDUE_S)
    clock.advance(seconds=feed.OVERDUE_S)
    assert await feed.run_restamp_jobs(pool, clock, waited_s=feed.OVERDUE_S)
    assert await stamp_of(conn, x) > before and await restamp_jobs(conn) == []


async def test_the_restamp_runner_puts_off_a_held_report_without_waiting_and_ignores_key_share_locks(
    client, people, conn, clock, pool, database_url
):
    """A report locked for update by another transaction is tried again ``HELD_RETRY_S`` later (the
    runner never waits, so it cannot deadlock with the holder); a transaction that merely inserts a
    row referencing the report (a key-share lock) does not hold it."""
    x = await put(client, people["phone_a"], hazard_report())
    y = await put(client, people["phone_b"], hazard_report(category="gas", title="燃气管道阀门锈蚀"))
    stamps = {r: await stamp_of(conn, r) for r in (x, y)}
    await jobs.enqueue(conn, kind=feed.RESTAMP_JOB, keys=[x, y], now=clock.now())
    updating, sharing = await connect(database_url), await connect(database_url)
    try:
        async with updating.transaction(), sharing.transaction():
            await updating.execute("SELECT 1 FROM reports WHERE id = $1 FOR UPDATE", uuid.UUID(x))
            await sharing.execute("SELECT 1 FROM reports WHERE id = $1 FOR KEY SHARE", uuid.UUID(y))
            assert await asyncio.wait_for(feed.run_restamp_jobs(pool, clock), timeout=10)
            assert await stamp_of(conn, y) > stamps[y], "a key-share lock kept the report off the feed"
            assert await restamp_jobs(conn) == [(x, clock.now() + dt.timedelta(seconds=feed.HELD_RETRY_S), 0)]
        clock.advance(seconds=feed.HELD_RETRY_S)
        assert await feed.run_restamp_jobs(pool, clock)
        assert await stamp_of(conn, x) > stamps[x] and await restamp_jobs(conn) == []
    finally:
        await updating.close()
        await sharing.close()


async def test_a_search_never_waits_for_a_report_a_revision_holds(client, people, conn, clock, pool, database_url):
    """A revision (or a review transition) of Y locks Y's row for update and, at its end, queues Y's
    search again; meanwhile the worker runs Y's queued search, which stores the pair Y–X. Storing a
    pair takes no lock on either report (decisions/0024): with foreign keys it took a key-share
    lock on Y, waited for the revision, which waited for the search's claim on Y's job: a deadlock,
    and one of the two rolled back after a second."""
    x = await put(client, people["phone_a"], hazard_report(observed_at="2026-06-01T15:00:00+08:00"))
    y = await put(client, people["phone_b"], hazard_report(observed_at="2026-06-01T15:20:00+08:00"))
    async with conn.transaction():
        await duplicates.detect_queued(conn, now=clock.now())
        await conn.execute("DELETE FROM report_duplicates")
        await duplicates.detect_later(conn, [uuid.UUID(y)], now=clock.now())
    revising, searching = await connect(database_url), await connect(database_url)
    try:
        async with revising.transaction():
            await revising.execute("SELECT 1 FROM reports WHERE id = $1 FOR UPDATE", uuid.UUID(y))

            async def search() -> int:
                async with searching.transaction():
                    return await duplicates.detect_queued(searching, now=clock.now())

            running = asyncio.create_task(search())
            await asyncio.wait({running}, timeout=3)
            await asyncio.wait_for(duplicates.detect_later(revising, [uuid.UUID(y)], now=clock.now()), timeout=10)
        assert await asyncio.wait_for(running, timeout=10) == 1
    finally:
        await revising.close()
        await searching.close()

    pairs = await conn.fetch("SELECT report_id, candidate_id FROM report_duplicates")
    assert {(str(p["report_id"]), str(p["candidate_id"])) for p in pairs} == {(y, x)}
