"""Hypothesis over random action sequences: a report never reaches a state outside the diagram,
every accepted action moves it exactly as the table says, and its version only ever increases."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldsync import errors
from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import ReportWrite
from fieldsync.db.pool import connect
from fieldsync.db.transactions import transaction
from fieldsync.domain import workflow as rules
from fieldsync.domain.reports import MediaReference
from fieldsync.services import reports, workflow
from tests.support import disaster_report, hazard_report, make_user, principal_of

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
DIAGRAM = {"submitted", "needs_info", "verified", "rejected", "merged", "rectifying", "rectified", "closed"}
AFTER = MediaReference("a" * 64, "after", None)

steps = st.lists(
    st.tuples(
        st.sampled_from(rules.ACTIONS),
        st.sampled_from(["county", "city", "inspector"]),
        st.sampled_from(["current", "stale"]),
    ),
    min_size=1,
    max_size=12,
)


async def _run(database_url: str, kind: str, grade: str, sequence: list[tuple[str, str, str]]) -> None:
    conn = await connect(database_url)
    try:
        people = {
            "inspector": await make_user(conn, role="inspector", jurisdiction="140431", now=NOW),
            "county": await make_user(conn, role="supervisor", jurisdiction="140431", now=NOW),
            "city": await make_user(conn, role="supervisor", jurisdiction="140400", now=NOW),
        }
        paths = {"inspector": "/140000/140400/140431/", "county": "/140000/140400/140431/", "city": "/140000/140400/"}
        actors = {name: principal_of(actor, paths[name]) for name, actor in people.items()}
        body = hazard_report(grade=grade) if kind == "hazard" else disaster_report(incident_id=str(uuid.uuid4()))
        survivor_body = dict(body, title="survivor", **({"incident_id": str(uuid.uuid4())} if kind != "hazard" else {}))
        ids = []
        for content in (body, survivor_body):
            report_id = uuid.uuid4()
            async with transaction(conn):
                await reports.submit_report(
                    conn, actors["inspector"], to_submission(report_id, msgspec.convert(content, ReportWrite)),
                    now=NOW, clock_skew_s=600,
                )
            ids.append(report_id)
        report_id, survivor = ids

        for action, who, version_choice in sequence:
            before = await conn.fetchrow("SELECT status, version FROM reports WHERE id = $1", report_id)
            version = before["version"] if version_choice == "current" else max(before["version"] - 1, 1)
            request = workflow.TransitionRequest(
                action=action, version=version, into=survivor, responsible_person="张三", measures="整改",
                funds_cny=1000.0, deadline=NOW + dt.timedelta(days=10), contingency_plan="预案", level="140400",
                media=(AFTER,),
            )
            try:
                async with transaction(conn):
                    await workflow.apply_transition(conn, actors[who], report_id, request, now=NOW)
                accepted = True
            except errors.FieldsyncError:
                accepted = False
            after = await conn.fetchrow("SELECT status, version FROM reports WHERE id = $1", report_id)
            assert after["status"] in DIAGRAM
            assert after["version"] >= before["version"]
            if accepted:
                move = rules.find_move(action, kind=kind, status=before["status"], role=actors[who].role)
                assert after["status"] == (move.target or before["status"])
                assert after["version"] == before["version"] + 1
                assert version == before["version"]
            else:
                assert after == before
    finally:
        await conn.close()


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["hazard", "disaster"]), grade=st.sampled_from(["general", "major"]), sequence=steps)
def test_random_action_sequences_stay_in_the_diagram(database_url: str, kind: str, grade: str, sequence) -> None:
    asyncio.run(_run(database_url, kind, grade, sequence))
