"""SQL for reports, their versions and the photos they reference."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg


@dataclasses.dataclass(frozen=True, slots=True)
class ReportRow:
    """The columns a write sets; ``body`` is the canonical content the projections come from."""

    id: uuid.UUID
    kind: str
    category: str
    title: str
    description: str
    jurisdiction: str
    lat: float
    lon: float
    accuracy_m: float | None
    observed_at: dt.datetime
    severity: str | None
    grade: str | None
    credit_code: str | None
    incident_id: uuid.UUID | None
    stage: str | None
    body: dict[str, Any]
    content_hash: bytes


async def insert_report(
    conn: asyncpg.Connection,
    row: ReportRow,
    *,
    author_id: uuid.UUID,
    device_id: uuid.UUID | None,
    now: dt.datetime,
) -> bool:
    """Insert version 1; False (and nothing written) when the id exists. Concurrent inserts of
    one id serialise on the primary key: exactly one wins, the rest see its committed row."""
    inserted = await conn.fetchval(
        """
        INSERT INTO reports (id, kind, category, title, description, jurisdiction, lat, lon,
                             accuracy_m, observed_at, severity, grade, credit_code, incident_id,
                             stage, body, content_hash, author_id, device_id, received_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                $19, $20, $20)
        ON CONFLICT ON CONSTRAINT reports_pkey DO NOTHING
        RETURNING true
        """,
        row.id, row.kind, row.category, row.title, row.description, row.jurisdiction, row.lat,
        row.lon, row.accuracy_m, row.observed_at, row.severity, row.grade, row.credit_code,
        row.incident_id, row.stage, row.body, row.content_hash, author_id, device_id, now,
    )
    return bool(inserted)


async def revise_report(
    conn: asyncpg.Connection,
    row: ReportRow,
    *,
    base_version: int,
    device_id: uuid.UUID | None,
    now: dt.datetime,
) -> asyncpg.Record | None:
    """Write a new version if ``base_version`` is still current and the report is editable."""
    return await conn.fetchrow(
        """
        UPDATE reports SET
            kind = $2, category = $3, title = $4, description = $5, jurisdiction = $6, lat = $7,
            lon = $8, accuracy_m = $9, observed_at = $10, severity = $11, grade = $12,
            credit_code = $13, incident_id = $14, stage = $15, body = $16, content_hash = $17,
            device_id = coalesce($19, device_id), updated_at = $20,
            version = version + 1, status = 'submitted'
        WHERE id = $1 AND version = $18 AND status IN ('submitted', 'needs_info')
        RETURNING version, status
        """,
        row.id, row.kind, row.category, row.title, row.description, row.jurisdiction, row.lat,
        row.lon, row.accuracy_m, row.observed_at, row.severity, row.grade, row.credit_code,
        row.incident_id, row.stage, row.body, row.content_hash, base_version, device_id, now,
    )


async def insert_version(
    conn: asyncpg.Connection,
    *,
    report_id: uuid.UUID,
    version: int,
    body: dict[str, Any],
    content_hash: bytes,
    author_id: uuid.UUID,
    device_id: uuid.UUID | None,
    now: dt.datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO report_versions (report_id, version, body, content_hash, author_id, device_id, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        report_id, version, body, content_hash, author_id, device_id, now,
    )


async def replace_media(
    conn: asyncpg.Connection, *, report_id: uuid.UUID, media: list[tuple[str, str, str | None]]
) -> None:
    """Set the report's photo list to ``media`` [(sha256, role, caption)], in order."""
    await conn.execute("DELETE FROM report_media WHERE report_id = $1", report_id)
    if media:
        await conn.execute(
            """
            INSERT INTO report_media (report_id, position, sha256, role, caption)
            SELECT $1, m.position, m.sha256, m.role, m.caption
            FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS m(sha256, role, caption, position)
            """,
            report_id,
            [m[0] for m in media],
            [m[1] for m in media],
            [m[2] for m in media],
        )


async def get_report_for_update(conn: asyncpg.Connection, report_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT r.id, r.version, r.status, r.content_hash, r.author_id, j.path AS jurisdiction_path
        FROM reports r JOIN jurisdictions j ON j.code = r.jurisdiction
        WHERE r.id = $1
        FOR UPDATE OF r
        """,
        report_id,
    )


async def find_version_with_hash(
    conn: asyncpg.Connection, *, report_id: uuid.UUID, content_hash: bytes
) -> int | None:
    """The latest earlier version with exactly this content (a late replay), if any."""
    version: int | None = await conn.fetchval(
        """
        SELECT max(version) FROM report_versions WHERE report_id = $1 AND content_hash = $2
        """,
        report_id,
        content_hash,
    )
    return version


async def missing_media(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[str]:
    """Referenced photos the server does not hold yet, in first-reference order."""
    rows = await conn.fetch(
        """
        SELECT rm.sha256, min(rm.position) AS first_position
        FROM report_media rm
        WHERE rm.report_id = $1
          AND NOT EXISTS (SELECT 1 FROM media m WHERE m.sha256 = rm.sha256)
        GROUP BY rm.sha256
        ORDER BY first_position
        """,
        report_id,
    )
    return [row["sha256"] for row in rows]


async def get_report(conn: asyncpg.Connection, report_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT r.id, r.kind, r.body, r.author_id, u.username AS author_username, r.device_id,
               r.received_at, r.updated_at, r.version, r.status, r.duplicate_of, r.jurisdiction,
               j.path AS jurisdiction_path
        FROM reports r
        JOIN jurisdictions j ON j.code = r.jurisdiction
        JOIN users u ON u.id = r.author_id
        WHERE r.id = $1
        """,
        report_id,
    )


async def list_report_media(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT rm.position, rm.sha256, rm.role, rm.caption, m.sha256 IS NOT NULL AS present,
               m.content_type, m.bytes, m.width, m.height, m.taken_at, m.taken_at_local, m.lat, m.lon,
               m.make, m.model
        FROM report_media rm
        LEFT JOIN media m ON m.sha256 = rm.sha256
        WHERE rm.report_id = $1
        ORDER BY rm.position
        """,
        report_id,
    )


async def category_exists(conn: asyncpg.Connection, *, kind: str, code: str) -> bool:
    return bool(
        await conn.fetchval("SELECT true FROM categories WHERE kind = $1 AND code = $2", kind, code)
    )
