"""Reading reports: rows become the typed read models of ``domain.views`` here and nowhere else.

Every read takes the caller: a report it may not see is not found (or left out of a list), and
what a view names (near-duplicate candidates, merged reports, photos that count) is already
narrowed to the caller by ``db.reports.get_reports``. The rules a reader sees applied live here
too: a photo's evidence flags (``domain.evidence``) and whether a rectification is overdue
(``domain.workflow.is_overdue``). Reads that must agree (a detail and its events, a pull page and
its reports) run in the caller's ``db.transactions.snapshot``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from fieldsync import errors
from fieldsync.db import audit as audit_q
from fieldsync.db import reports as q
from fieldsync.db import workflow as workflow_q
from fieldsync.domain import evidence
from fieldsync.domain.principals import Principal
from fieldsync.domain.views import (
    CommentView,
    EventView,
    EvidenceView,
    ListingView,
    PersonView,
    PhotoView,
    RectificationView,
    ReportView,
    WorkflowView,
)
from fieldsync.domain.workflow import is_overdue


async def read_reports(
    conn: asyncpg.Connection, actor: Principal, ids: list[uuid.UUID], *, now: dt.datetime
) -> list[ReportView]:
    """The reports of ``ids`` that ``actor`` may see, in the order of ``ids``, with one media query
    (merged reports' photos included)."""
    rows = [row for row in await q.get_reports(conn, ids, actor.visibility) if _sees(actor, row)]
    merged = sorted({source for row in rows for source in row["merged_from"]})
    media = await q.list_media_of_reports(conn, [row["id"] for row in rows] + merged)
    return [_report(row, media, now=now) for row in rows]


async def get_report(conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID, *, now: dt.datetime) -> ReportView:
    """One report, or ``report.not_found`` when it does not exist or ``actor`` may not see it."""
    found = await read_reports(conn, actor, [report_id], now=now)
    if not found:
        raise errors.ReportNotFound()
    return found[0]


async def report_events(conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID) -> list[EventView]:
    """The audit trail of a report ``actor`` may see."""
    await _visible_row(conn, actor, report_id)
    return [_event(row) for row in await audit_q.list_report_events(conn, report_id)]


async def report_comments(conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID) -> list[CommentView]:
    """Comments on a report ``actor`` may see, and on the reports merged into it that it may see."""
    row = await _visible_row(conn, actor, report_id)
    return [comment_view(c) for c in await workflow_q.list_comments(conn, [report_id, *row["merged_from"]])]


def comment_view(row: asyncpg.Record) -> CommentView:
    return CommentView(
        id=row["id"], report_id=row["report_id"], author=PersonView(row["author_id"], row["author_username"]),
        device_id=row["device_id"], body=row["body"], created_at=row["created_at"],
    )


async def _visible_row(conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID) -> asyncpg.Record:
    rows = await q.get_reports(conn, [report_id], actor.visibility)
    if not rows or not _sees(actor, rows[0]):
        raise errors.ReportNotFound()
    return rows[0]


def _sees(actor: Principal, row: asyncpg.Record) -> bool:
    return actor.sees_report(author_id=row["author_id"], jurisdiction_path=row["jurisdiction_path"])


def _report(row: asyncpg.Record, media: Mapping[uuid.UUID, list[asyncpg.Record]], *, now: dt.datetime) -> ReportView:
    content: dict[str, Any] = row["body"]
    location = content["location"]
    observed_at = dt.datetime.fromisoformat(content["observed_at"])

    def photos(report_id: uuid.UUID) -> tuple[PhotoView, ...]:
        return tuple(_photo(m, location, observed_at) for m in media[report_id])

    own = media[row["id"]]
    return ReportView(
        id=row["id"], kind=row["kind"], content=content, jurisdiction=row["jurisdiction"],
        author=PersonView(row["author_id"], row["author_username"]), device_id=row["device_id"],
        received_at=row["received_at"], updated_at=row["updated_at"], version=row["version"], status=row["status"],
        media=photos(row["id"]),
        missing_media=tuple(dict.fromkeys(m["sha256"] for m in own if not m["present"])),
        possible_duplicates=tuple(row["possible_duplicates"]), duplicate_of=row["duplicate_of"],
        merged_from=tuple(row["merged_from"]),
        merged_media=tuple(photo for source in row["merged_from"] for photo in photos(source)),
        workflow=_workflow(row, now=now),
    )


def _photo(row: asyncpg.Record, location: Mapping[str, Any], observed_at: dt.datetime) -> PhotoView:
    if not row["present"]:
        return PhotoView(sha256=row["sha256"], role=row["role"], caption=row["caption"], present=False)
    check = evidence.check_photo(
        report_lat=location["lat"], report_lon=location["lon"], accuracy_m=location.get("accuracy_m"),
        observed_at=observed_at, photo_lat=row["lat"], photo_lon=row["lon"], taken_at=row["taken_at"],
        taken_at_local=row["taken_at_local"],
    )
    return PhotoView(
        sha256=row["sha256"], role=row["role"], caption=row["caption"], present=True,
        content_type=row["content_type"], bytes=row["bytes"], width=row["width"], height=row["height"],
        taken_at=row["taken_at"], lat=row["lat"], lon=row["lon"], make=row["make"],
        model=row["model"],
        evidence=EvidenceView(distance_m=check.distance_m, time_gap_s=check.time_gap_s, flags=tuple(check.flags)),
    )


def _workflow(row: asyncpg.Record, *, now: dt.datetime) -> WorkflowView:
    plan = row["rectification"]
    return WorkflowView(
        verified_at=row["verified_at"],
        rectification=_rectification(plan) if plan else None,
        rectification_note=row["rectification_note"],
        rectified_at=row["rectified_at"],
        closed_at=row["closed_at"],
        listing=ListingView(row["listed_level"], row["listed_deadline"]) if row["listed_level"] else None,
        overdue=is_overdue(status=row["status"], deadline=row["rectification_deadline"], now=now),
    )


def _rectification(plan: Mapping[str, Any]) -> RectificationView:
    def instant(key: str) -> dt.datetime | None:
        value = plan.get(key)
        return dt.datetime.fromisoformat(value) if value else None

    return RectificationView(
        responsible_person=plan.get("responsible_person"), measures=plan.get("measures"),
        funds_cny=plan.get("funds_cny"), deadline=instant("deadline"), contingency_plan=plan.get("contingency_plan"),
        assigned_at=instant("assigned_at"),
    )


def _event(row: asyncpg.Record) -> EventView:
    return EventView(
        id=row["id"], action=row["action"], from_status=row["from_status"], to_status=row["to_status"],
        version=row["version"], actor=PersonView(row["actor_id"], row["actor_username"]) if row["actor_id"] else None,
        device_id=row["device_id"], detail=json.loads(row["detail"]), created_at=row["created_at"],
    )
