"""SQL for OpenRosa instances and the attachments that arrived for them."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg


async def claim_instance(
    conn: asyncpg.Connection,
    *,
    instance_id: uuid.UUID,
    form_id: str,
    report_id: uuid.UUID,
    deprecated_id: uuid.UUID | None,
    user_id: uuid.UUID,
    device_id: uuid.UUID | None,
    xml_sha256: bytes,
    now: dt.datetime,
) -> asyncpg.Record:
    """The instance row, inserted if new, locked for the rest of the transaction either way.

    ``created`` tells the two apart; concurrent POSTs of one instance queue on the row lock.
    """
    row = await conn.fetchrow(
        """
        INSERT INTO openrosa_instances (instance_id, form_id, report_id, deprecated_id, user_id, device_id,
                                        xml_sha256, received_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT ON CONSTRAINT openrosa_instances_pkey DO NOTHING
        RETURNING instance_id, form_id, report_id, deprecated_id, user_id, xml_sha256, report_version,
                  content_hash, true AS created
        """,
        instance_id, form_id, report_id, deprecated_id, user_id, device_id, xml_sha256, now,
    )
    if row is not None:
        return row
    existing = await conn.fetchrow(
        """
        SELECT instance_id, form_id, report_id, deprecated_id, user_id, xml_sha256, report_version, content_hash,
               false AS created
        FROM openrosa_instances WHERE instance_id = $1 FOR UPDATE
        """,
        instance_id,
    )
    assert existing is not None  # rows are never deleted
    return existing


async def get_instance(conn: asyncpg.Connection, instance_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT instance_id, form_id, report_id, user_id, report_version, content_hash
        FROM openrosa_instances WHERE instance_id = $1
        """,
        instance_id,
    )


async def copy_attachments(conn: asyncpg.Connection, *, source: uuid.UUID, target: uuid.UUID) -> None:
    """Carry the edited instance's files forward: an edit re-sends only what changed."""
    await conn.execute(
        """
        INSERT INTO openrosa_attachments (instance_id, filename, sha256, received_at)
        SELECT $2, filename, sha256, received_at FROM openrosa_attachments WHERE instance_id = $1
        ON CONFLICT ON CONSTRAINT openrosa_attachments_pkey DO NOTHING
        """,
        source, target,
    )


async def upsert_attachments(
    conn: asyncpg.Connection, *, instance_id: uuid.UUID, files: list[tuple[str, str]], now: dt.datetime
) -> None:
    """Record (filename, sha256) pairs; the latest bytes under a name win."""
    if not files:
        return
    await conn.execute(
        """
        INSERT INTO openrosa_attachments (instance_id, filename, sha256, received_at)
        SELECT $1, f.filename, f.sha256, $4 FROM unnest($2::text[], $3::text[]) AS f(filename, sha256)
        ON CONFLICT ON CONSTRAINT openrosa_attachments_pkey
        DO UPDATE SET sha256 = EXCLUDED.sha256, received_at = EXCLUDED.received_at
        WHERE openrosa_attachments.sha256 <> EXCLUDED.sha256
        """,
        instance_id, [f[0] for f in files], [f[1] for f in files], now,
    )


async def list_attachments(conn: asyncpg.Connection, instance_id: uuid.UUID) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT filename, sha256 FROM openrosa_attachments WHERE instance_id = $1", instance_id
    )
    return {row["filename"]: row["sha256"] for row in rows}


async def mark_completed(
    conn: asyncpg.Connection, *, instance_id: uuid.UUID, version: int, content_hash: bytes, now: dt.datetime
) -> None:
    await conn.execute(
        """
        UPDATE openrosa_instances
        SET report_version = $2, content_hash = $3, completed_at = coalesce(completed_at, $4)
        WHERE instance_id = $1
        """,
        instance_id, version, content_hash, now,
    )
