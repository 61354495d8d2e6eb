"""Review endpoints for supervisors: workflow transitions, comments, the audit trail of a report,
and a disaster's report chain."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
from litestar import Controller, get, post

from fieldsync.api.problems import problem_responses
from fieldsync.api.reports import read_reports, report_events
from fieldsync.api.schemas.reports import (
    Author,
    CommentCreate,
    CommentRead,
    DuplicateRead,
    EventRead,
    IncidentRead,
    ReportRead,
    TransitionCreate,
)
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal
from fieldsync.domain.reports import MediaReference
from fieldsync.services import duplicates, incidents, reports, workflow

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def to_request(data: TransitionCreate) -> workflow.TransitionRequest:
    return workflow.TransitionRequest(
        action=data.action, version=data.version, note=data.note, into=data.into,
        responsible_person=data.responsible_person, measures=data.measures, funds_cny=data.funds_cny,
        deadline=data.deadline, contingency_plan=data.contingency_plan, level=data.level,
        media=tuple(MediaReference(m.sha256, m.role, m.caption) for m in data.media),
    )


def comment_read(row: asyncpg.Record) -> CommentRead:
    return CommentRead(
        id=row["id"], report_id=row["report_id"],
        author=Author(id=row["author_id"], username=row.get("author_username") or ""),
        device_id=row["device_id"], body=row["body"], created_at=row["created_at"],
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
        self, report_id: uuid.UUID, data: TransitionCreate, principal: Principal, conn: asyncpg.Connection,
        now: dt.datetime,
    ) -> ReportRead:
        async with transaction(conn):
            await workflow.apply_transition(conn, principal, report_id, to_request(data), now=now)
        row = await reports.get_visible_report(conn, principal, report_id)
        return (await read_reports(conn, [row], now=now))[0]

    @get(
        "/{report_id:uuid}/comments",
        summary="Comments on a report, and on the reports merged into it",
        responses=problem_responses(400, 401, 404),
    )
    async def list_comments(
        self, report_id: uuid.UUID, principal: Principal, conn: asyncpg.Connection
    ) -> list[CommentRead]:
        row = await reports.get_visible_report(conn, principal, report_id)
        ids = [report_id, *row["merged_from"]]
        return [comment_read(row) for row in await workflow.list_comments(conn, ids)]

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
        self, report_id: uuid.UUID, principal: Principal, conn: asyncpg.Connection
    ) -> list[DuplicateRead]:
        rows = await duplicates.list_duplicates(conn, principal, report_id)
        return [
            DuplicateRead(
                id=row["id"], score=float(row["score"]), reasons=row["reasons"], kind=row["kind"],
                category=row["category"], title=row["title"], status=row["status"],
                observed_at=row["observed_at"], found_at=row["found_at"],
            )
            for row in rows
        ]

    @post(
        "/{report_id:uuid}/comments",
        summary="Comment on a report",
        responses=problem_responses(400, 401, 404),
    )
    async def add_comment(
        self, report_id: uuid.UUID, data: CommentCreate, principal: Principal, conn: asyncpg.Connection,
        now: dt.datetime,
    ) -> CommentRead:
        async with transaction(conn):
            row = await workflow.add_comment(conn, principal, report_id, body=data.body, now=now)
        return CommentRead(
            id=row["id"], report_id=row["report_id"], author=Author(id=principal.user_id, username=principal.username),
            device_id=row["device_id"], body=row["body"], created_at=row["created_at"],
        )

    @get("/{report_id:uuid}/events", summary="The report's audit trail", responses=problem_responses(400, 401, 404))
    async def events(self, report_id: uuid.UUID, principal: Principal, conn: asyncpg.Connection) -> list[EventRead]:
        await reports.get_visible_report(conn, principal, report_id)
        return await report_events(conn, report_id)


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
        self, incident_id: uuid.UUID, principal: Principal, conn: asyncpg.Connection, now: dt.datetime
    ) -> IncidentRead:
        chain = await incidents.get_chain(conn, principal, incident_id, now=now)
        return IncidentRead(
            incident_id=incident_id,
            category=chain.category,
            reports=await read_reports(conn, chain.rows, now=now),
            stages=chain.stages,
            deadlines=chain.deadlines,  # type: ignore[arg-type]
            missed=chain.missed,
        )
