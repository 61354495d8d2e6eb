"""SQL for statistics: every figure of both windows, overall, per group and per disaster type, in
one aggregate statement.

The statement joins each report to the windows it was observed in (``current`` and
``previous``; a report can fall in both when the window spans more than a year), leaves merged
reports out, and aggregates with ``FILTER`` clauses under four grouping sets:

    (period)                   the totals
    (period, gk, g)            per group (``gk`` is the kind when grouping by category)
    (period, dtype)            per disaster type, totals
    (period, gk, g, dtype)     per disaster type within each group

Rejected reports count among ``reports`` but not in the kind-specific figures. A disaster's losses
come from the latest report of its chain inside the window (the ``final`` one, else the latest
``as_of``), because 续报 and 核报 restate the running totals rather than add to them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import asyncpg

from fieldsync.db.rules import overdue_sql
from fieldsync.domain.stats import LOSS_AMOUNTS, LOSS_COUNTS

# The grouping key as (gk, g) SQL expressions, chosen from this table only. ``p.base`` is the path
# of the node whose direct children are the jurisdiction groups ('/' for the whole country).
_GROUP_KEYS: dict[str | None, tuple[str, str]] = {
    None: ("NULL::text", "NULL::text"),
    "kind": ("NULL::text", "r.kind"),
    "status": ("NULL::text", "r.status"),
    "category": ("r.kind", "r.category"),
    "jurisdiction": (
        "NULL::text",
        """CASE WHEN j.path = p.base THEN j.code
                WHEN j.path LIKE p.base || '%' THEN split_part(substr(j.path, length(p.base) + 1), '/', 1)
                ELSE j.code END""",
    ),
}

_LOSS_SUMS = ",\n".join(
    [f"coalesce(sum((body -> 'losses' ->> '{name}')::bigint) FILTER (WHERE latest), 0) AS loss_{name}"
     for name in LOSS_COUNTS]
    + [f"coalesce(sum((body -> 'losses' ->> '{name}')::numeric) FILTER (WHERE latest), 0) AS loss_{name}"
       for name in LOSS_AMOUNTS]
)

_FIGURES = """
WITH windows (period, lo, hi) AS (
    VALUES ('current', $1::timestamptz, $2::timestamptz), ('previous', $3::timestamptz, $4::timestamptz)
),
p (prefix, author_id, now, base) AS (SELECT $5::text, $6::uuid, $7::timestamptz, $8::text),
counted AS (
    SELECT w.period, r.kind, r.category, r.status, r.grade, r.listed_level, r.body,
           r.rectified_at <= r.rectification_deadline AS rectified_in_time,
           {overdue} AS overdue,
           r.status <> 'rejected' AS valid,
           r.kind = 'disaster' AND r.status <> 'rejected' AS disaster,
           {gk} AS gk,
           {g} AS g,
           row_number() OVER (
               PARTITION BY w.period, r.incident_id, r.kind = 'disaster' AND r.status <> 'rejected'
               ORDER BY r.stage = 'final' DESC, (r.body ->> 'as_of')::timestamptz DESC, r.observed_at DESC,
                        r.id DESC
           ) = 1 AS first_of_chain
    FROM p
    JOIN reports r ON p.author_id IS NULL OR r.author_id = p.author_id
    JOIN jurisdictions j ON j.code = r.jurisdiction AND j.path LIKE p.prefix || '%'
    JOIN windows w ON r.observed_at >= w.lo AND r.observed_at < w.hi
    WHERE r.status <> 'merged'
),
figures AS (
    SELECT period,
           GROUPING(gk, g) = 0 AS grouped, gk, g,
           GROUPING(dtype) = 0 AS typed, dtype,
           count(*) AS reports,
           count(*) FILTER (WHERE kind = 'hazard' AND valid) AS hazards_found,
           count(*) FILTER (WHERE kind = 'hazard' AND valid AND grade = 'major') AS hazards_major,
           count(*) FILTER (WHERE kind = 'hazard' AND valid AND listed_level IS NOT NULL) AS hazards_listed,
           count(*) FILTER (
               WHERE kind = 'hazard' AND status IN ('rectified', 'closed') AND rectified_in_time
           ) AS hazards_rectified_on_time,
           count(*) FILTER (
               WHERE kind = 'hazard' AND overdue
           ) AS hazards_overdue,
           count(*) FILTER (WHERE kind = 'hazard' AND status = 'closed') AS hazards_closed,
           count(*) FILTER (WHERE disaster) AS disaster_reports,
           count(*) FILTER (WHERE latest) AS disaster_incidents,
           {loss_sums},
           count(*) FILTER (WHERE kind = 'accident' AND valid) AS accidents,
           coalesce(sum((body ->> 'deaths')::bigint) FILTER (WHERE kind = 'accident' AND valid), 0)
               AS accident_deaths,
           coalesce(sum((body ->> 'injured')::bigint) FILTER (WHERE kind = 'accident' AND valid), 0)
               AS accident_injured,
           coalesce(sum((body ->> 'direct_loss_cny')::numeric) FILTER (WHERE kind = 'accident' AND valid), 0)
               AS accident_direct_loss_cny
    FROM (
        SELECT counted.*, disaster AND first_of_chain AS latest, CASE WHEN disaster THEN category END AS dtype
        FROM counted
    ) c
    GROUP BY GROUPING SETS ((period), (period, gk, g), (period, dtype), (period, gk, g, dtype))
    HAVING GROUPING(dtype) = 1 OR dtype IS NOT NULL
)
SELECT f.*, coalesce(jl.name_zh, cl.name_zh) AS name_zh, dl.name_zh AS dtype_name_zh
FROM figures f
LEFT JOIN jurisdictions jl ON f.gk IS NULL AND jl.code = f.g
LEFT JOIN categories cl ON cl.kind = f.gk AND cl.code = f.g
LEFT JOIN categories dl ON dl.kind = 'disaster' AND dl.code = f.dtype
"""

_STATEMENTS = {
    group_by: _FIGURES.format(gk=gk, g=g, loss_sums=_LOSS_SUMS, overdue=overdue_sql("r", "p.now")) for group_by, (gk, g) in _GROUP_KEYS.items()
}


@dataclasses.dataclass(frozen=True, slots=True)
class View:
    """Which reports a caller's figures cover: those under ``path_prefix`` (and by ``author_id``
    when set); jurisdiction groups are the children of the node at ``base_path``."""

    path_prefix: str
    author_id: uuid.UUID | None
    base_path: str


async def figures(
    conn: asyncpg.Connection,
    view: View,
    *,
    current: tuple[dt.datetime, dt.datetime],
    previous: tuple[dt.datetime, dt.datetime],
    group_by: str | None,
    now: dt.datetime,
) -> list[asyncpg.Record]:
    """One row per (period, grouping set, group, disaster type) that has reports."""
    return await conn.fetch(
        _STATEMENTS[group_by],
        current[0], current[1], previous[0], previous[1], view.path_prefix, view.author_id, now, view.base_path,
    )


async def child_jurisdictions(conn: asyncpg.Connection, base_path: str) -> list[asyncpg.Record]:
    """The direct children of the node at ``base_path`` ('/': the top-level nodes)."""
    return await conn.fetch(
        """
        SELECT j.code, j.name_zh FROM jurisdictions j
        WHERE j.path LIKE $1 || '%' AND j.path ~ ('^' || $1 || '[0-9]+/$')
        ORDER BY j.code
        """,
        base_path,
    )
