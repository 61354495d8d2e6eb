"""Report endpoints for the field app: create or revise (idempotent PUT), and the detail."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.openapi.datastructures import ResponseSpec

from fieldsync import errors
from fieldsync.api.deps import Connection, release_connection
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
    MediaAttachment,
    MediaEvidence,
    Receipt,
    RectificationRead,
    ReportRead,
    ReportWrite,
    WorkflowRead,
)
from fieldsync.db.transactions import snapshot
from fieldsync.domain.principals import Principal
from fieldsync.domain.reports import MediaReference, ReceiptData, ReportSubmission
from fieldsync.domain.views import EventView, PersonView, PhotoView, ReportView, WorkflowView
from fieldsync.services import reports, views

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
        id=data.id, version=data.version, status=data.status,
        missing_media=data.missing_media, duplicate=data.duplicate,
        possible_duplicates=[c[0] for c in data.possible_duplicates],
        duplicate_candidates=[DuplicateCandidate(id=c[0], score=c[1], reasons=c[2]) for c in data.possible_duplicates],
    )


def media_urls(sha256: str) -> tuple[str, str, str]:
    base = f"/v1/media/{sha256}"
    return base, f"{base}/preview", f"{base}/thumbnail"


def person(view: PersonView) -> Author:
    return Author(id=view.id, username=view.username)


def attachment(photo: PhotoView) -> MediaAttachment:
    if not photo.present:
        return MediaAttachment(
            sha256=photo.sha256, role=photo.role, caption=photo.caption, present=False,
            url=None, preview_url=None, thumbnail_url=None,
        )
    url, preview, thumbnail = media_urls(photo.sha256)
    check = photo.evidence
    return MediaAttachment(
        sha256=photo.sha256, role=photo.role, caption=photo.caption, present=True,
        url=url, preview_url=preview, thumbnail_url=thumbnail,
        content_type=photo.content_type, bytes=photo.bytes, width=photo.width, height=photo.height,
        taken_at=photo.taken_at, lat=photo.lat, lon=photo.lon, make=photo.make, model=photo.model,
        evidence=MediaEvidence(distance_m=check.distance_m, time_gap_s=check.time_gap_s, flags=list(check.flags))
        if check else None,
    )


def workflow_read(view: WorkflowView) -> WorkflowRead:
    plan = view.rectification
    return WorkflowRead(
        verified_at=view.verified_at,
        rectification=RectificationRead(
            responsible_person=plan.responsible_person, measures=plan.measures, funds_cny=plan.funds_cny,
            deadline=plan.deadline, contingency_plan=plan.contingency_plan, assigned_at=plan.assigned_at,
        ) if plan else None,
        rectification_note=view.rectification_note,
        rectified_at=view.rectified_at,
        closed_at=view.closed_at,
        listing=ListingRead(level=view.listing.level, deadline=view.listing.deadline) if view.listing else None,
        overdue=view.overdue,
    )


def report_read(view: ReportView) -> ReportRead:
    """The wire report: the author's fields as stored, then the server's."""
    fields = {key: value for key, value in view.content.items() if key != "media"}
    read = msgspec.convert(
        {
            **fields, "id": view.id, "media": [], "author": person(view.author), "device_id": view.device_id,
            "received_at": view.received_at, "updated_at": view.updated_at, "version": view.version,
            "status": view.status, "missing_media": list(view.missing_media), "duplicate_of": view.duplicate_of,
            "merged_from": list(view.merged_from), "possible_duplicates": list(view.possible_duplicates),
        },
        ReportRead,
        from_attributes=True,
    )
    return msgspec.structs.replace(
        read, media=[attachment(p) for p in view.media], merged_media=[attachment(p) for p in view.merged_media],
        workflow=workflow_read(view.workflow),
    )


def event_read(view: EventView) -> EventRead:
    return EventRead(
        id=view.id, action=view.action, from_status=view.from_status, to_status=view.to_status, version=view.version,
        actor=person(view.actor) if view.actor else None, device_id=view.device_id, detail=dict(view.detail),
        created_at=view.created_at,
    )


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
            **problem_responses(400, 401, 403, 404, 409, 503, 507),
        },
        status_code=201,
    )
    async def put_report(
        self, request: Request[Any, Any, Any], report_id: uuid.UUID, data: ReportWrite, principal: Principal,
        runtime: Runtime,
    ) -> Response[Receipt]:
        submission = to_submission(report_id, data)
        # committed with the other PUTs in flight (services.ingest), on a connection of its own
        await release_connection(request)
        outcome = await runtime.ingest.submit(reports.Submission(principal, submission))
        runtime.wake_workers()  # its near-duplicate search was queued
        if outcome.error is not None:
            raise outcome.error
        assert outcome.receipt is not None
        return Response(to_receipt(outcome.receipt), status_code=201 if outcome.receipt.created else 200)

    @get(
        "/{report_id:uuid}",
        summary="A report with its photos, their evidence checks, version and status",
        responses=problem_responses(401, 404),
    )
    async def get_report(
        self, report_id: uuid.UUID, principal: Principal, conn: Connection, now: dt.datetime
    ) -> ReportRead:
        async with snapshot(conn):
            view = await views.get_report(conn, principal, report_id, now=now)
            events = await views.report_events(conn, principal, report_id)
        return msgspec.structs.replace(report_read(view), events=[event_read(e) for e in events])
