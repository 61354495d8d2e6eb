"""SQL for resumable uploads: the upload rows.

A PATCH holds its upload's lock for as long as its body streams (minutes on a poor link), so the
lock is not in the database: a row lock would keep a transaction open all that time, holding
back the xmin horizon that the sync pull feed relies on, and an advisory lock would pin a pooled
connection. It is a file lock next to the part file (``storage.uploads.UploadArea.locked``).
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

_COLUMNS = """
    id, user_id, device_id, upload_length, upload_offset, metadata, sha256, content_type, created_at,
    expires_at, completed_at
"""


async def insert_upload(
    conn: asyncpg.Connection,
    *,
    upload_id: uuid.UUID,
    user_id: uuid.UUID,
    device_id: uuid.UUID | None,
    length: int,
    metadata: str,
    sha256: str,
    content_type: str,
    now: dt.datetime,
    expires_at: dt.datetime,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        INSERT INTO uploads (id, user_id, device_id, upload_length, metadata, sha256, content_type, created_at,
                             expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING {_COLUMNS}
        """,
        upload_id, user_id, device_id, length, metadata, sha256, content_type, now, expires_at,
    )
    assert row is not None
    return row


async def get_upload(conn: asyncpg.Connection, upload_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM uploads WHERE id = $1", upload_id)


async def mark_offset(
    conn: asyncpg.Connection, *, upload_id: uuid.UUID, offset: int, expires_at: dt.datetime
) -> asyncpg.Record | None:
    """Store an offset whose bytes are fsynced; it only ever moves forward."""
    return await conn.fetchrow(
        f"""
        UPDATE uploads SET upload_offset = $2, expires_at = greatest(expires_at, $3)
        WHERE id = $1 AND upload_offset <= $2 AND completed_at IS NULL
        RETURNING {_COLUMNS}
        """,
        upload_id, offset, expires_at,
    )


async def mark_completed(conn: asyncpg.Connection, *, upload_id: uuid.UUID, now: dt.datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        UPDATE uploads SET upload_offset = upload_length, completed_at = $2
        WHERE id = $1
        RETURNING {_COLUMNS}
        """,
        upload_id, now,
    )


async def delete_upload(conn: asyncpg.Connection, upload_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("DELETE FROM uploads WHERE id = $1 RETURNING true", upload_id))


async def delete_upload_if_expired(conn: asyncpg.Connection, *, upload_id: uuid.UUID, now: dt.datetime) -> bool:
    return bool(
        await conn.fetchval(
            "DELETE FROM uploads WHERE id = $1 AND expires_at <= $2 RETURNING true", upload_id, now
        )
    )


async def list_expired(conn: asyncpg.Connection, *, now: dt.datetime) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM uploads WHERE expires_at <= $1 ORDER BY expires_at, id", now)
    return [row["id"] for row in rows]


async def known_upload_ids(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM uploads WHERE id = ANY($1::uuid[])", ids)
    return {row["id"] for row in rows}

