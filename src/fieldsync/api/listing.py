"""The supervisors' list (``GET /v1/reports``) and export (``GET /v1/export``) of reports.

Both take the same filters, read by one dependency (:func:`provide_report_filter`) so that they
cannot drift apart: the export is exactly the list, every page of it, in the list's order.

The export streams: a server-side cursor in a REPEATABLE READ read-only transaction (one snapshot
for the whole file) yields 1000 rows at a time, each batch is encoded and handed to the ASGI
server, which waits for the socket before asking for the next. Memory holds one batch, whatever
the number of reports. CSV starts with a UTF-8 BOM (Excel and WPS then read Chinese correctly),
uses CRLF and quotes as RFC 4180 asks, and neutralises text cells that a spreadsheet would run as
a formula (a leading ``=``, ``+``, ``-``, ``@``, tab or CR gets a ``'``). GeoJSON is an RFC 7946
FeatureCollection of points, [longitude, latitude], with flat properties, which QGIS opens as a
layer. Once the first byte is sent the status cannot change: a failure mid-stream cuts the body
short, so a truncated file never looks complete — the GeoJSON does not parse and the CSV lacks
rows that the list would show. A client that hangs up mid-file has its transaction rolled back
and its cursor closed before the connection returns to the pool.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import math
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Annotated, Any, Literal

import anyio
import msgspec
from litestar import Controller, get
from litestar.background_tasks import BackgroundTask
from litestar.di import Provide
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation
from litestar.params import Parameter
from litestar.response import Stream

from fieldsync import errors
from fieldsync.api.deps import Connection
from fieldsync.api.problems import problem_responses
from fieldsync.api.reports import report_read
from fieldsync.api.schemas.common import (
    CATEGORY_PATTERN,
    CURSOR_PATTERN,
    JURISDICTION_PATTERN,
    NO_NUL,
    Limit,
    exact,
)
from fieldsync.api.schemas.listing import EXPORT_COLUMNS, ReportPage, feature_collection_schema
from fieldsync.api.schemas.reports import Status
from fieldsync.db.transactions import snapshot
from fieldsync.domain.filters import BBox, Near, ReportFilter
from fieldsync.domain.principals import Principal
from fieldsync.domain.timeframes import parse_instant
from fieldsync.services import listing

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
MAX_TERMS = 8
MAX_RADIUS_M = 1_000_000.0
CSV_MEDIA_TYPE = "text/csv"  # Litestar adds "; charset=utf-8" to text types
GEOJSON_MEDIA_TYPE = "application/geo+json"
BOM = "\ufeff".encode()
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Kind = Literal["hazard", "disaster", "accident"]
Grade = Literal["general", "major"]
CategoryCode = Annotated[str, Parameter(pattern=CATEGORY_PATTERN)]
_DEGREES = r"-?[0-9]{1,3}(\.[0-9]{1,15})?"
BBOX_PATTERN = exact(rf"{_DEGREES}(,{_DEGREES}){{3}}")
NEAR_PATTERN = exact(rf"{_DEGREES},{_DEGREES},[0-9]{{1,7}}(\.[0-9]{{1,6}})?")
TimeText = Annotated[str | None, Parameter(max_length=64, pattern=NO_NUL)]
_TIME_HELP = "an RFC 3339 date-time with offset, or a date (midnight China Standard Time, as GET /v1/stats reads it)"

# --- reading the wire filters -------------------------------------------------------------------


def _numbers(text: str, *, field: str, count: int, shape: str) -> list[float]:
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != count:
        raise errors.InvalidInput(f"{field} must be {shape}: {count} comma-separated numbers", field=field)
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise errors.InvalidInput(f"{field} must be {shape}: {count} comma-separated numbers", field=field) from None
    if not all(math.isfinite(value) for value in values):
        raise errors.InvalidInput(f"{field} must be finite numbers", field=field)
    return values


def _check_lat_lon(lat: float, lon: float, *, field: str) -> None:
    if not -90 <= lat <= 90:
        raise errors.InvalidInput(f"{field}: latitude {lat} is outside -90..90", field=field)
    if not -180 <= lon <= 180:
        raise errors.InvalidInput(f"{field}: longitude {lon} is outside -180..180", field=field)


def parse_bbox(text: str) -> BBox:
    """``min_lon,min_lat,max_lon,max_lat`` (the RFC 7946 bbox order), WGS 84 degrees."""
    min_lon, min_lat, max_lon, max_lat = _numbers(
        text, field="bbox", count=4, shape="min_lon,min_lat,max_lon,max_lat"
    )
    _check_lat_lon(min_lat, min_lon, field="bbox")
    _check_lat_lon(max_lat, max_lon, field="bbox")
    if min_lat > max_lat:
        raise errors.InvalidInput("bbox: min_lat is greater than max_lat", field="bbox")
    if min_lon > max_lon:
        raise errors.InvalidInput(
            "bbox: min_lon is greater than max_lon (boxes across the antimeridian are not supported)", field="bbox"
        )
    return BBox(min_lon, min_lat, max_lon, max_lat)


def parse_near(text: str) -> Near:
    """``lat,lon,radius_m``: within ``radius_m`` metres (great circle) of a WGS 84 point."""
    lat, lon, radius_m = _numbers(text, field="near", count=3, shape="lat,lon,radius_m")
    _check_lat_lon(lat, lon, field="near")
    if not 0 < radius_m <= MAX_RADIUS_M:
        raise errors.InvalidInput(f"near: radius_m must be above 0 and at most {MAX_RADIUS_M:.0f}", field="near")
    return Near(lat, lon, radius_m)


def parse_time(text: str | None, *, field: str) -> dt.datetime | None:
    """A time filter (``domain.timeframes``), in UTC."""
    if text is None:
        return None
    try:
        return parse_instant(text).astimezone(dt.UTC)
    except ValueError as exc:
        raise errors.InvalidInput(
            f"{field} must be {_TIME_HELP}, e.g. 2026-06-01T08:00:00+08:00 or 2026-06-01 ({exc})", field=field
        ) from None


def search_terms(text: str | None) -> tuple[str, ...]:
    """Whitespace-separated terms, all of which must occur (in title or description)."""
    if text is None:
        return ()
    terms = tuple(dict.fromkeys(text.split()))
    if len(terms) > MAX_TERMS:
        raise errors.InvalidInput(f"q may hold at most {MAX_TERMS} terms", field="q")
    return terms


async def provide_report_filter(
    principal: Principal,
    conn: Connection,
    kind: Annotated[list[Kind] | None, Parameter(description="Report kind; repeat for several")] = None,
    category: Annotated[
        list[CategoryCode] | None, Parameter(description="Category code (GET /v1/categories); repeat for several")
    ] = None,
    status: Annotated[list[Status] | None, Parameter(description="Workflow status; repeat for several")] = None,
    grade: Annotated[list[Grade] | None, Parameter(description="Hazard grade; repeat for several")] = None,
    jurisdiction: Annotated[
        str | None,
        Parameter(
            pattern=JURISDICTION_PATTERN,
            description="Only this jurisdiction's subtree; 403 jurisdiction.out_of_scope outside the caller's view",
        ),
    ] = None,
    observed_from: Annotated[TimeText, Parameter(description=f"observed_at at or after: {_TIME_HELP}")] = None,
    observed_to: Annotated[TimeText, Parameter(description=f"observed_at before (exclusive): {_TIME_HELP}")] = None,
    updated_since: Annotated[TimeText, Parameter(description=f"updated_at at or after: {_TIME_HELP}")] = None,
    bbox: Annotated[
        str | None,
        Parameter(
            max_length=200, pattern=BBOX_PATTERN,
            description="min_lon,min_lat,max_lon,max_lat in WGS 84 degrees (min ≤ max), e.g. 112.2,36.4,112.4,36.6",
        ),
    ] = None,
    near: Annotated[
        str | None,
        Parameter(
            max_length=200, pattern=NEAR_PATTERN,
            description=f"lat,lon,radius_m: within radius_m metres (great circle, 0 < radius_m ≤ {MAX_RADIUS_M:.0f}), "
            "e.g. 36.5,112.3,5000",
        ),
    ] = None,
    q: Annotated[
        str | None,
        Parameter(
            min_length=1, max_length=200, pattern=NO_NUL,
            description=f"Text in title or description (Chinese included); up to {MAX_TERMS} space-separated "
            "terms, all must occur",
        ),
    ] = None,
    overdue: Annotated[
        bool | None, Parameter(description="true: rectifying past its deadline; false: all others")
    ] = None,
    listed: Annotated[bool | None, Parameter(description="Under listed supervision (挂牌督办)")] = None,
    missing_media: Annotated[
        bool | None, Parameter(description="true: some referenced photo has not been uploaded")
    ] = None,
    has_duplicates: Annotated[
        bool | None,
        Parameter(description="true: possible_duplicates is not empty (unmerged near-duplicate candidates)"),
    ] = None,
) -> ReportFilter:
    where = ReportFilter(
        kinds=tuple(kind or ()),
        categories=tuple(category or ()),
        statuses=tuple(status or ()),
        grades=tuple(grade or ()),
        observed_from=parse_time(observed_from, field="observed_from"),
        observed_to=parse_time(observed_to, field="observed_to"),
        updated_since=parse_time(updated_since, field="updated_since"),
        bbox=parse_bbox(bbox) if bbox is not None else None,
        near=parse_near(near) if near is not None else None,
        terms=search_terms(q),
        overdue=overdue,
        listed=listed,
        missing_media=missing_media,
        has_duplicates=has_duplicates,
    )
    return await listing.resolve_filter(conn, principal, where, jurisdiction=jurisdiction)


FILTER_DEPENDENCIES = {"where": Provide(provide_report_filter)}

# --- the list -----------------------------------------------------------------------------------


class ReportListController(Controller):
    path = "/v1/reports"
    tags = ["review"]
    security = SECURITY
    dependencies = FILTER_DEPENDENCIES

    @get(
        "/",
        summary="Reports the caller may see, filtered, newest change first, in keyset pages",
        description=(
            "Inspectors list their own reports, supervisors their jurisdiction subtree, admins all. "
            "Filters combine with AND; a repeated parameter means any of its values. Pages follow "
            "(updated_at, id) descending; pass `next_cursor` back as `cursor` for the next page "
            "(null: no more). A report created while paging never shifts a later page."
        ),
        responses=problem_responses(400, 401, 403),
    )
    async def list_reports(
        self,
        principal: Principal,
        conn: Connection,
        now: dt.datetime,
        where: ReportFilter,
        cursor: Annotated[
            str | None,
            Parameter(max_length=200, pattern=CURSOR_PATTERN, description="next_cursor of the previous page"),
        ] = None,
        limit: Limit = 100,
    ) -> ReportPage:
        async with snapshot(conn):
            page = await listing.list_reports(conn, principal, where, now=now, cursor=cursor, limit=limit)
        return ReportPage(items=[report_read(view) for view in page.items], next_cursor=page.next_cursor)


# --- the export ---------------------------------------------------------------------------------


# The export rows' columns come in EXPORT_COLUMNS order (db.listing selects them so); encoding
# works on positions, converting only the few columns that need it: this runs 100k times.
_KEYS = tuple(column.key for column in EXPORT_COLUMNS)
_TIME_AT = tuple(i for i, column in enumerate(EXPORT_COLUMNS) if column.type == "time")
_TEXT_AT = tuple(i for i, column in enumerate(EXPORT_COLUMNS) if column.type == "text")
_BOOLEAN_AT = tuple(i for i, column in enumerate(EXPORT_COLUMNS) if column.type == "boolean")
_FORMULA_FIRST = frozenset(_FORMULA_STARTS)
_ID, _LON, _LAT = _KEYS.index("id"), _KEYS.index("lon"), _KEYS.index("lat")


def _time(value: dt.datetime) -> str:
    """RFC 3339 in UTC, as the JSON API writes times (asyncpg answers timestamptz in UTC)."""
    return value.isoformat().replace("+00:00", "Z")


def _csv_values(row: Sequence[Any]) -> list[Any]:
    """One CSV row: times as RFC 3339 UTC, booleans true/false (Excel reads them as TRUE/FALSE),
    free text that a spreadsheet would run as a formula prefixed with ``'``; numbers, ids and
    nulls are left to the csv writer (repr, str, empty)."""
    values = list(row)
    for i in _TIME_AT:
        if values[i] is not None:
            values[i] = _time(values[i])
    for i in _TEXT_AT:
        text = values[i]
        if text and text[0] in _FORMULA_FIRST:
            values[i] = "'" + text
    for i in _BOOLEAN_AT:
        values[i] = "true" if values[i] else "false"
    return values


def csv_chunk(rows: list[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(_csv_values(row) for row in rows)
    return buffer.getvalue().encode()


def csv_head() -> bytes:
    """The BOM and the header row."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([column.header for column in EXPORT_COLUMNS])
    return BOM + buffer.getvalue().encode()


# Decimal (the loss counts) as JSON numbers; UUIDs and UTC datetimes encode as the API writes them.
_JSON = msgspec.json.Encoder(decimal_format="number")


def geojson_chunk(rows: list[Sequence[Any]], *, first: bool) -> bytes:
    features = b",".join(
        _JSON.encode({
            "type": "Feature",
            "id": row[_ID],
            "geometry": {"type": "Point", "coordinates": [row[_LON], row[_LAT]]},
            "properties": dict(zip(_KEYS, row, strict=True)),
        })
        for row in rows
    )
    return features if first else b"," + features


@dataclasses.dataclass(frozen=True, slots=True)
class _Format:
    media_type: str
    extension: str
    head: bytes
    tail: bytes
    chunk: Callable[[list[Sequence[Any]], bool], bytes]


FORMATS: dict[str, _Format] = {
    "csv": _Format(CSV_MEDIA_TYPE, "csv", csv_head(), b"", lambda rows, first: csv_chunk(rows)),
    "geojson": _Format(
        GEOJSON_MEDIA_TYPE, "geojson", b'{"type":"FeatureCollection","features":[', b"]}\n",
        lambda rows, first: geojson_chunk(rows, first=first),
    ),
}


async def export_stream(
    conn: Connection, principal: Principal, where: ReportFilter, *, now: dt.datetime, fmt: _Format
) -> AsyncGenerator[bytes, None]:
    """The file, chunk by chunk, from one read-only snapshot.

    The transaction is ended by hand, shielded: a client that hangs up cancels the stream, and
    an ``async with`` block would then see its ROLLBACK cancelled too and hand the connection
    back to the pool mid-transaction. Read-only, so ROLLBACK is also the normal end.
    """
    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
    await transaction.start()
    try:
        yield fmt.head
        first = True
        async for rows in listing.export_reports(conn, principal, where, now=now):
            yield fmt.chunk(rows, first)
            first = False
        yield fmt.tail
    finally:
        with anyio.CancelScope(shield=True):
            await transaction.rollback()


async def _close(body: AsyncGenerator[bytes, None]) -> None:
    # A coroutine function: Litestar runs any other background callable in a worker thread.
    await body.aclose()


@dataclasses.dataclass
class _ExportOperation(Operation):
    """Documents the two bodies the export streams, chosen by ``format``."""

    def __post_init__(self) -> None:
        self.responses = {
            **(self.responses or {}),
            "200": OpenAPIResponse(
                description=(
                    "format=csv: UTF-8 with BOM, a header row of Chinese and English column names; "
                    "format=geojson: an RFC 7946 FeatureCollection of points. Sent as an attachment."
                ),
                content={
                    "text/csv": OpenAPIMediaType(schema={"type": "string"}),  # type: ignore[arg-type]  # a JSON Schema dict, emitted as given
                    GEOJSON_MEDIA_TYPE: OpenAPIMediaType(schema=feature_collection_schema()),  # type: ignore[arg-type]  # a JSON Schema dict, emitted as given
                },
            ),
        }


class ExportController(Controller):
    path = "/v1/export"
    tags = ["review"]
    security = SECURITY
    dependencies = FILTER_DEPENDENCIES

    @get(
        "/",
        summary="Every report the list would show for these filters, as CSV or GeoJSON, streamed",
        description="Supervisors and admins; an inspector gets 403.",
        operation_class=_ExportOperation,
        responses=problem_responses(400, 401, 403),
    )
    async def export(
        self,
        principal: Principal,
        conn: Connection,
        now: dt.datetime,
        where: ReportFilter,
        fmt: Annotated[
            Literal["csv", "geojson"], Parameter(query="format", description="csv (default) or geojson")
        ] = "csv",
    ) -> Stream:
        listing.authorize_export(principal)
        chosen = FORMATS[fmt]
        filename = f"fieldsync-reports-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.{chosen.extension}"
        body = export_stream(conn, principal, where, now=now, fmt=chosen)
        return Stream(
            body,
            media_type=chosen.media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
            # A client that hangs up leaves the generator suspended at a yield, its transaction open;
            # close it (ROLLBACK, cursor gone) before the connection goes back to the pool.
            background=BackgroundTask(_close, body),
        )
