"""SQL for garbage collection: media no report references, and hashes that have a row."""

from __future__ import annotations

import datetime as dt

import asyncpg


async def list_unreferenced_media(conn: asyncpg.Connection, *, older_than: dt.datetime) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT m.sha256 FROM media m
        WHERE m.created_at < $1
          AND NOT EXISTS (SELECT 1 FROM report_media rm WHERE rm.sha256 = m.sha256)
        ORDER BY m.sha256
        """,
        older_than,
    )
    return [row["sha256"] for row in rows]


async def delete_media_if_unreferenced(conn: asyncpg.Connection, sha256: str) -> bool:
    """Delete the row unless a report has referenced it meanwhile; the row lock orders this
    against an upload of the same hash."""
    deleted = await conn.fetchval(
        """
        DELETE FROM media m
        WHERE m.sha256 = $1
          AND NOT EXISTS (SELECT 1 FROM report_media rm WHERE rm.sha256 = m.sha256)
        RETURNING true
        """,
        sha256,
    )
    if deleted:
        await conn.execute("DELETE FROM jobs WHERE kind = 'derivatives' AND key = $1", sha256)
    return bool(deleted)


async def known_media(conn: asyncpg.Connection, hashes: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT sha256 FROM media WHERE sha256 = ANY($1::text[])", hashes)
    return {row["sha256"] for row in rows}
