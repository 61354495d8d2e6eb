"""SQL the demo loader needs beyond the services it reuses: what exists already."""

from __future__ import annotations

import uuid

import asyncpg


async def existing_reports(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM reports WHERE id = ANY($1::uuid[])", ids)
    return {row["id"] for row in rows}


async def get_live_device(conn: asyncpg.Connection, *, user_id: uuid.UUID, label: str) -> uuid.UUID | None:
    """The user's oldest unrevoked device with this label."""
    device_id: uuid.UUID | None = await conn.fetchval(
        """
        SELECT id FROM devices WHERE user_id = $1 AND label = $2 AND revoked_at IS NULL
        ORDER BY created_at, id LIMIT 1
        """,
        user_id,
        label,
    )
    return device_id
