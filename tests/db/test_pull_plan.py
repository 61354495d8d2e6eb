"""An incremental pull is an index range scan on ``reports_change_idx``: what it reads grows with
the changes since the cursor, not with the table.

20,000 reports are written set-based in 20 transactions (so they carry 20 different xids), the
statistics are refreshed, a cursor is taken the way a finished pull hands it out, and then ten
changes are made (revisions, new reports, one move out of the county). The pulls that follow run
through ``services.sync.pull`` on a recording connection, so the plans below are those of the
exact statements the service sends, for an inspector, a county supervisor and a city supervisor,
first page and later pages. ``EXPLAIN`` with bound parameters plans them with their values, as
the executions do (PostgreSQL keeps custom plans for these statements: a generic plan cannot
know how narrow the snapshot window is, so it never looks cheaper).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from fieldsync.db.transactions import generic_plans
from fieldsync.domain.principals import Principal
from fieldsync.services import sync
from tests.support import Actor, make_user, principal_of

COUNTIES = ("140403", "140404", "140405", "140406", "140423", "140425", "140426", "140427", "140428", "140431")
CITY = "/140000/140400/"
REPORTS = 20_000
CHANGES = 10


class Recording:
    """Passes ``fetch``/``fetchval`` through and keeps every ``list_changes`` statement."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.statements.append((sql, args))
        return await self.conn.fetch(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.conn.fetchval(sql, *args)


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def scans_of(plan: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    return [n for n in nodes(plan) if n.get("Relation Name") == relation]


def examined(node: dict[str, Any]) -> int:
    """Rows a scan node produced plus those it read and threw away, over all its loops."""
    per_loop = node["Actual Rows"] + node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
    return round(per_loop * node["Actual Loops"])


async def explain(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """``EXPLAIN (ANALYZE, FORMAT JSON)`` of the statement as sent, with its parameters bound."""
    raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    document = json.loads(raw) if isinstance(raw, str) else raw
    return document[0]["Plan"]


def _literal(value: object) -> str:
    """A parameter written out in SQL: ``EXECUTE`` of a prepared statement takes no bound ones
    (arrays and text as untyped literals, typed by the statement's own casts)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "'{" + ",".join("NULL" if v is None else f'"{v}"' for v in value) + "}'"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


async def explain_generic(conn: asyncpg.Connection, sql: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """``EXPLAIN ANALYZE`` of the statement prepared and on its generic plan (``generic_plans``),
    as the worker and a batch with photos run it; for statements that only read or lock rows."""
    async with conn.transaction():
        await generic_plans(conn)
        await conn.execute(f"PREPARE generic AS {sql}")
        raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic({', '.join(map(_literal, args))})")
        await conn.execute("DEALLOCATE generic")
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


async def make_reports(conn: asyncpg.Connection, authors: list[Actor]) -> None:
    """``REPORTS`` reports spread over the authors (and their counties), 1000 per transaction."""
    for batch in range(REPORTS // 1000):
        await conn.execute(
            """
            INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body,
                                 content_hash, author_id, received_at, updated_at)
            SELECT gen_random_uuid(), 'hazard', 'coal_mine', 'bulk ' || $3 || '/' || n, ($2::text[])[a],
                   36.5, 112.3, now(), jsonb_build_object('title', 'bulk ' || n), sha256(n::text::bytea),
                   ($1::uuid[])[a], now(), now()
            FROM generate_series(1, 1000) AS n, LATERAL (SELECT n % cardinality($1::uuid[]) + 1 AS a) AS pick
            """,
            [a.user_id for a in authors],
            [a.jurisdiction for a in authors],
            str(batch),
        )
    await conn.execute("ANALYZE reports; ANALYZE report_moves")


async def make_changes(conn: asyncpg.Connection, author: Actor) -> set[uuid.UUID]:
    """``CHANGES`` changes by one 140431 inspector, each its own transaction: revisions, new
    reports, and one report moved to 140403 (a tombstone for 140431's supervisor)."""
    mine = [r["id"] for r in await conn.fetch(
        "SELECT id FROM reports WHERE author_id = $1 ORDER BY id LIMIT 4", author.user_id)]
    for report_id in mine[:3]:
        await conn.execute(
            "UPDATE reports SET title = 'revised', version = version + 1 WHERE id = $1", report_id)
    await conn.execute("UPDATE reports SET jurisdiction = '140403', version = version + 1 WHERE id = $1", mine[3])
    created = []
    for n in range(CHANGES - 4):
        created.append(await conn.fetchval(
            """
            INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body,
                                 content_hash, author_id, received_at, updated_at)
            VALUES (gen_random_uuid(), 'hazard', 'coal_mine', 'new', '140431', 36.5, 112.3, now(), '{}',
                    sha256($1::bytea), $2, now(), now())
            RETURNING id
            """,
            f"new {n}".encode(), author.user_id,
        ))
    return {*mine, *created}


@pytest.fixture
async def world(conn, clock) -> dict[str, Any]:
    authors = [await make_user(conn, role="inspector", jurisdiction=c, now=clock.now()) for c in COUNTIES for _ in (1, 2)]
    inspector = authors[-1]
    county = await make_user(conn, role="supervisor", jurisdiction="140431", now=clock.now())
    city = await make_user(conn, role="supervisor", jurisdiction="140400", now=clock.now())
    await make_reports(conn, authors)
    principals = {
        "inspector": principal_of(inspector, CITY + "140431/"),
        "county supervisor": principal_of(county, CITY + "140431/"),
        "city supervisor": principal_of(city, CITY),
    }
    # A finished full pull hands out a cursor holding only its snapshot; take it the same way.
    cursors = {}
    for who, principal in principals.items():
        page = await sync.pull(conn, principal, cursor=sync.Cursor(), limit=REPORTS + 100)
        assert not page.has_more and len(page.changes) >= REPORTS // len(authors)
        cursors[who] = page.next_cursor
    changed = await make_changes(conn, inspector)
    return {"principals": principals, "cursors": cursors, "changed": changed}


async def incremental_pulls(conn: asyncpg.Connection, principal: Principal, cursor: sync.Cursor, page_size: int):
    """Follow the pull from ``cursor`` to its end; returns the changes and the statements sent."""
    recording = Recording(conn)
    changes: list[tuple[uuid.UUID, bool]] = []
    while True:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            page = await sync.pull(recording, principal, cursor=cursor, limit=page_size)  # type: ignore[arg-type]
        changes += page.changes
        cursor = page.next_cursor
        if not page.has_more:
            return changes, recording.statements


async def test_incremental_pull_is_an_index_range_scan_on_reports_change_idx(conn, world):
    for who, principal in world["principals"].items():
        changes, statements = await incremental_pulls(conn, principal, world["cursors"][who], page_size=4)
        assert {report_id for report_id, _ in changes} == world["changed"], who
        assert len(changes) == CHANGES, who  # each change once, across pages
        assert len(statements) == 3, who  # pages of 4: a first page, later ones (with a position)
        for page, (sql, args) in enumerate(statements):
            plan = await explain(conn, sql, args)
            assert not [n for n in scans_of(plan, "reports") if n["Node Type"] == "Seq Scan"], who
            change_scans = [n for n in nodes(plan) if n.get("Index Name") == "reports_change_idx"]
            assert change_scans, (who, [(n["Node Type"], n.get("Index Name")) for n in nodes(plan)])
            assert {n["Node Type"] for n in change_scans} <= {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
            conditions = " ".join(n["Index Cond"] for n in change_scans)
            assert "change_xid >=" in conditions, (who, conditions)  # the window is the index range
            if page > 0:  # a later page starts at its position in the index
                assert "ROW(change_xid, id) >" in conditions, (who, conditions)


async def test_incremental_pull_reads_rows_in_proportion_to_the_changes(conn, world):
    """Ten changes over 20,000 reports: the scans of ``reports`` read a few dozen rows at most."""
    tombstones = {}
    for who, principal in world["principals"].items():
        changes, statements = await incremental_pulls(conn, principal, world["cursors"][who], page_size=500)
        tombstones[who] = [report_id for report_id, deleted in changes if deleted]
        assert len(statements) == 1
        plan = await explain(conn, *statements[0])
        read = sum(examined(n) for n in scans_of(plan, "reports"))
        assert CHANGES <= read <= 3 * CHANGES, (who, read)
        assert sum(examined(n) for n in scans_of(plan, "report_moves")) <= 1
    assert len(tombstones["county supervisor"]) == 1
    assert tombstones["inspector"] == tombstones["city supervisor"] == []


async def test_each_page_of_a_tablets_pull_reads_about_one_page(conn, world):
    """A tablet back after a long time pulls a wide window in pages. Each page of an inspector's
    pull is the index range from its position, read in order and stopped at the page's end: 910
    changes in pages of 100 read 100-odd rows per page, not the rest of the window each time
    (which made the whole pull quadratic in the window). Supervisors' pages (a join and the moves
    branch) sort what remains of the window after their position: still the window, never the
    table."""
    inspector = world["principals"]["inspector"]
    for batch in range(9):
        await conn.execute(
            """
            UPDATE reports SET title = 'bulk revision', version = version + 1
            WHERE id IN (SELECT id FROM reports WHERE author_id = $1 AND id <> ALL($3::uuid[])
                         ORDER BY id OFFSET $2 LIMIT 100)
            """,
            inspector.user_id, 100 * batch, list(world["changed"]),
        )
    window = CHANGES + 900
    for who, principal in world["principals"].items():
        changes, statements = await incremental_pulls(conn, principal, world["cursors"][who], page_size=100)
        assert len(changes) == window and len(statements) == 10, (who, len(changes))
        reads = [sum(examined(n) for n in scans_of(await explain(conn, sql, args), "reports"))
                 for sql, args in statements]
        assert max(reads) <= window + 10, (who, reads)
        if who == "inspector":
            assert max(reads) <= 100 + 10, reads
