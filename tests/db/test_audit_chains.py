"""Audit chains written concurrently: the first two events of a new chain serialise instead of
colliding on position 1, and the chain verifies."""

from __future__ import annotations

import asyncio
import datetime as dt

from fieldsync.db.pool import connect
from fieldsync.services import audit

NOW = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC)


async def test_the_first_two_events_of_a_new_chain_written_at_once_both_land_in_order(conn, database_url) -> None:
    chain = audit.media_chain("ef" * 32)
    first, second = await connect(database_url), await connect(database_url)
    try:
        one = first.transaction()
        await one.start()
        await audit.record(first, [audit.NewEvent(chain=chain, action="media_access", actor_id=None)], now=NOW)

        async def second_writer() -> None:
            async with second.transaction():
                await audit.record(second, [audit.NewEvent(chain=chain, action="media_access", actor_id=None)],
                                   now=NOW)

        writing = asyncio.create_task(second_writer())
        await asyncio.sleep(0.3)
        assert not writing.done(), "the second writer must wait for the first"
        await one.commit()
        await asyncio.wait_for(writing, timeout=10)
    finally:
        await first.close()
        await second.close()
    positions = [row["position"] for row in await conn.fetch(
        "SELECT position FROM events WHERE chain = $1 ORDER BY position", chain)]
    assert positions == [1, 2]
    assert (await audit.verify(conn)).ok


async def test_a_chain_begun_by_a_rolled_back_transaction_leaves_nothing_to_verify(conn) -> None:
    chain = audit.media_chain("aa" * 32)
    tx = conn.transaction()
    await tx.start()
    await audit.record(conn, [audit.NewEvent(chain=chain, action="media_access", actor_id=None)], now=NOW)
    await tx.rollback()
    await conn.execute("INSERT INTO audit_heads (chain, length, head_hash) VALUES ($1, 0, $2)", chain, bytes(32))
    assert (await audit.verify(conn)).ok
