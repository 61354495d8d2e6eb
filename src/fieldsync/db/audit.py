"""SQL for the audit trail: chain heads, appending events, reading and walking them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg

from fieldsync.domain.audit import GENESIS, EventFields


async def lock_heads(conn: asyncpg.Connection, chains: list[str]) -> dict[str, tuple[int, bytes]]:
    """Each chain's (length, head hash), locked until the caller's transaction ends; a chain that
    has no head yet gets an empty one (length 0) first. Creating it is what serialises the first
    two events of a new chain: a second writer's insert waits on the first one's key and then
    locks the committed head, instead of both taking position 1 (a unique violation)."""
    rows = await conn.fetch(
        """
        INSERT INTO audit_heads AS h (chain, length, head_hash)
        SELECT c, 0, $2::bytea FROM unnest($1::text[]) AS c ORDER BY c
        ON CONFLICT ON CONSTRAINT audit_heads_pkey DO UPDATE SET length = h.length
        RETURNING chain, length, head_hash
        """,
        sorted(chains), GENESIS,
    )
    return {row["chain"]: (row["length"], bytes(row["head_hash"])) for row in rows}


async def insert_events(conn: asyncpg.Connection, events: list[tuple[EventFields, bytes, bytes]]) -> None:
    """Insert (fields, prev_hash, row_hash) rows and move each chain's head, in one statement."""
    if not events:
        return
    columns = list(zip(*[
        (e.chain, e.position, e.report_id, e.actor_id, e.device_id, e.action, e.from_status, e.to_status,
         e.version, e.detail, e.created_at, prev, row)
        for e, prev, row in events
    ], strict=True))
    heads: dict[str, tuple[int, bytes]] = {}
    for event, _, row_hash in events:
        heads[event.chain] = (event.position, row_hash)
    await conn.execute(
        """
        WITH appended AS (
            INSERT INTO events (chain, position, report_id, actor_id, device_id, action, from_status, to_status,
                                version, detail, created_at, prev_hash, row_hash)
            SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[],
                                 $7::text[], $8::text[], $9::int[], $10::text[], $11::timestamptz[], $12::bytea[],
                                 $13::bytea[])
        )
        INSERT INTO audit_heads (chain, length, head_hash)
        SELECT * FROM unnest($14::text[], $15::int[], $16::bytea[])
        ON CONFLICT ON CONSTRAINT audit_heads_pkey DO UPDATE SET length = EXCLUDED.length,
                                                              head_hash = EXCLUDED.head_hash
        """,
        *(list(c) for c in columns), list(heads), [h[0] for h in heads.values()], [h[1] for h in heads.values()],
    )


async def list_report_events(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT e.id, e.action, e.from_status, e.to_status, e.version, e.detail, e.created_at,
               e.actor_id, u.username AS actor_username, e.device_id
        FROM events e LEFT JOIN users u ON u.id = e.actor_id
        WHERE e.report_id = $1
        ORDER BY e.id
        """,
        report_id,
    )


async def walk_events(conn: asyncpg.Connection, *, batch: int = 5000) -> AsyncIterator[asyncpg.Record]:
    """Every event ordered by chain and position, read in batches (constant memory)."""
    after_chain, after_position = "", 0
    while True:
        rows = await conn.fetch(
            """
            SELECT id, chain, position, report_id, actor_id, device_id, action, from_status, to_status,
                   version, detail, created_at, prev_hash, row_hash
            FROM events WHERE (chain, position) > ($1, $2)
            ORDER BY chain, position LIMIT $3
            """,
            after_chain, after_position, batch,
        )
        if not rows:
            return
        for row in rows:
            yield row
        after_chain, after_position = rows[-1]["chain"], rows[-1]["position"]


async def list_heads(conn: asyncpg.Connection) -> dict[str, tuple[int, bytes]]:
    """Every chain's head; an empty head (a chain created by a transaction that wrote no event) is none."""
    rows = await conn.fetch("SELECT chain, length, head_hash FROM audit_heads WHERE length > 0")
    return {row["chain"]: (row["length"], bytes(row["head_hash"])) for row in rows}


async def settled_upto(conn: asyncpg.Connection, *, written_before: dt.datetime) -> int:
    """The highest event id written before ``written_before`` (0 when none): a transaction still
    in flight may yet commit a lower id than the newest, but not one that old."""
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM events WHERE created_at < $1", written_before))


async def walk_row_hashes(conn: asyncpg.Connection, *, upto_id: int, batch: int = 10_000) -> AsyncIterator[bytes]:
    """The row hash of every event with id ≤ ``upto_id``, in id order, read in batches."""
    after = 0
    while True:
        rows = await conn.fetch(
            "SELECT id, row_hash FROM events WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3", after, upto_id, batch
        )
        if not rows:
            return
        for row in rows:
            yield bytes(row["row_hash"])
        after = rows[-1]["id"]
