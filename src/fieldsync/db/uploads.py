"""SQL for resumable uploads: the upload rows and their leases.

A PATCH holds its upload's lock for as long as its body streams (minutes on a poor link), on
whichever replica it arrived. A row lock would keep a transaction open all that time, holding
back the xmin horizon that the sync pull feed relies on, and an advisory lock would pin a pooled
connection; a file lock is seen by one host only. So the lock is a lease on the row: a token
and an expiry on the database's clock, taken, renewed and given back by one short statement
each (``take_lease``, ``renew_lease``, ``release_lease``). Every write of the upload's progress
names the token (``record_progress``, ``allocate_part``): a request whose lease ran out and was
taken by another cannot record a byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import asyncpg

from fieldsync.ports import Progress

_COLUMNS = """
    id, user_id, device_id, upload_length, upload_offset, metadata, sha256, content_type, created_at,
    expires_at, completed_at, multipart_key, multipart_id, segments
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


async def take_lease(
    conn: asyncpg.Connection, upload_id: uuid.UUID, *, token: uuid.UUID, lease_s: float
) -> asyncpg.Record | None:
    """The row, with its lease now ``token``'s, if no unexpired lease is held; else None."""
    return await conn.fetchrow(
        f"""
        UPDATE uploads SET lease_token = $2, lease_until = clock_timestamp() + make_interval(secs => $3)
        WHERE id = $1 AND (lease_until IS NULL OR lease_until <= clock_timestamp())
        RETURNING {_COLUMNS}
        """,
        upload_id, token, float(lease_s),
    )


async def renew_lease(conn: asyncpg.Connection, upload_id: uuid.UUID, *, token: uuid.UUID, lease_s: float) -> bool:
    """Push the lease's end forward; False if ``token`` no longer holds it."""
    return bool(
        await conn.fetchval(
            """
            UPDATE uploads SET lease_until = clock_timestamp() + make_interval(secs => $3)
            WHERE id = $1 AND lease_token = $2
            RETURNING true
            """,
            upload_id, token, float(lease_s),
        )
    )


async def release_lease(conn: asyncpg.Connection, upload_id: uuid.UUID, *, token: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE uploads SET lease_token = NULL, lease_until = NULL WHERE id = $1 AND lease_token = $2",
        upload_id, token,
    )


async def allocate_part(conn: asyncpg.Connection, upload_id: uuid.UUID, *, token: uuid.UUID) -> int | None:
    """A multipart part number no writer of this upload got before; None without the lease."""
    value = await conn.fetchval(
        """
        UPDATE uploads SET parts_allocated = parts_allocated + 1
        WHERE id = $1 AND lease_token = $2
        RETURNING parts_allocated
        """,
        upload_id, token,
    )
    return None if value is None else int(value)


async def record_progress(
    conn: asyncpg.Connection,
    *,
    upload_id: uuid.UUID,
    token: uuid.UUID,
    previous_offset: int,
    progress: Progress,
    expires_at: dt.datetime,
) -> asyncpg.Record | None:
    """Store an offset whose bytes are durable, and where they are; None without the lease (or if
    the offset moved meanwhile), and then nothing changed."""
    multipart = progress.multipart
    return await conn.fetchrow(
        f"""
        UPDATE uploads
        SET upload_offset = $4, multipart_key = $5, multipart_id = $6, segments = $7,
            expires_at = greatest(expires_at, $8)
        WHERE id = $1 AND lease_token = $2 AND upload_offset = $3 AND completed_at IS NULL
        RETURNING {_COLUMNS}
        """,
        upload_id, token, previous_offset, progress.offset, multipart.key if multipart else None,
        multipart.upload_id if multipart else None, [dataclasses.asdict(segment) for segment in progress.segments],
        expires_at,
    )


async def mark_completed(conn: asyncpg.Connection, *, upload_id: uuid.UUID, now: dt.datetime) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        UPDATE uploads SET upload_offset = upload_length, completed_at = $2, multipart_key = NULL,
                           multipart_id = NULL, segments = '[]'
        WHERE id = $1
        RETURNING {_COLUMNS}
        """,
        upload_id, now,
    )


async def delete_upload(conn: asyncpg.Connection, upload_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("DELETE FROM uploads WHERE id = $1 RETURNING true", upload_id))


async def delete_upload_if_expired(conn: asyncpg.Connection, *, upload_id: uuid.UUID, now: dt.datetime) -> bool:
    """Delete an expired upload that no request holds a lease on (one in use is skipped)."""
    return bool(
        await conn.fetchval(
            """
            DELETE FROM uploads
            WHERE id = $1 AND expires_at <= $2 AND (lease_until IS NULL OR lease_until <= clock_timestamp())
            RETURNING true
            """,
            upload_id, now,
        )
    )


async def list_expired(conn: asyncpg.Connection, *, now: dt.datetime) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM uploads WHERE expires_at <= $1 ORDER BY expires_at, id", now)
    return [row["id"] for row in rows]


async def unfinished_upload_ids(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` that are uploads still receiving bytes (a completed one needs none)."""
    rows = await conn.fetch("SELECT id FROM uploads WHERE id = ANY($1::uuid[]) AND completed_at IS NULL", ids)
    return {row["id"] for row in rows}

