"""SQL for the supervisors' list and export: one WHERE clause for both, built from bound parameters.

Every filter value reaches PostgreSQL as a ``$n`` parameter; the SQL text is assembled only from
fixed fragments, so no value is ever interpolated. Each predicate is written in the exact form of
the index meant to serve it (0007_review.sql):

- text: ``(r.title || ' ' || r.description) ILIKE $n`` per search term → ``reports_text_trgm_idx``
  (pg_trgm GIN). A term needs 3 characters to yield a trigram; shorter terms are still exact
  (the ILIKE is always evaluated), they just cannot narrow through the index (ADR 0006).
- bbox and near: ``point(r.lon, r.lat) <@ box(...)`` → ``reports_point_idx`` (GiST); ``near``
  adds the exact haversine distance after that box prefilter.
- order and keyset: ``(r.updated_at, r.id) < ($t, $id)`` with ``ORDER BY r.updated_at DESC,
  r.id DESC`` → ``reports_list_idx``.
- overdue: ``db.rules.overdue_sql`` with the application's clock (never SQL ``now()``, so an
  injected clock decides) → ``reports_overdue_idx``.

``has_duplicates`` is exactly "the read model's ``possible_duplicates`` is not empty": some stored
near-duplicate candidate that is not merged (``db.duplicates.has_duplicates_sql``, kept next to
the read model's subquery so the two cannot disagree).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from fieldsync.db.duplicates import has_duplicates_sql
from fieldsync.db.rules import overdue_sql, possessed_sql
from fieldsync.domain.evidence import EARTH_RADIUS_M
from fieldsync.domain.filters import BBox, ReportFilter, near_box
from fieldsync.domain.principals import Visibility


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    """A keyset position: the last (updated_at, id) a page ended on."""

    updated_at: dt.datetime
    id: uuid.UUID


class _Params:
    """Collects bound values; ``add`` answers the placeholder to write into the SQL text."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


def like_pattern(term: str) -> str:
    """``%term%`` with LIKE's metacharacters (backslash, %, _) escaped: the term matches literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _box(params: _Params, box: BBox) -> str:
    return (
        f"point(r.lon, r.lat) <@ box(point({params.add(box.min_lon, 'float8')}, {params.add(box.min_lat, 'float8')}), "
        f"point({params.add(box.max_lon, 'float8')}, {params.add(box.max_lat, 'float8')}))"
    )


def _flag(predicate: str, wanted: bool) -> str:
    """The predicate, or its negation; every predicate passed here is never NULL."""
    return predicate if wanted else f"NOT ({predicate})"


def where_clause(
    params: _Params,
    visibility: Visibility,
    where: ReportFilter,
    *,
    now: dt.datetime,
    after: Position | None = None,
) -> str:
    """The WHERE clause (without the keyword) over ``reports r``; values go into ``params``."""
    conditions: list[str] = []
    if visibility.author_id is not None:
        conditions.append(f"r.author_id = {params.add(visibility.author_id, 'uuid')}")
    prefix = where.jurisdiction_path or visibility.path_prefix
    if prefix != "/":
        conditions.append(
            "r.jurisdiction IN (SELECT j.code FROM jurisdictions j "
            f"WHERE j.path LIKE {params.add(prefix + '%', 'text')})"
        )
    for column, values in (
        ("kind", where.kinds), ("category", where.categories), ("status", where.statuses), ("grade", where.grades),
    ):
        if values:
            conditions.append(f"r.{column} = ANY({params.add(list(values), 'text[]')})")
    if where.observed_from is not None:
        conditions.append(f"r.observed_at >= {params.add(where.observed_from, 'timestamptz')}")
    if where.observed_to is not None:
        conditions.append(f"r.observed_at < {params.add(where.observed_to, 'timestamptz')}")
    if where.updated_since is not None:
        conditions.append(f"r.updated_at >= {params.add(where.updated_since, 'timestamptz')}")
    if where.bbox is not None:
        conditions.append(_box(params, where.bbox))
    if where.near is not None:
        conditions.append(_box(params, near_box(where.near)))
        lat = params.add(where.near.lat, "float8")
        lon = params.add(where.near.lon, "float8")
        conditions.append(
            f"2 * {EARTH_RADIUS_M!r} * asin(least(1.0, sqrt("
            f"power(sin(radians(r.lat - {lat}) / 2), 2) + "
            f"cos(radians({lat})) * cos(radians(r.lat)) * power(sin(radians(r.lon - {lon}) / 2), 2)"
            f"))) <= {params.add(where.near.radius_m, 'float8')}"
        )
    for term in where.terms:
        conditions.append(f"(r.title || ' ' || r.description) ILIKE {params.add(like_pattern(term), 'text')}")
    if where.overdue is not None:
        conditions.append(_flag(overdue_sql("r", params.add(now, "timestamptz")), where.overdue))
    if where.listed is not None:
        conditions.append(_flag("r.listed_level IS NOT NULL", where.listed))
    if where.missing_media is not None:
        missing = (
            f"EXISTS (SELECT 1 FROM report_media rm WHERE rm.report_id = r.id AND NOT {possessed_sql('rm')})"
        )
        conditions.append(_flag(missing, where.missing_media))
    if where.has_duplicates is not None:
        viewer = (params.add(visibility.author_id, 'uuid'), params.add(visibility.path_prefix, 'text'))
        conditions.append(_flag(has_duplicates_sql(*viewer), where.has_duplicates))
    if after is not None:
        conditions.append(
            f"(r.updated_at, r.id) < ({params.add(after.updated_at, 'timestamptz')}, {params.add(after.id, 'uuid')})"
        )
    return " AND ".join(conditions) or "true"


async def list_positions(
    conn: asyncpg.Connection,
    visibility: Visibility,
    where: ReportFilter,
    *,
    now: dt.datetime,
    after: Position | None,
    limit: int,
) -> list[Position]:
    """Up to ``limit`` matching reports after ``after``, newest change first."""
    params = _Params()
    clause = where_clause(params, visibility, where, now=now, after=after)
    rows = await conn.fetch(
        f"""
        SELECT r.id, r.updated_at FROM reports r
        WHERE {clause}
        ORDER BY r.updated_at DESC, r.id DESC
        LIMIT {params.add(limit, 'int')}
        """,
        *params.values,
    )
    return [Position(row["updated_at"], row["id"]) for row in rows]


async def known_categories(conn: asyncpg.Connection, codes: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT DISTINCT code FROM categories WHERE code = ANY($1::text[])", codes)
    return {row["code"] for row in rows}


# The export's flat projection: one column per CSV column / GeoJSON property, in the order of
# ``api.schemas.listing.EXPORT_COLUMNS`` (the encoder works on positions; a test holds them equal).
# Counts are numeric (exact, any JSON number casts), amounts and coordinates float8.
_EXPORT_SELECT = """
    SELECT r.id, r.kind, r.category, c.name_zh AS category_name, r.title, r.description,
           r.jurisdiction, j.name_zh AS jurisdiction_name, r.lat, r.lon, r.accuracy_m,
           (r.body #>> '{location,altitude_m}')::float8 AS altitude_m,
           r.body #>> '{location,address}' AS address,
           r.body ->> 'observed_at' AS observed_at, r.received_at, r.updated_at,
           u.username AS author, r.version, r.status, r.severity, r.grade,
           r.body #>> '{enterprise,name}' AS enterprise_name, r.credit_code,
           r.body #>> '{enterprise,industry}' AS industry,
           r.incident_id, r.stage, r.body ->> 'as_of' AS as_of,
           coalesce(r.body #>> '{losses,deaths}', r.body ->> 'deaths')::numeric AS deaths,
           (r.body #>> '{losses,missing}')::numeric AS missing,
           coalesce(r.body #>> '{losses,injured}', r.body ->> 'injured')::numeric AS injured,
           (r.body #>> '{losses,affected_people}')::numeric AS affected_people,
           (r.body #>> '{losses,evacuated_people}')::numeric AS evacuated_people,
           (r.body #>> '{losses,houses_collapsed}')::numeric AS houses_collapsed,
           (r.body #>> '{losses,houses_damaged}')::numeric AS houses_damaged,
           (r.body #>> '{losses,crop_area_ha}')::float8 AS crop_area_ha,
           coalesce(r.body #>> '{losses,direct_loss_cny}', r.body ->> 'direct_loss_cny')::float8 AS direct_loss_cny,
           r.rectification ->> 'responsible_person' AS responsible_person,
           r.rectification_deadline, r.rectified_at, r.closed_at,
           r.listed_level, r.listed_deadline,
           {OVERDUE} AS overdue,
           coalesce(mc.media_count, 0) AS media_count, coalesce(mc.missing_count, 0) AS missing_media_count,
           r.duplicate_of
    FROM reports r
    JOIN jurisdictions j ON j.code = r.jurisdiction
    JOIN users u ON u.id = r.author_id
    LEFT JOIN categories c ON c.kind = r.kind AND c.code = r.category
    LEFT JOIN LATERAL (
        SELECT count(*) AS media_count,
               count(DISTINCT rm.sha256) FILTER (WHERE NOT {POSSESSED}) AS missing_count
        FROM report_media rm
        WHERE rm.report_id = r.id
    ) mc ON true
"""


async def export_batches(
    conn: asyncpg.Connection,
    visibility: Visibility,
    where: ReportFilter,
    *,
    now: dt.datetime,
    batch_size: int,
) -> AsyncIterator[list[asyncpg.Record]]:
    """Every matching report in list order, ``batch_size`` rows at a time, through a server-side
    cursor: memory holds one batch whatever the total. Must run inside a transaction."""
    params = _Params()
    now_param = params.add(now, "timestamptz")
    clause = where_clause(params, visibility, where, now=now)
    query = _EXPORT_SELECT.replace("{OVERDUE}", overdue_sql("r", now_param)).replace("{POSSESSED}", possessed_sql("rm")) + f" WHERE {clause} ORDER BY r.updated_at DESC, r.id DESC"
    cursor = await conn.cursor(query, *params.values)
    while True:
        rows = await cursor.fetch(batch_size)
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
