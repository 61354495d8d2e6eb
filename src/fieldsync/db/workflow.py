"""SQL for the review workflow: the locked report state, the guarded move, comments."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from fieldsync.db.media import hold_references

_STATE = """
    r.id, r.kind, r.grade, r.status, r.version, r.author_id, r.jurisdiction, j.path AS jurisdiction_path,
    r.verified_at, r.rectification, r.rectification_deadline, r.rectified_at, r.rectification_note,
    r.closed_at, r.listed_level, r.listed_deadline, r.duplicate_of, lj.path AS listed_path
"""


async def lock_state(conn: asyncpg.Connection, report_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        SELECT {_STATE}
        FROM reports r
        JOIN jurisdictions j ON j.code = r.jurisdiction
        LEFT JOIN jurisdictions lj ON lj.code = r.listed_level
        WHERE r.id = $1
        FOR UPDATE OF r
        """,
        report_id,
    )


async def move(
    conn: asyncpg.Connection,
    *,
    report_id: uuid.UUID,
    version: int,
    from_status: str,
    to_status: str,
    now: dt.datetime,
    fields: dict[str, Any],
) -> int | None:
    """Apply the move if the report is still at ``version`` and ``from_status``; the new version."""
    new_version: int | None = await conn.fetchval(
        """
        UPDATE reports SET status = $4, version = version + 1, updated_at = $5,
            verified_at = $6, rectification = $7, rectification_deadline = $8, rectified_at = $9,
            rectification_note = $10, closed_at = $11, listed_level = $12, listed_deadline = $13,
            duplicate_of = $14
        WHERE id = $1 AND version = $2 AND status = $3
        RETURNING version
        """,
        report_id, version, from_status, to_status, now,
        fields["verified_at"], fields["rectification"], fields["rectification_deadline"], fields["rectified_at"],
        fields["rectification_note"], fields["closed_at"], fields["listed_level"], fields["listed_deadline"],
        fields["duplicate_of"],
    )
    return new_version


async def append_media(
    conn: asyncpg.Connection, *, report_id: uuid.UUID, media: list[tuple[str, str, str | None]],
    attached_by: uuid.UUID,
) -> None:
    """Add photos after the report's existing ones (rectification evidence), attached by the actor."""
    if not media:
        return
    await hold_references(conn, [m[0] for m in media])
    await conn.execute(
        """
        INSERT INTO report_media (report_id, position, sha256, role, caption, attached_by)
        SELECT $1, coalesce((SELECT max(position) FROM report_media WHERE report_id = $1), 0) + m.n,
               m.sha256, m.role, m.caption, $5
        FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS m(sha256, role, caption, n)
        """,
        report_id, [m[0] for m in media], [m[1] for m in media], [m[2] for m in media], attached_by,
    )


async def insert_comment(
    conn: asyncpg.Connection, *, report_id: uuid.UUID, author_id: uuid.UUID, device_id: uuid.UUID | None,
    body: str, now: dt.datetime,
) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        INSERT INTO comments (report_id, author_id, device_id, body, created_at) VALUES ($1, $2, $3, $4, $5)
        RETURNING id, report_id, author_id, device_id, body, created_at
        """,
        report_id, author_id, device_id, body, now,
    )


async def list_comments(conn: asyncpg.Connection, report_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT c.id, c.report_id, c.author_id, u.username AS author_username, c.device_id, c.body, c.created_at
        FROM comments c JOIN users u ON u.id = c.author_id
        WHERE c.report_id = ANY($1::uuid[])
        ORDER BY c.created_at, c.id
        """,
        report_ids,
    )
