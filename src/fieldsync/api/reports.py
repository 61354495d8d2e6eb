"""Report endpoints for the field app: create or revise (idempotent PUT), and the detail."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import msgspec
from litestar import Controller, Response, get, put
from litestar.openapi.datastructures import ResponseSpec

from fieldsync import errors
from fieldsync.api.problems import problem_responses
from fieldsync.api.runtime import Runtime
from fieldsync.api.schemas.reports import (
    AccidentReport,
    Author,
    DisasterReport,
    DuplicateCandidate,
    EventRead,
    HazardReport,
    ListingRead,
    Location,
    MediaAttachment,
    MediaEvidence,
    Receipt,
    RectificationRead,
    ReportRead,
    ReportWrite,
    WorkflowRead,
)
from fieldsync.db.transactions import transaction
from fieldsync.domain import evidence
from fieldsync.domain.principals import Principal
from fieldsync.domain.reports import MediaReference, ReceiptData, ReportSubmission
from fieldsync.domain.workflow import is_overdue
from fieldsync.services import audit, reports

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def to_submission(report_id: uuid.UUID, data: ReportWrite) -> ReportSubmission:
    """The wire report as the domain sees it; ``content`` is its plain-data form for hashing."""
    if data.id is not None and data.id != report_id:
        raise errors.ReportInvalid("the body's id differs from the id in the path", field="id")
    content: dict[str, Any] = msgspec.to_builtins(data)
    content.pop("id", None)
    content.pop("base_version", None)
    extra: dict[str, Any] = {}
    if isinstance(data, HazardReport):
        extra = {"grade": data.grade, "credit_code": data.enterprise.credit_code}
    elif isinstance(data, DisasterReport):
        extra = {"incident_id": data.incident_id, "stage": data.stage}
    elif isinstance(data, AccidentReport):
        extra = {"credit_code": data.enterprise.credit_code}
    return ReportSubmission(
        id=report_id,
        kind=content["kind"],
        category=data.category,
        title=data.title,
        description=data.description,
        jurisdiction=data.jurisdiction,
        lat=data.location.lat,
        lon=data.location.lon,
        accuracy_m=data.location.accuracy_m,
        observed_at=data.observed_at,
        severity=data.severity,
        media=tuple(MediaReference(m.sha256, m.role, m.caption) for m in data.media),
        content=content,
        base_version=data.base_version,
        **extra,
    )


def to_receipt(data: ReceiptData) -> Receipt:
    return Receipt(
        id=data.id, version=data.version, status=data.status,  # type: ignore[arg-type]
        missing_media=data.missing_media, duplicate=data.duplicate,
        possible_duplicates=[c[0] for c in data.possible_duplicates],
        duplicate_candidates=[DuplicateCandidate(id=c[0], score=c[1], reasons=c[2]) for c in data.possible_duplicates],
    )


def media_urls(sha256: str) -> tuple[str, str, str]:
    base = f"/v1/media/{sha256}"
    return base, f"{base}/preview", f"{base}/thumbnail"


def attachment(row: asyncpg.Record, *, location: Location, observed_at: dt.datetime) -> MediaAttachment:
    url, preview, thumbnail = media_urls(row["sha256"])
    if not row["present"]:
        return MediaAttachment(
            sha256=row["sha256"], role=row["role"], caption=row["caption"], present=False,
            url=None, preview_url=None, thumbnail_url=None,
        )
    check = evidence.check_photo(
        report_lat=location.lat,
        report_lon=location.lon,
        accuracy_m=location.accuracy_m,
        observed_at=observed_at,
        photo_lat=row["lat"],
        photo_lon=row["lon"],
        taken_at=row["taken_at"],
        taken_at_local=row["taken_at_local"],
    )
    return MediaAttachment(
        sha256=row["sha256"], role=row["role"], caption=row["caption"], present=True,
        url=url, preview_url=preview, thumbnail_url=thumbnail,
        content_type=row["content_type"], bytes=row["bytes"], width=row["width"], height=row["height"],
        taken_at=row["taken_at"], lat=row["lat"], lon=row["lon"], make=row["make"], model=row["model"],
        evidence=MediaEvidence(distance_m=check.distance_m, time_gap_s=check.time_gap_s, flags=check.flags),
    )


async def read_reports(conn: asyncpg.Connection, rows: list[asyncpg.Record], *, now: dt.datetime) -> list[ReportRead]:
    """The read model of several reports with one media query (merged reports' photos included)."""
    merged = {m for row in rows for m in row["merged_from"]}
    media_by_report = await reports.media_of_reports(conn, [row["id"] for row in rows] + sorted(merged))
    reads = []
    for row in rows:
        read = _read(row, media_by_report[row["id"]], now=now)
        if row["merged_from"]:
            merged_media = [
                attachment(m, location=read.location, observed_at=read.observed_at)
                for source in row["merged_from"] for m in media_by_report[source]
            ]
            read = msgspec.structs.replace(read, merged_media=merged_media)
        reads.append(read)
    return reads


def _workflow(row: asyncpg.Record, *, now: dt.datetime) -> WorkflowRead:
    plan = row["rectification"]
    return WorkflowRead(
        verified_at=row["verified_at"],
        rectification=msgspec.convert(plan, RectificationRead) if plan else None,
        rectification_note=row["rectification_note"],
        rectified_at=row["rectified_at"],
        closed_at=row["closed_at"],
        listing=ListingRead(level=row["listed_level"], deadline=row["listed_deadline"]) if row["listed_level"] else None,
        overdue=is_overdue(status=row["status"], deadline=row["rectification_deadline"], now=now),
    )


def _read(row: asyncpg.Record, media_rows: list[asyncpg.Record], *, now: dt.datetime) -> ReportRead:
    body: dict[str, Any] = row["body"]
    location = msgspec.convert(body["location"], Location)
    observed_at = msgspec.convert(body["observed_at"], dt.datetime)
    fields = {k: v for k, v in body.items() if k != "media"}
    read = msgspec.convert(
        {
            **fields,
            "id": row["id"],
            "media": [],
            "author": Author(id=row["author_id"], username=row["author_username"]),
            "device_id": row["device_id"],
            "received_at": row["received_at"],
            "updated_at": row["updated_at"],
            "version": row["version"],
            "status": row["status"],
            "missing_media": list(dict.fromkeys(m["sha256"] for m in media_rows if not m["present"])),
            "duplicate_of": row["duplicate_of"],
            "merged_from": list(row["merged_from"]),
            "possible_duplicates": list(row["possible_duplicates"]),
        },
        ReportRead,
        from_attributes=True,
    )
    media = [attachment(m, location=location, observed_at=observed_at) for m in media_rows]
    return msgspec.structs.replace(read, media=media, workflow=_workflow(row, now=now))


async def report_events(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[EventRead]:
    rows = await audit.report_events(conn, report_id)
    return [
        EventRead(
            id=row["id"], action=row["action"], from_status=row["from_status"], to_status=row["to_status"],
            version=row["version"],
            actor=Author(id=row["actor_id"], username=row["actor_username"]) if row["actor_id"] else None,
            device_id=row["device_id"], detail=msgspec.json.decode(row["detail"]), created_at=row["created_at"],
        )
        for row in rows
    ]


class ReportController(Controller):
    path = "/v1/reports"
    tags = ["reports"]
    security = SECURITY

    @put(
        "/{report_id:uuid}",
        summary="Create or revise a report (idempotent on the client-generated id)",
        description=(
            "201 new; 200 with `duplicate: true` for a replay of the same content; 200 for a revision "
            "with the current `base_version`; 409 `report.conflict` for different content without "
            "`base_version`, 409 `report.stale_version` for a stale one."
        ),
        responses={
            200: ResponseSpec(
                data_container=Receipt, description="Replay (duplicate: true) or a new version", generate_examples=False
            ),
            **problem_responses(400, 401, 403, 404, 409),
        },
        status_code=201,
    )
    async def put_report(
        self, report_id: uuid.UUID, data: ReportWrite, principal: Principal, conn: asyncpg.Connection,
        runtime: Runtime, now: dt.datetime,
    ) -> Response[Receipt]:
        submission = to_submission(report_id, data)
        async with transaction(conn):
            receipt = await reports.submit_report(
                conn, principal, submission, now=now, clock_skew_s=runtime.settings.clock_skew_s
            )
        return Response(to_receipt(receipt), status_code=201 if receipt.created else 200)

    @get(
        "/{report_id:uuid}",
        summary="A report with its photos, their evidence checks, version and status",
        responses=problem_responses(401, 404),
    )
    async def get_report(
        self, report_id: uuid.UUID, principal: Principal, conn: asyncpg.Connection, now: dt.datetime
    ) -> ReportRead:
        row = await reports.get_visible_report(conn, principal, report_id)
        read = (await read_reports(conn, [row], now=now))[0]
        return msgspec.structs.replace(read, events=await report_events(conn, report_id))
