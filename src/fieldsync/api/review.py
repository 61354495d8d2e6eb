"""Review endpoints for supervisors: workflow transitions, comments, the audit trail of a report,
and a disaster's report chain."""

from __future__ import annotations

import datetime as dt
import uuid

from litestar import Controller, get, post

from fieldsync.api.deps import Connection
from fieldsync.api.problems import problem_responses
from fieldsync.api.reports import event_read, person, report_read
from fieldsync.api.schemas.reports import (
    CommentCreate,
    CommentRead,
    DuplicateRead,
    EventRead,
    IncidentDeadline,
    IncidentRead,
    ReportRead,
    TransitionCreate,
)
from fieldsync.db.transactions import snapshot, transaction
from fieldsync.domain.principals import Principal
from fieldsync.domain.reports import MediaReference
from fieldsync.domain.views import CandidateView, CommentView, IncidentView
from fieldsync.services import duplicates, incidents, views, workflow

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def to_request(data: TransitionCreate) -> workflow.TransitionRequest:
    return workflow.TransitionRequest(
        action=data.action, version=data.version, note=data.note, into=data.into,
        responsible_person=data.responsible_person, measures=data.measures, funds_cny=data.funds_cny,
        deadline=data.deadline, contingency_plan=data.contingency_plan, level=data.level,
        media=tuple(MediaReference(m.sha256, m.role, m.caption) for m in data.media),
    )


def comment_read(view: CommentView) -> CommentRead:
    return CommentRead(
        id=view.id, report_id=view.report_id, author=person(view.author), device_id=view.device_id, body=view.body,
        created_at=view.created_at,
    )


def candidate_read(view: CandidateView) -> DuplicateRead:
    return DuplicateRead(
        id=view.id, score=view.score, reasons=[dict(reason) for reason in view.reasons], kind=view.kind,
        category=view.category, title=view.title, status=view.status, observed_at=view.observed_at,
        found_at=view.found_at,
    )


def incident_read(view: IncidentView) -> IncidentRead:
    return IncidentRead(
        incident_id=view.incident_id, category=view.category, reports=[report_read(r) for r in view.reports],
        stages=dict(view.stages),
        deadlines=[IncidentDeadline(stage="initial", due_at=d.due_at, met_at=d.met_at, missed=d.missed)
                   for d in view.deadlines],
        missed=list(view.missed),
    )


class ReviewController(Controller):
    path = "/v1/reports"
    tags = ["review"]
    security = SECURITY

    @post(
        "/{report_id:uuid}/transitions",
        status_code=200,
        summary="Apply a workflow action at the given version; answers the updated report",
        responses=problem_responses(400, 401, 403, 404, 409, 422),
    )
    async def transition(
        self, report_id: uuid.UUID, data: TransitionCreate, principal: Principal, conn: Connection,
        now: dt.datetime,
    ) -> ReportRead:
        async with transaction(conn):
            await workflow.apply_transition(conn, principal, report_id, to_request(data), now=now)
        return report_read(await views.get_report(conn, principal, report_id, now=now))

    @get(
        "/{report_id:uuid}/comments",
        summary="Comments on a report, and on the reports merged into it",
        responses=problem_responses(400, 401, 404),
    )
    async def list_comments(
        self, report_id: uuid.UUID, principal: Principal, conn: Connection
    ) -> list[CommentRead]:
        async with snapshot(conn):
            return [comment_read(c) for c in await views.report_comments(conn, principal, report_id)]

    @get(
        "/{report_id:uuid}/duplicates",
        summary="Near-duplicate candidates of a report, best first, with score and reasons",
        description=(
            "Candidates found when the report or one of its photos arrived, at or above the detection "
            "threshold, that the caller may see. Nothing is merged automatically: merge with the "
            "`merge` transition."
        ),
        responses=problem_responses(400, 401, 404),
    )
    async def duplicates(
        self, report_id: uuid.UUID, principal: Principal, conn: Connection
    ) -> list[DuplicateRead]:
        async with snapshot(conn):
            return [candidate_read(c) for c in await duplicates.list_duplicates(conn, principal, report_id)]

    @post(
        "/{report_id:uuid}/comments",
        summary="Comment on a report",
        responses=problem_responses(400, 401, 404),
    )
    async def add_comment(
        self, report_id: uuid.UUID, data: CommentCreate, principal: Principal, conn: Connection,
        now: dt.datetime,
    ) -> CommentRead:
        async with transaction(conn):
            comment = await workflow.add_comment(conn, principal, report_id, body=data.body, now=now)
        return comment_read(comment)

    @get("/{report_id:uuid}/events", summary="The report's audit trail", responses=problem_responses(400, 401, 404))
    async def events(self, report_id: uuid.UUID, principal: Principal, conn: Connection) -> list[EventRead]:
        return [event_read(e) for e in await views.report_events(conn, principal, report_id)]


class IncidentController(Controller):
    path = "/v1/incidents"
    tags = ["review"]
    security = SECURITY

    @get(
        "/{incident_id:uuid}",
        summary="A disaster's report chain with its deadlines and the ones missed",
        responses=problem_responses(400, 401, 404),
    )
    async def incident(
        self, incident_id: uuid.UUID, principal: Principal, conn: Connection, now: dt.datetime
    ) -> IncidentRead:
        async with snapshot(conn):
            return incident_read(await incidents.get_chain(conn, principal, incident_id, now=now))
