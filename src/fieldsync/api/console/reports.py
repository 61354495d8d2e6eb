"""The review queue, a report's page with its action forms, comments, and a disaster's chain.

Actions follow POST-redirect-GET: ``POST /console/reports/{id}/transitions`` applies the action
through the workflow service and answers 303 back to the report, with the outcome named in the
query (``?done=verify``, ``?error=<code>&field=…``, ``?stale=<current version>``) and shown from
the message catalogue, never from the URL's text. A stale ``version`` changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import Parameter

from fieldsync import errors
from fieldsync.api.console import data, messages
from fieldsync.api.console.present import Names
from fieldsync.api.console.security import require_csrf
from fieldsync.api.console.web import (
    drop_empty_filters,
    error_message,
    filter_pairs,
    language,
    render,
    see_other,
    with_query,
)
from fieldsync.api.deps import Connection
from fieldsync.api.runtime import Runtime
from fieldsync.domain import workflow as rules
from fieldsync.domain.principals import Principal
from fieldsync.domain.stats import COUNTED_STATUSES, REPORTING_TZ

PAGE_SIZE = 50
STATUSES = (*COUNTED_STATUSES, "merged")
KNOWN_EVENTS = frozenset({*rules.ACTIONS, "comment", "created", "revised", "media_access"})  # services' audit actions
TEXT_FIELDS = ("note", "responsible_person", "measures", "contingency_plan", "level")


async def names_for(conn: Connection, principal: Principal, lang: str) -> tuple[Names, list[data.Place]]:
    places = await data.places_in_view(conn, principal)
    return Names.of(lang, places, await data.categories(conn)), places


def selected_filters(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    chosen: dict[str, list[str]] = {name: [] for name in ("kind", "category", "status", "grade", "jurisdiction",
                                                          "observed_from", "observed_to", "updated_since", "bbox",
                                                          "near", "q", "overdue", "listed", "missing_media",
                                                          "has_duplicates")}
    for key, value in filter_pairs(request):
        chosen[key].append(value)
    return chosen


FILTERS = {"where": Provide(data.report_filter)}


class ConsoleReportsController(Controller):
    path = "/console"
    dependencies = FILTERS

    @get("/reports", name="console:queue", before_request=drop_empty_filters)
    async def queue(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection, now: dt.datetime,
        where: data.ReportFilter,
        cursor: Annotated[str | None, Parameter(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = PAGE_SIZE,
    ) -> Response[str]:
        page = await data.queue_page(conn, principal, where, now=now, cursor=cursor, limit=limit)
        names, places = await names_for(conn, principal, language(request))
        pairs = filter_pairs(request) + ([("limit", str(limit))] if limit != PAGE_SIZE else [])
        return render(
            request, "queue.html", page=page, names=names, places=places, selected=selected_filters(request),
            statuses=STATUSES, cursor=cursor,
            next_url=with_query("/console/reports", pairs, cursor=page.next_cursor) if page.next_cursor else None,
            first_url=with_query("/console/reports", pairs), map_url=with_query("/console/map", pairs),
            csv_url=with_query("/console/export", pairs, format="csv"),
            geojson_url=with_query("/console/export", pairs, format="geojson"),
        )

    @get("/reports/{report_id:uuid}", name="console:report")
    async def report(
        self, request: Request[Any, Any, Any], report_id: uuid.UUID, principal: Principal, conn: Connection,
        now: dt.datetime,
    ) -> Response[str]:
        detail = await data.report_detail(conn, principal, report_id, now=now)
        lang = language(request)
        names, _ = await names_for(conn, principal, lang)
        flash, kind = outcome(request, messages.translator(lang), lang)
        pairs, singles = photo_pairs(detail.report.media)
        losses = [(k, v) for k, v in msgspec_items(detail.report.losses) if v is not None]
        return render(
            request, "report.html", detail=detail, names=names, flash=flash, flash_kind=kind, pairs=pairs,
            singles=singles, losses=losses, known_actions=KNOWN_EVENTS,
        )

    @post("/reports/{report_id:uuid}/transitions", name="console:transition", request_max_body_size=48 * 1024 * 1024)
    async def transition(
        self, request: Request[Any, Any, Any], report_id: uuid.UUID, principal: Principal, conn: Connection,
        runtime: Runtime, now: dt.datetime,
    ) -> Response[Any]:
        form = await request.form()
        require_csrf(request, form.get("csrf_token"))
        back = f"/console/reports/{report_id}"
        try:
            fields = await transition_fields(conn, principal, runtime, form, now=now)
            request_ = data.transition_request(fields)
            await data.apply_transition(conn, principal, report_id, request_, now=now)
        except errors.StaleVersion as exc:
            return see_other(with_query(back, stale=exc.extra.get("version")))
        except errors.NotFound:
            raise  # outside the caller's view: the 404 page, as the API answers 404
        except errors.FieldsyncError as exc:
            return see_other(with_query(back, error=exc.code, field=exc.extra.get("field")))
        return see_other(with_query(back, done=fields["action"]))

    @post("/reports/{report_id:uuid}/comments", name="console:comment")
    async def comment(
        self, request: Request[Any, Any, Any], report_id: uuid.UUID, principal: Principal, conn: Connection,
        now: dt.datetime,
    ) -> Response[Any]:
        form = await request.form()
        require_csrf(request, form.get("csrf_token"))
        back = f"/console/reports/{report_id}"
        try:
            body = data.comment_body(str(form.get("body") or "").strip())
            await data.add_comment(conn, principal, report_id, body=body, now=now)
        except errors.InvalidInput as exc:
            return see_other(with_query(back, error=exc.code, field="body"))
        return see_other(with_query(back, done="comment"))

    @get("/incidents/{incident_id:uuid}", name="console:incident")
    async def incident(
        self, request: Request[Any, Any, Any], incident_id: uuid.UUID, principal: Principal, conn: Connection,
        now: dt.datetime,
    ) -> Response[str]:
        chain = await data.incident(conn, principal, incident_id, now=now)
        names, _ = await names_for(conn, principal, language(request))
        return render(request, "incident.html", chain=chain, names=names)


def msgspec_items(struct: Any) -> list[tuple[str, Any]]:
    if struct is None:
        return []
    return [(name, getattr(struct, name)) for name in struct.__struct_fields__]


def photo_pairs(media: list[Any]) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """Before/after photos side by side (in order; the first scene photos stand in for a missing
    ``before``), and every other photo on its own."""
    after = [m for m in media if m.role == "after"]
    before = [m for m in media if m.role == "before"] or [m for m in media if m.role == "photo"][: len(after)]
    if not after:
        return [], list(media)
    paired = [(before[i] if i < len(before) else None, a) for i, a in enumerate(after)]
    used = {id(m) for pair in paired for m in pair if m is not None}
    return paired, [m for m in media if id(m) not in used]


async def transition_fields(
    conn: Connection, principal: Principal, runtime: Runtime, form: Any, *, now: dt.datetime
) -> dict[str, Any]:
    """The form as the API's JSON body: empty inputs left out, times in China Standard Time."""
    fields: dict[str, Any] = {"action": form.get("action"), "version": form.get("version")}
    for name in TEXT_FIELDS:
        value = str(form.get(name) or "").strip()
        if value:
            fields[name] = value
    if into := str(form.get("into") or "").strip():
        fields["into"] = into
    if funds := str(form.get("funds_cny") or "").strip():
        fields["funds_cny"] = funds
    if deadline := str(form.get("deadline") or "").strip():
        fields["deadline"] = local_time(deadline)
    photo = form.get("after_photo")
    if fields["action"] == "submit_rectification" and isinstance(photo, UploadFile) and photo.filename:
        sha256 = await data.store_photo(conn, principal, runtime, photo, now=now)
        fields["media"] = [{"sha256": sha256, "role": "after"}]
    return fields


def local_time(text: str) -> str:
    """A ``datetime-local`` value (no offset) read as China Standard Time, the bureaus' clock."""
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise errors.InvalidInput("deadline must be a date and time", field="deadline") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=REPORTING_TZ)
    return parsed.isoformat()


def outcome(request: Request[Any, Any, Any], t: messages.Translator, lang: str) -> tuple[str | None, str]:
    """The message for the outcome a redirect named (catalogue text only; the URL supplies codes)."""
    query = request.query_params
    if (stale := query.get("stale")) is not None:
        return t("flash.stale", version=stale if stale.isdigit() else "?"), "error"
    if (code := query.get("error")) is not None:
        message = error_message(t, lang, code[:64])
        field = query.get("field")
        if field and messages.has(lang, f"form.{field}"):
            message += t("flash.field", field=t(f"form.{field}"))
        return t("flash.error", message=message), "error"
    if (done := query.get("done")) is not None:
        if done == "comment":
            return t("flash.comment_ok"), "ok"
        if done in rules.ACTIONS:
            return t("flash.ok", action=t(f"action.{done}")), "ok"
    return None, ""
