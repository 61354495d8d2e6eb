"""SQL for the sync feed (snapshot-window pulls) and pushed-mutation results."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg


async def current_snapshot(conn: asyncpg.Connection) -> str:
    snapshot: str = await conn.fetchval("SELECT pg_current_snapshot()::text")
    return snapshot


async def feed_epoch(conn: asyncpg.Connection) -> str:
    """The current epoch of the feed (migration 0014), as 32 hex digits."""
    epoch: uuid.UUID = await conn.fetchval("SELECT epoch FROM sync_feed")
    return epoch.hex


async def restart_feed(conn: asyncpg.Connection) -> str:
    """Start a new epoch and stamp every report and move with this transaction's xid, so that
    rows loaded into another cluster are visible in its snapshots; returns the new epoch."""
    await conn.execute("UPDATE reports SET change_xid = pg_current_xact_id()")
    await conn.execute("UPDATE report_moves SET change_xid = pg_current_xact_id()")
    epoch: uuid.UUID = await conn.fetchval(
        "UPDATE sync_feed SET epoch = gen_random_uuid(), started_at = now() RETURNING epoch")
    return epoch.hex


class _Args:
    """Positional parameters numbered in the order the SQL text first needs them."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._numbers: dict[str, int] = {}

    def __call__(self, name: str, value: Any) -> str:
        if name not in self._numbers:
            self.values.append(value)
            self._numbers[name] = len(self.values)
        return f"${self._numbers[name]}"


def _window(
    column: str, key: str, arg: _Args, *, upto: str, base: str | None, after: tuple[str, uuid.UUID] | None
) -> str:
    """Rows stamped by transactions visible in the pass's ``upto`` snapshot but not in the
    previous pass's ``base`` snapshot, after the page position. A condition is written only when
    it applies (never ``$n IS NULL OR ...``), so that the base and the position are plain range
    conditions on ``(change_xid, id)`` in every plan."""
    conditions = [f"pg_visible_in_snapshot({column}, {arg('upto', upto)}::text::pg_snapshot)"]
    if base is not None:
        snapshot = f"{arg('base', base)}::text::pg_snapshot"
        conditions += [
            f"{column} >= pg_snapshot_xmin({snapshot})",
            f"NOT pg_visible_in_snapshot({column}, {snapshot})",
        ]
    if after is not None:
        conditions.append(
            f"({column}, {key}) > ({arg('after_xid', after[0])}::text::xid8, {arg('after_id', after[1])}::uuid)"
        )
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
    authored; others their subtree, plus tombstones for reports that moved out of it.

    Each variant (base or not, page position or not, inspector or not) is its own statement.
    With a base, the page is a range scan on ``reports_change_idx``; an inspector's statement
    has no join and no moves branch, so the scan runs in index order and stops at the page's end
    instead of sorting the rest of the window for every page (docs/sync.md shows the plans).
    """
    arg = _Args()
    if inspector_id is not None:
        sql = f"""
            SELECT r.change_xid::text AS xid, r.id, false AS deleted
            FROM reports r
            WHERE {_window("r.change_xid", "r.id", arg, upto=upto, base=base, after=after)}
              AND r.author_id = {arg("author", inspector_id)}::uuid
            ORDER BY r.change_xid, r.id
            LIMIT {arg("limit", limit)}
        """
    else:
        reports_window = _window("r.change_xid", "r.id", arg, upto=upto, base=base, after=after)
        moves_window = _window("m.change_xid", "m.report_id", arg, upto=upto, base=base, after=after)
        prefix = f"{arg('scope', scope_prefix)}::text || '%'"
        sql = f"""
            SELECT c.xid::text AS xid, c.id, c.deleted FROM (
                SELECT r.change_xid AS xid, r.id, false AS deleted
                FROM reports r JOIN jurisdictions j ON j.code = r.jurisdiction
                WHERE {reports_window} AND j.path LIKE {prefix}
                UNION ALL
                SELECT m.change_xid, m.report_id, true
                FROM report_moves m
                JOIN jurisdictions jf ON jf.code = m.from_jurisdiction
                JOIN reports r ON r.id = m.report_id
                JOIN jurisdictions j ON j.code = r.jurisdiction
                WHERE {moves_window} AND jf.path LIKE {prefix} AND j.path NOT LIKE {prefix}
            ) c
            ORDER BY c.xid, c.id
            LIMIT {arg("limit", limit)}
        """
    return await conn.fetch(sql, *arg.values)


async def lock_pushes(conn: asyncpg.Connection, *, user_id: uuid.UUID) -> None:
    """Wait for the user's other pushes to commit; held until this transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('fieldsync.sync_push:' || $1::uuid::text, 0))", user_id
    )


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


async def restamp_unheld(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Stamp the rows no other transaction holds with this transaction's xid (never waits);
    returns the ids stamped. ``NO KEY UPDATE`` is the lock the update takes anyway: it does not
    conflict with the key-share locks of transactions that only insert rows referencing a report
    (a near-duplicate pair, a comment), so those do not count as holding it."""
    rows = await conn.fetch(
        """
        UPDATE reports SET change_xid = pg_current_xact_id()
        WHERE id IN (SELECT id FROM reports WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED)
        RETURNING id
        """,
        sorted(ids),
    )
    return {row["id"] for row in rows}
