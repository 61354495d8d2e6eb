"""Disaster report chains: all reports sharing an ``incident_id``, their stages, and the
deadline of the initial report (初报, due two hours after the disaster was observed)."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from fieldsync import errors
from fieldsync.db import reports as q
from fieldsync.domain.principals import Principal
from fieldsync.domain.views import DeadlineView, IncidentView
from fieldsync.services import views

INITIAL_DUE = dt.timedelta(hours=2)


async def get_chain(
    conn: asyncpg.Connection, actor: Principal, incident_id: uuid.UUID, *, now: dt.datetime
) -> IncidentView:
    """The chain as the caller may see it; ``incident.not_found`` when it sees none of it."""
    reports = await views.read_reports(conn, actor, await q.incident_report_ids(conn, incident_id), now=now)
    if not reports:
        raise errors.IncidentNotFound()
    counted = [r for r in reports if r.status != "merged"]
    stages: dict[str, int] = {"initial": 0, "update": 0, "final": 0}
    for report in counted:
        stages[report.content["stage"]] += 1
    observed = min(dt.datetime.fromisoformat(r.content["observed_at"]) for r in reports)
    met_at = min((r.received_at for r in counted if r.content["stage"] == "initial"), default=None)
    due_at = observed + INITIAL_DUE
    missed = (met_at is None and now > due_at) or (met_at is not None and met_at > due_at)
    return IncidentView(
        incident_id=incident_id,
        category=reports[0].content.get("category"),
        reports=tuple(reports),
        stages=stages,
        deadlines=(DeadlineView(stage="initial", due_at=due_at, met_at=met_at, missed=missed),),
        missed=("initial",) if missed else (),
    )
