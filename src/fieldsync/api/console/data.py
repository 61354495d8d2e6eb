"""Everything the console reads from or writes to fieldsync, in one module.

The console holds no rule of its own: each function below calls the same service (or the same
API read-model builder) that the JSON API calls, so a page shows exactly what ``GET /v1/...``
answers and an action does exactly what ``POST /v1/...`` does. Services hand back typed read models
(``domain.views``); pages show them through the API's own wire structs (``ReportRead`` and
friends, mapped by ``api.reports.report_read``), so a page and ``GET /v1/...`` cannot differ.

Transactions: like an API handler, each mutating function here is the request edge and owns its
transaction (``transaction(conn)``); reads of several statements run in one REPEATABLE READ
read-only transaction, as the API's list does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
import segno
from litestar import Request, Response
from litestar.datastructures import UploadFile

from fieldsync import errors
from fieldsync.api.deps import Connection
from fieldsync.api.identity import throttle_policy as login_throttle  # the API's throttle policy, not a copy
from fieldsync.api.listing import FORMATS, export_stream, provide_report_filter
from fieldsync.api.media import serve_derivative, serve_original
from fieldsync.api.openrosa.controller import public_base
from fieldsync.api.reports import event_read, report_read
from fieldsync.api.review import candidate_read, comment_read, to_request
from fieldsync.api.runtime import Runtime
from fieldsync.api.schemas.reports import (
    CommentCreate,
    CommentRead,
    DuplicateRead,
    EventRead,
    ReportRead,
    TransitionCreate,
)
from fieldsync.db.transactions import snapshot, transaction
from fieldsync.domain import tokens
from fieldsync.domain import workflow as rules
from fieldsync.domain.filters import ReportFilter as ReportFilter  # re-exported: the pages name it from here
from fieldsync.domain.principals import Principal, Role
from fieldsync.domain.views import CategoryView, DeviceView, JurisdictionView, UserView
from fieldsync.services import (
    collect,
    duplicates,
    identity,
    incidents,
    listing,
    media,
    reference,
    stats,
    views,
    workflow,
)

# The API's own filter reader: the console's queue, map and export take the same query
# parameters, parsed and checked (scope, categories) by the same code.
report_filter = provide_report_filter
ExportFormat = FORMATS
TransitionRequest = workflow.TransitionRequest
Stats = stats.Stats
MAP_LIMIT = 20_000
DEVICE_LIMIT = 500
INSPECTOR_LIMIT = 1000


# --- identity -----------------------------------------------------------------------------------


async def sign_in(
    conn: Connection, runtime: Runtime, *, username: str, password: str, client: str, now: dt.datetime
) -> tuple[str, dt.datetime]:
    """``POST /v1/auth/login``'s use case, throttled by the same counters."""
    return await identity.login(
        conn, username=username, password=password, client=client, now=now,
        session_ttl_s=runtime.settings.session_ttl_s, throttle=login_throttle(runtime),
    )


async def session_principal(conn: Connection, token: str, *, now: dt.datetime) -> Principal:
    """The user behind a console session cookie; device tokens never open the console."""
    if not token.startswith(tokens.SESSION_PREFIX):
        raise errors.TokenInvalid()
    return await identity.authenticate(conn, token=token, now=now)


async def sign_out(conn: Connection, token: str, *, now: dt.datetime) -> None:
    async with transaction(conn):
        await identity.end_session(conn, token=token, now=now)


# --- reference data -----------------------------------------------------------------------------


Place = JurisdictionView
Category = CategoryView


async def places_in_view(conn: Connection, principal: Principal) -> list[Place]:
    """The caller's jurisdiction subtree (the whole tree for an admin), in path order."""
    return await reference.list_jurisdictions(conn, principal, mine=True)


async def place(conn: Connection, code: str) -> Place | None:
    return await reference.get_jurisdiction(conn, code)


async def categories(conn: Connection) -> list[CategoryView]:
    return await reference.list_categories(conn, kind=None)


# --- reports ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class QueuePage:
    items: list[ReportRead]
    next_cursor: str | None


async def queue_page(
    conn: Connection, principal: Principal, where: ReportFilter, *, now: dt.datetime, cursor: str | None,
    limit: int,
) -> QueuePage:
    """One page of ``GET /v1/reports``: same filter, same order, same cursor."""
    async with snapshot(conn):
        page = await listing.list_reports(conn, principal, where, now=now, cursor=cursor, limit=limit)
    return QueuePage(items=[report_read(view) for view in page.items], next_cursor=page.next_cursor)


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A near-duplicate candidate with its own read model, for the side-by-side view."""

    found: DuplicateRead
    report: ReportRead


@dataclasses.dataclass(frozen=True, slots=True)
class Detail:
    report: ReportRead
    events: list[EventRead]
    comments: list[CommentRead]
    candidates: list[Candidate]
    actions: list[str]
    listing_levels: list[Place]


async def report_detail(conn: Connection, principal: Principal, report_id: uuid.UUID, *, now: dt.datetime) -> Detail:
    """``GET /v1/reports/{id}`` with its comments, events and duplicates, from one snapshot."""
    async with snapshot(conn):
        read = report_read(await views.get_report(conn, principal, report_id, now=now))
        events = [event_read(e) for e in await views.report_events(conn, principal, report_id)]
        comments = [comment_read(c) for c in await views.report_comments(conn, principal, report_id)]
        found = [candidate_read(c) for c in await duplicates.list_duplicates(conn, principal, report_id)]
        others = await views.read_reports(conn, principal, [c.id for c in found], now=now)
        by_id = {other.id: report_read(other) for other in others}
        home = await place(conn, read.jurisdiction)
        levels = await _listing_levels(conn, principal, home.path) if read.grade == "major" and home else []
    return Detail(
        report=read, events=events, comments=comments,
        candidates=[Candidate(c, by_id[c.id]) for c in found if c.id in by_id],
        actions=allowed_actions(read, principal), listing_levels=levels,
    )


def allowed_actions(report: ReportRead, principal: Principal) -> list[str]:
    """The workflow actions this caller may take on the report now, by the one MOVES table."""
    allowed = []
    for action in rules.ACTIONS:
        try:
            rules.find_move(action, kind=report.kind, status=report.status, role=principal.role)
        except (errors.InvalidTransition, errors.RoleForbidden):
            continue
        if action == "list_supervision" and report.grade != "major":
            continue  # the service refuses it for general hazards; offering it would only fail
        allowed.append(action)
    return sorted(allowed, key=lambda action: action == "merge")  # the review's own step first, merge last


async def _listing_levels(conn: Connection, principal: Principal, path: str) -> list[Place]:
    """The report's jurisdiction and those above it that the caller may list at."""
    levels = []
    for code in [part for part in path.split("/") if part]:
        found = await place(conn, code)
        if found is not None and principal.sees(found.path):
            levels.append(found)
    return levels


def transition_request(fields: dict[str, Any]) -> TransitionRequest:
    """A form's fields read as ``POST /v1/reports/{id}/transitions`` reads its JSON body: the same
    wire struct, so the same limits and patterns (strings from a form are converted)."""
    try:
        body = msgspec.convert(fields, TransitionCreate, strict=False)
    except msgspec.ValidationError as exc:
        raise errors.InvalidInput(str(exc), field=_failing_field(str(exc))) from None
    return to_request(body)


def comment_body(text: str) -> str:
    try:
        return msgspec.convert({"body": text}, CommentCreate).body
    except msgspec.ValidationError as exc:
        raise errors.InvalidInput(str(exc), field="body") from None


def _failing_field(message: str) -> str | None:
    if "`$." in message:
        return message.split("`$.", 1)[1].split("`", 1)[0].split("[", 1)[0].split(".", 1)[0]
    if "missing required field `" in message:
        return message.split("missing required field `", 1)[1].split("`", 1)[0]
    return None


async def store_photo(
    conn: Connection, principal: Principal, runtime: Runtime, upload: UploadFile, *, now: dt.datetime
) -> str:
    """A photo posted with a form, kept as ``PUT /v1/media/{sha256}`` keeps one (same checks: type,
    decodable, pixel limit; recorded as uploaded by the caller); returns its sha256."""
    declared = media.normalized_content_type(upload.content_type)
    async with runtime.spool.staged() as staged:
        while chunk := await upload.read(1 << 20):
            await staged.write(chunk)
            if staged.size > runtime.settings.max_media_bytes:
                raise errors.MediaTooLarge(limit=runtime.settings.max_media_bytes)
        await staged.finish()
        checked = await media.check_media(
            staged, expected_sha256=staged.sha256, declared_type=declared, max_pixels=runtime.settings.max_media_pixels
        )
        # the request's connection: a form post is small, nothing to give back meanwhile
        kept = await media.keep_media(
            media.holding(conn), principal, staged=staged, checked=checked, store=runtime.media, now=now
        )
    if kept.queued:
        runtime.wake_workers()
    return staged.sha256


async def apply_transition(
    conn: Connection, principal: Principal, report_id: uuid.UUID, request: TransitionRequest,
    *, now: dt.datetime,
) -> int:
    """``POST /v1/reports/{id}/transitions``'s use case; returns the new version."""
    async with transaction(conn):
        return await workflow.apply_transition(conn, principal, report_id, request, now=now)


async def add_comment(
    conn: Connection, principal: Principal, report_id: uuid.UUID, *, body: str, now: dt.datetime
) -> None:
    async with transaction(conn):
        await workflow.add_comment(conn, principal, report_id, body=body, now=now)


@dataclasses.dataclass(frozen=True, slots=True)
class Incident:
    incident_id: uuid.UUID
    category: str | None
    reports: list[ReportRead]
    stages: dict[str, int]
    deadlines: list[dict[str, Any]]
    missed: list[str]


async def incident(conn: Connection, principal: Principal, incident_id: uuid.UUID, *, now: dt.datetime) -> Incident:
    """``GET /v1/incidents/{id}``: the chain, its deadlines and the missed ones."""
    async with snapshot(conn):
        chain = await incidents.get_chain(conn, principal, incident_id, now=now)
    return Incident(
        incident_id, chain.category, [report_read(r) for r in chain.reports], dict(chain.stages),
        [dataclasses.asdict(d) for d in chain.deadlines], list(chain.missed),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class MapPoint:
    id: uuid.UUID
    lat: float
    lon: float
    status: str
    kind: str
    title: str
    jurisdiction: str
    overdue: bool


async def map_points(
    conn: Connection, principal: Principal, where: ReportFilter, *, now: dt.datetime
) -> tuple[list[MapPoint], bool]:
    """The export's rows for these filters (at most ``MAP_LIMIT``), and whether more were left out.
    The export's rule applies: supervisors and admins only (an inspector's device has the feed)."""
    points: list[MapPoint] = []
    async with snapshot(conn):
        async for batch in listing.export_reports(conn, principal, where, now=now):
            for r in batch:
                if len(points) >= MAP_LIMIT:
                    return points, True
                points.append(MapPoint(
                    r["id"], r["lat"], r["lon"], r["status"], r["kind"], r["title"], r["jurisdiction"], r["overdue"]
                ))
    return points, False


async def statistics(
    conn: Connection, principal: Principal, *, start: str | None, end: str | None, jurisdiction: str | None,
    now: dt.datetime,
) -> Stats:
    """``GET /v1/stats?group_by=jurisdiction``: this window and the year before, per child area."""
    return await stats.get_stats(
        conn, principal, start=start, end=end, jurisdiction=jurisdiction, group_by="jurisdiction", now=now
    )


# --- devices ------------------------------------------------------------------------------------


async def devices(conn: Connection, principal: Principal) -> list[DeviceView]:
    return await identity.list_devices(conn, principal, after=None, limit=DEVICE_LIMIT)


async def inspectors(conn: Connection, principal: Principal) -> list[UserView]:
    users = await identity.list_users(conn, principal, after=None, limit=INSPECTOR_LIMIT)
    return [user for user in users if user.role == Role.INSPECTOR.value and not user.disabled]


async def issue_enrollment(
    conn: Connection, principal: Principal, runtime: Runtime, *, username: str, now: dt.datetime
) -> tuple[str, dt.datetime]:
    async with transaction(conn):
        return await identity.issue_enrollment(
            conn, principal, username=username, ttl_s=runtime.settings.enrollment_ttl_s, now=now
        )


async def revoke_device(conn: Connection, principal: Principal, device_id: uuid.UUID, *, now: dt.datetime) -> None:
    async with transaction(conn):
        await identity.revoke_device(conn, principal, device_id=device_id, now=now)


async def enroll_collect(
    request: Request[Any, Any, Any], conn: Connection, principal: Principal, runtime: Runtime, *,
    username: str, label: str, now: dt.datetime,
) -> collect.CollectEnrollment:
    """``POST /v1/devices/collect``'s use case: a phone enrolled for ODK Collect and its settings."""
    async with transaction(conn):
        return await collect.enroll_collect(
            conn, principal, username=username, label=label, public_base=public_base(request, runtime), now=now
        )


def qr_svg(text: str) -> str:
    """The Collect QR code as inline SVG (the page's CSP allows no ``data:`` image): the same text
    and error-correction level as the API's PNG."""
    return str(segno.make(text, error="m", micro=False).svg_inline(scale=4, border=4, dark="#000"))


# --- media and export: the API's own serving code ---------------------------------------------


async def media_response(
    request: Request[Any, Any, Any], runtime: Runtime, conn: Connection, principal: Principal, sha256: str,
    variant: str, *, now: dt.datetime,
) -> Response[Any]:
    """A photo as ``GET /v1/media/{sha256}[/preview|/thumbnail]`` serves it, with the same access
    check and audit event."""
    if variant in ("preview", "thumbnail"):
        return await serve_derivative(request, runtime, conn, principal, sha256, variant, now=now)  # type: ignore[arg-type]  # checked just above
    return await serve_original(request, runtime, conn, principal, sha256, now=now)


def export_body(
    conn: Connection, principal: Principal, where: ReportFilter, *, now: dt.datetime, fmt: str
) -> AsyncGenerator[bytes, None]:
    """The body of ``GET /v1/export``: the same stream, snapshot and CSV/GeoJSON encoding, refused
    (before the first byte) to whom the export is refused."""
    listing.authorize_export(principal)
    return export_stream(conn, principal, where, now=now, fmt=FORMATS[fmt])
