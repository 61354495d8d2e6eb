"""The outbox's writers: what each change to a report tells subscribed systems (SPEC §9).

The services that change reports call this module inside their transaction, after the change
itself: ``reports_created`` and ``reports_revised`` (``services.reports.submit_reports``, so PUT,
push and OpenRosa alike) and ``transition_applied`` (``services.workflow``). The rows they write
commit or roll back with the change. ``check_deadlines`` runs periodically (the delivery worker
calls it) and writes the two events no request causes; their unique ``dedupe_key`` makes each
happen exactly once, however many replicas check at once.

    change                                   events
    new report                               report.created (+ incident.report_added with an incident_id)
    revision by its author                   report.updated (+ report.status_changed needs_info → submitted)
    workflow action that moves the status    report.status_changed {from_status, to_status, action}
    merge                                    report.status_changed and report.merged {into}
    workflow action that keeps the status    report.updated {action} (list_supervision)
    rectification deadline passes            hazard.overdue {deadline, listed_level}
    initial report (初报) late or missing    incident.deadline_missed {deadline_stage, due_at, met_at}

Every event's ``data`` carries the report's summary as it stands after the change (id, kind,
category, title, jurisdiction, status, version, severity, grade, incident and stage, observed_at,
updated_at, location) plus the fields named above.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

import asyncpg

from fieldsync.db import webhooks as q
from fieldsync.domain.reports import ReportSubmission
from fieldsync.domain.webhooks import rfc3339
from fieldsync.services.incidents import INITIAL_DUE

DEADLINE_LOOKBACK = dt.timedelta(days=30)
DEADLINE_BATCH = 500


async def reports_created(conn: asyncpg.Connection, created: Sequence[ReportSubmission], *, now: dt.datetime) -> None:
    """Events for reports just created (their version 1)."""
    events: list[q.NewEvent] = []
    for report in created:
        events.append(q.NewEvent("report.created", report.id, now))
        if report.incident_id is not None:
            events.append(q.NewEvent("incident.report_added", report.id, now))
    await q.emit(conn, events, now=now)


async def reports_revised(
    conn: asyncpg.Connection, revised: Sequence[tuple[ReportSubmission, str]], *, now: dt.datetime
) -> None:
    """Events for reports their authors just revised, each with its status before the revision."""
    events: list[q.NewEvent] = []
    for report, before in revised:
        events.append(q.NewEvent("report.updated", report.id, now))
        if before != "submitted":
            extra = {"from_status": before, "to_status": "submitted", "action": "resubmit"}
            events.append(q.NewEvent("report.status_changed", report.id, now, extra))
    await q.emit(conn, events, now=now)


async def transition_applied(
    conn: asyncpg.Connection,
    report_id: uuid.UUID,
    *,
    action: str,
    from_status: str,
    to_status: str,
    into: uuid.UUID | None,
    now: dt.datetime,
) -> None:
    """Events for one workflow action just applied to ``report_id``."""
    if from_status == to_status:
        events = [q.NewEvent("report.updated", report_id, now, {"action": action})]
    else:
        extra = {"from_status": from_status, "to_status": to_status, "action": action}
        events = [q.NewEvent("report.status_changed", report_id, now, extra)]
    if action == "merge" and into is not None:
        events.append(q.NewEvent("report.merged", report_id, now, {"into": str(into)}))
    await q.emit(conn, events, now=now)


async def check_deadlines(conn: asyncpg.Connection, *, now: dt.datetime) -> int:
    """Write the hazard.overdue and incident.deadline_missed events that are due and not yet
    written (each at most once); returns how many were new. Runs inside the caller's transaction."""
    events: list[q.NewEvent] = []
    for row in await q.overdue_hazards(conn, now=now, limit=DEADLINE_BATCH):
        extra = {"deadline": rfc3339(row["deadline"]), "listed_level": row["listed_level"]}
        events.append(q.NewEvent("hazard.overdue", row["id"], row["deadline"], extra, row["dedupe_key"]))
    missed = await q.missed_initial_reports(
        conn, now=now, due=INITIAL_DUE, lookback=DEADLINE_LOOKBACK, limit=DEADLINE_BATCH
    )
    for row in missed:
        extra = {
            "deadline_stage": "initial", "due_at": rfc3339(row["due_at"]),
            "met_at": rfc3339(row["met_at"]) if row["met_at"] else None,
        }
        events.append(q.NewEvent("incident.deadline_missed", row["subject"], row["due_at"], extra, row["dedupe_key"]))
    if not events:
        return 0
    await q.emit(conn, events, now=now)
    return len(events)
