"""The supervisors' list and export of reports: who sees what, filters checked, keyset pages.

Visibility is the one rule of ``Principal.sees_report``: inspectors list their own reports,
supervisors their jurisdiction subtree, admins everything. A ``jurisdiction`` filter narrows that
view to a subtree; a code outside the caller's view is refused 403 ``jurisdiction.out_of_scope``
(as ``PUT /v1/reports`` refuses it), an unknown code 400 ``jurisdiction.unknown``. Jurisdictions
are public reference data, so the 403 reveals nothing.

Pages are ordered by (updated_at DESC, id DESC) and the cursor is the last (updated_at, id) a
page ended on. A report inserted while a client pages has a newer ``updated_at`` than any cursor
it holds, so it lands before the cursor and never shifts a later page: no report that existed
when the listing began is repeated or skipped. (A report *changed* mid-listing moves to the head
like any edit; a client catches up with ``updated_since``.) The caller runs both queries of a page
in one REPEATABLE READ transaction, so a page and its cursor come from one snapshot.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg

from fieldsync import errors
from fieldsync.db import listing as q
from fieldsync.db import reference
from fieldsync.domain.filters import ReportFilter
from fieldsync.domain.principals import Principal, Role, require_role
from fieldsync.domain.views import ReportView
from fieldsync.services import views

MAX_LIMIT = 500
EXPORT_BATCH = 1000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def encode_cursor(position: q.Position) -> str:
    """``<microseconds since epoch>.<uuid hex>``, base64url: opaque to clients, exact to the µs."""
    micros = (position.updated_at - _EPOCH) // dt.timedelta(microseconds=1)
    raw = f"{micros}.{position.id.hex}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str | None) -> q.Position | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        micros, _, hex_id = raw.partition(".")
        if not micros.lstrip("-").isdigit() or len(micros) > 20 or len(hex_id) != 32:
            raise ValueError("malformed")
        updated_at = _EPOCH + dt.timedelta(microseconds=int(micros))
        return q.Position(updated_at, uuid.UUID(hex=hex_id))
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise errors.InvalidInput("the cursor is not one this server issued", field="cursor") from None


async def resolve_filter(
    conn: asyncpg.Connection, principal: Principal, where: ReportFilter, *, jurisdiction: str | None
) -> ReportFilter:
    """The filter with ``jurisdiction`` resolved to its subtree path, checked against the caller's
    view, and every ``category`` checked against the reference data."""
    if where.categories:
        unknown = sorted(set(where.categories) - await q.known_categories(conn, list(where.categories)))
        if unknown:
            raise errors.InvalidInput(f"no category with code {unknown[0]!r}", field="category")
    if jurisdiction is None:
        return where
    row = await reference.get_jurisdiction(conn, jurisdiction)
    if row is None:
        raise errors.JurisdictionUnknown(f"no jurisdiction with code {jurisdiction}", field="jurisdiction")
    if not principal.sees(row["path"]):
        raise errors.JurisdictionOutOfScope(
            f"jurisdiction {jurisdiction} lies outside the caller's scope", field="jurisdiction"
        )
    return dataclasses.replace(where, jurisdiction_path=row["path"])


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    items: list[ReportView]
    next_cursor: str | None


async def list_reports(
    conn: asyncpg.Connection,
    principal: Principal,
    where: ReportFilter,
    *,
    now: dt.datetime,
    cursor: str | None,
    limit: int,
) -> Page:
    """One page of visible, matching reports, newest change first; run it in a snapshot."""
    after = decode_cursor(cursor)
    positions = await q.list_positions(
        conn, principal.visibility, where, now=now, after=after, limit=min(limit, MAX_LIMIT) + 1
    )
    more = len(positions) > limit
    positions = positions[:limit]
    items = await views.read_reports(conn, principal, [p.id for p in positions], now=now)
    return Page(items=items, next_cursor=encode_cursor(positions[-1]) if more else None)


def authorize_export(principal: Principal) -> None:
    """Exports are for supervisors and admins (SPEC §3); an inspector's device has the pull feed."""
    require_role(principal, Role.SUPERVISOR, Role.ADMIN)


def export_reports(
    conn: asyncpg.Connection,
    principal: Principal,
    where: ReportFilter,
    *,
    now: dt.datetime,
    batch_size: int | None = None,
) -> AsyncIterator[list[asyncpg.Record]]:
    """Every visible, matching report as flat export rows, in list order, a batch at a time.
    Runs inside the caller's transaction (REPEATABLE READ: one snapshot for the whole file).

    Not read models: an export of a hundred thousand reports would spend its time building
    them. Each row is a plain sequence of the values of ``api.schemas.listing.EXPORT_COLUMNS``,
    in that order (``tests/api/test_export.py`` holds the SQL and the columns equal)."""
    authorize_export(principal)
    return q.export_batches(
        conn, principal.visibility, where, now=now, batch_size=batch_size or EXPORT_BATCH
    )
