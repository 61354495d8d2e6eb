"""SQL for the sync feed (snapshot-window pulls) and pushed-mutation results."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg


async def current_snapshot(conn: asyncpg.Connection) -> str:
    snapshot: str = await conn.fetchval("SELECT pg_current_snapshot()::text")
    return snapshot


def _window(column: str, *, with_base: bool) -> str:
    """Rows stamped by transactions visible in the pass's ``upto`` snapshot ($2) but not in the
    previous pass's ``base`` snapshot ($1), after the page position ($3, $4)."""
    conditions = [f"pg_visible_in_snapshot({column}, $2::text::pg_snapshot)"]
    if not with_base:
        conditions.append("$1::text IS NULL")
    else:
        conditions += [
            f"{column} >= pg_snapshot_xmin($1::text::pg_snapshot)",
            f"NOT pg_visible_in_snapshot({column}, $1::text::pg_snapshot)",
        ]
    return " AND ".join(conditions)


async def list_changes(
    conn: asyncpg.Connection,
    *,
    base: str | None,
    upto: str,
    after: tuple[str, uuid.UUID] | None,
    inspector_id: uuid.UUID | None,
    scope_prefix: str,
    limit: int,
) -> list[asyncpg.Record]:
    """One page of (xid, report id, deleted) in (xid, id) order. Inspectors see the reports they
    authored; others their subtree, plus tombstones for reports that moved out of it."""
    with_base = base is not None
    position = "($3::text IS NULL OR ({col}, {key}) > ($3::text::xid8, $4::uuid))"
    sql = f"""
        SELECT c.xid::text AS xid, c.id, c.deleted FROM (
            SELECT r.change_xid AS xid, r.id, false AS deleted
            FROM reports r JOIN jurisdictions j ON j.code = r.jurisdiction
            WHERE {_window("r.change_xid", with_base=with_base)}
              AND {position.format(col="r.change_xid", key="r.id")}
              AND CASE WHEN $5::uuid IS NOT NULL THEN r.author_id = $5::uuid ELSE j.path LIKE $6 || '%' END
            UNION ALL
            SELECT m.change_xid, m.report_id, true
            FROM report_moves m
            JOIN jurisdictions jf ON jf.code = m.from_jurisdiction
            JOIN reports r ON r.id = m.report_id
            JOIN jurisdictions j ON j.code = r.jurisdiction
            WHERE $5::uuid IS NULL
              AND {_window("m.change_xid", with_base=with_base)}
              AND {position.format(col="m.change_xid", key="m.report_id")}
              AND jf.path LIKE $6 || '%' AND j.path NOT LIKE $6 || '%'
        ) c
        ORDER BY c.xid, c.id
        LIMIT $7
    """
    after_xid, after_id = after if after else (None, None)
    return await conn.fetch(sql, base, upto, after_xid, after_id, inspector_id, scope_prefix, limit)


async def get_mutation_results(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, mutation_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT mutation_id, result FROM sync_mutations WHERE user_id = $1 AND mutation_id = ANY($2::uuid[])",
        user_id,
        mutation_ids,
    )
    return {row["mutation_id"]: row["result"] for row in rows}


async def insert_mutation_results(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, results: dict[uuid.UUID, dict[str, Any]], now: dt.datetime
) -> None:
    if not results:
        return
    await conn.execute(
        """
        INSERT INTO sync_mutations (user_id, mutation_id, result, created_at)
        SELECT $1, m.id, m.result, $2 FROM unnest($3::uuid[], $4::jsonb[]) AS m(id, result)
        ON CONFLICT ON CONSTRAINT sync_mutations_pkey DO NOTHING
        """,
        user_id,
        now,
        list(results),
        list(results.values()),
    )
