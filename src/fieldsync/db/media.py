"""SQL for media rows, uploaders, access checks (``db.rules``) and the derivative job queue."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from fieldsync.db.rules import possessed_sql, visible_sql
from fieldsync.domain.principals import Visibility


async def lock_object(conn: asyncpg.Connection, sha256: str) -> None:
    """Hold the photo's advisory lock until the caller's transaction ends: an upload committing
    its row and gc removing the row and objects exclude each other (``services.media``)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('fieldsync.media:' || $1::text, 0))", sha256)


async def hold_references(conn: asyncpg.Connection, hashes: list[str]) -> None:
    """Key-share lock the media rows a new reference names: gc's delete of such a row waits for
    this transaction, then sees the reference (``db.gc``)."""
    if hashes:
        await conn.execute(
            "SELECT 1 FROM media WHERE sha256 = ANY($1::text[]) ORDER BY sha256 FOR KEY SHARE",
            sorted(set(hashes)),
        )


_MEDIA_COLUMNS = """sha256, bytes, content_type, width, height, taken_at, taken_at_local, lat, lon, make, model,
    created_at, derivatives_at"""


async def get_media(conn: asyncpg.Connection, sha256: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_MEDIA_COLUMNS} FROM media WHERE sha256 = $1", sha256)


async def insert_media(
    conn: asyncpg.Connection,
    *,
    sha256: str,
    size: int,
    content_type: str,
    width: int,
    height: int,
    taken_at: dt.datetime | None,
    taken_at_local: dt.datetime | None,
    lat: float | None,
    lon: float | None,
    make: str | None,
    model: str | None,
    dhash: int | None,
    thumbprint: bytes | None,
    derivatives_at: dt.datetime | None,
    now: dt.datetime,
) -> asyncpg.Record:
    """Record an object once per sha256 (with its fingerprints, and when its derivatives were
    stored) and restart its gc grace; returns the row as stored and ``created``, False when it was
    known already (a known row keeps what it had, and gains ``derivatives_at`` if it had none)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO media (sha256, bytes, content_type, width, height, taken_at, taken_at_local, lat, lon,
                           make, model, dhash, thumbprint, derivatives_at, created_at, touched_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
        ON CONFLICT ON CONSTRAINT media_pkey DO UPDATE SET touched_at = greatest(media.touched_at, excluded.touched_at),
            derivatives_at = coalesce(media.derivatives_at, excluded.derivatives_at)
        RETURNING {_MEDIA_COLUMNS}, xmax = 0 AS created
        """,
        sha256, size, content_type, width, height, taken_at, taken_at_local, lat, lon, make, model, dhash,
        thumbprint, derivatives_at, now,
    )
    assert row is not None
    return row


async def record_uploader(
    conn: asyncpg.Connection, *, sha256: str, user_id: uuid.UUID, device_id: uuid.UUID | None, now: dt.datetime
) -> tuple[bool, list[uuid.UUID]]:
    """Record that this user holds the bytes. The first time, their references now count: returns
    True and the reports referencing ``sha256`` that this user authored or attached it to."""
    rows = await conn.fetch(
        """
        WITH up AS (
            INSERT INTO media_uploads (sha256, user_id, device_id, uploaded_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT ON CONSTRAINT media_uploads_pkey DO NOTHING
            RETURNING sha256, user_id
        )
        SELECT true AS first, NULL::uuid AS report_id FROM up
        UNION ALL
        SELECT DISTINCT true, rm.report_id FROM up
        JOIN report_media rm ON rm.sha256 = up.sha256
        JOIN reports r ON r.id = rm.report_id
        WHERE rm.attached_by = up.user_id OR r.author_id = up.user_id
        """,
        sha256, user_id, device_id, now,
    )
    return bool(rows), sorted(row["report_id"] for row in rows if row["report_id"] is not None)


async def readable_hashes(
    conn: asyncpg.Connection, hashes: list[str], *, user_id: uuid.UUID, viewer: Visibility
) -> set[str]:
    """The hashes among ``hashes`` this user may read: it uploaded the bytes, or it may see a
    report whose reference to them counts (whoever attached it uploaded them)."""
    rows = await conn.fetch(
        f"""
        SELECT h.sha256 FROM unnest($1::text[]) AS h(sha256)
        WHERE EXISTS (SELECT 1 FROM media_uploads mu WHERE mu.sha256 = h.sha256 AND mu.user_id = $2)
           OR EXISTS (
                SELECT 1 FROM report_media rm
                JOIN reports r ON r.id = rm.report_id
                JOIN jurisdictions j ON j.code = r.jurisdiction
                WHERE rm.sha256 = h.sha256 AND {possessed_sql("rm")} AND {visible_sql("r", "j.path", "$3", "$4")}
           )
        """,
        hashes, user_id, viewer.author_id, viewer.path_prefix,
    )
    return {row["sha256"] for row in rows}


async def mark_derivatives_done(conn: asyncpg.Connection, *, sha256: str, now: dt.datetime) -> None:
    await conn.execute("UPDATE media SET derivatives_at = $2 WHERE sha256 = $1", sha256, now)
