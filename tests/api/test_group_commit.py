"""Group commit of single-report PUTs (services.ingest): concurrent PUTs share transactions, yet
each gets its own outcome and its own error; one bad report never fails its neighbours; a lone
PUT waits for nobody; a batch that cannot commit fails every member as each would have failed."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from fieldsync import errors
from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import ReportWrite
from fieldsync.db.pool import create_pool
from fieldsync.domain.reports import ReportSubmission
from fieldsync.services import reports
from fieldsync.services.ingest import GroupCommit
from tests.support import Actor, disaster_report, hazard_report, make_user, principal_of, problem


@pytest.fixture
async def inspectors(conn, clock) -> list[Actor]:
    return [await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now()) for _ in range(8)]


async def test_concurrent_puts_share_transactions_and_each_gets_its_own_receipt(app, client, conn, inspectors):
    ingest = app.state.runtime.ingest
    before = ingest.committed_batches
    ids = [uuid.uuid4() for _ in range(24)]
    answers = await asyncio.gather(*(
        client.put(f"/v1/reports/{report_id}", json=hazard_report(title=f"第{n}号隐患"),
                   headers=inspectors[n % 8].headers)
        for n, report_id in enumerate(ids)
    ))

    assert [a.status_code for a in answers] == [201] * 24, [a.text for a in answers if a.status_code != 201]
    assert [a.json()["id"] for a in answers] == [str(i) for i in ids]
    batches = ingest.committed_batches - before
    assert 1 <= batches < 24, "concurrent PUTs were committed one transaction each"
    rows = await conn.fetch("SELECT id, author_id, title FROM reports WHERE id = ANY($1::uuid[])", ids)
    authors = {row["id"]: row["author_id"] for row in rows}
    assert {report_id: authors[report_id] for report_id in ids} == {
        report_id: inspectors[n % 8].user_id for n, report_id in enumerate(ids)
    }, "each report keeps its own author in a shared transaction"
    assert await conn.fetchval(
        "SELECT count(DISTINCT actor_id) FROM events WHERE report_id = ANY($1::uuid[]) AND action = 'created'", ids
    ) == 8


async def test_one_bad_report_never_fails_its_neighbours(client, conn, inspectors):
    """Concurrently: valid reports, one that fails validation, two initial reports of one incident
    (the database refuses the second), and the same new report sent twice by one device."""
    await conn.execute(  # a subscriber: each accepted report must reach the outbox exactly once
        "INSERT INTO webhook_subscriptions (id, url, events, secret, created_at) "
        "VALUES (gen_random_uuid(), 'http://127.0.0.1:9/hook', ARRAY['report.created'], 'x', now())"
    )
    incident = str(uuid.uuid4())
    twice = uuid.uuid4()
    calls = [
        *(client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(), headers=inspectors[n].headers)
          for n in range(6)),
        client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(category="flood"), headers=inspectors[6].headers),
        *(client.put(f"/v1/reports/{uuid.uuid4()}", json=disaster_report(incident_id=incident),
                     headers=inspectors[7].headers) for _ in range(2)),
        *(client.put(f"/v1/reports/{twice}", json=hazard_report(title="重复发送"), headers=inspectors[0].headers)
          for _ in range(2)),
    ]
    answers = await asyncio.gather(*calls)

    assert [a.status_code for a in answers[:6]] == [201] * 6
    assert (answers[6].status_code, problem(answers[6])["field"]) == (400, "category")
    assert sorted(a.status_code for a in answers[7:9]) == [201, 409]
    refused = next(a for a in answers[7:9] if a.status_code == 409)
    assert problem(refused)["code"] == "incident.stage_taken"
    assert sorted((a.status_code, a.json()["duplicate"]) for a in answers[9:]) == [(200, True), (201, False)]
    assert await conn.fetchval("SELECT count(*) FROM reports WHERE incident_id = $1", uuid.UUID(incident)) == 1
    assert await conn.fetchval("SELECT count(*) FROM report_versions WHERE report_id = $1", twice) == 1
    # the batch that met the refusal ran again in savepoints: what its first try wrote is gone
    accepted = sorted(a.json()["id"] for a in answers if a.status_code == 201)
    outbox = await conn.fetch("SELECT report_id::text AS id FROM webhook_events WHERE type = 'report.created'")
    assert sorted(row["id"] for row in outbox) == accepted


async def test_a_batch_stuck_on_a_row_lock_stalls_no_other_put(client, conn, inspectors):
    """A revision waits for a row lock another transaction holds; new reports arrive meanwhile and
    are committed by the batches that start beside the stuck one."""
    report_id = uuid.uuid4()
    assert (await client.put(f"/v1/reports/{report_id}", json=hazard_report(),
                             headers=inspectors[0].headers)).status_code == 201
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM reports WHERE id = $1 FOR UPDATE", report_id)
        stuck = asyncio.create_task(client.put(f"/v1/reports/{report_id}", json=hazard_report(
            title="整改前补充说明", base_version=1), headers=inspectors[0].headers))
        await asyncio.sleep(0.1)
        others = await asyncio.wait_for(asyncio.gather(*(
            client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(), headers=inspectors[n].headers)
            for n in range(1, 8)
        )), timeout=30)
        assert [a.status_code for a in others] == [201] * 7
        assert not stuck.done(), "the revision did not wait for the lock: the test shows nothing"
    answer = await asyncio.wait_for(stuck, timeout=30)
    assert (answer.status_code, answer.json()["version"]) == (200, 2)


async def test_a_lone_put_is_its_own_batch_and_waits_for_no_one(app, client, inspectors):
    ingest = app.state.runtime.ingest
    before = ingest.committed_batches
    for n in range(5):
        answer = await client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(), headers=inspectors[n].headers)
        assert answer.status_code == 201
    assert ingest.committed_batches - before == 5


def submission(title: str) -> ReportSubmission:
    return to_submission(uuid.uuid4(), msgspec.convert(hazard_report(title=title), ReportWrite))


async def test_a_batch_that_cannot_commit_fails_every_member_and_nothing_is_kept(
    database_url, conn, clock, inspectors
):
    actor = principal_of(inspectors[0], "/140000/140400/140431/")
    pool = await create_pool(database_url, min_size=1, max_size=1)
    await pool.close()
    ingest = GroupCommit(pool, clock, clock_skew_s=600)
    items = [submission(f"断线{n}") for n in range(3)]

    results = await asyncio.gather(*(ingest.submit(reports.Submission(actor, item)) for item in items),
                                   return_exceptions=True)

    assert all(isinstance(result, errors.DependencyUnavailable) for result in results), results
    assert await conn.fetchval("SELECT count(*) FROM reports WHERE id = ANY($1::uuid[])", [i.id for i in items]) == 0


async def test_a_put_whose_client_gave_up_before_its_batch_started_is_left_out(database_url, conn, clock, inspectors):
    actor = principal_of(inspectors[0], "/140000/140400/140431/")
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        ingest = GroupCommit(pool, clock, clock_skew_s=600, max_in_flight=1)
        first, abandoned, last = (submission(t) for t in ("先到", "放弃", "后到"))
        tasks = [asyncio.create_task(ingest.submit(reports.Submission(actor, item)))
                 for item in (first, abandoned, last)]
        await asyncio.sleep(0)  # all three queued; the first batch (just the first) is in flight
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await pool.close()

    assert isinstance(done[1], asyncio.CancelledError)
    assert [done[0].status, done[2].status] == ["applied", "applied"], (done[0], done[2])  # type: ignore[union-attr]
    kept = {row["id"] for row in await conn.fetch("SELECT id FROM reports WHERE id = ANY($1::uuid[])",
                                                  [first.id, abandoned.id, last.id])}
    assert kept == {first.id, last.id}
    assert ingest.committed_batches == 2
