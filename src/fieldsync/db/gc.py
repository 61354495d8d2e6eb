"""SQL for garbage collection: media no report references, and hashes that have a row.

Removing a media row must never race a report that starts referencing it. A report's
transaction key-share locks the media rows it names (``db.media.hold_references``) before it
writes the reference; gc first locks the row ``FOR UPDATE`` (waiting for any such transaction),
and only then, in a statement of its own whose snapshot sees what that transaction committed,
checks for references and deletes. A single ``DELETE … WHERE NOT EXISTS`` would not do: after
waiting for the lock, PostgreSQL re-checks the row but reads ``report_media`` with the
statement's old snapshot, and deletes a photo that was just referenced.
"""

from __future__ import annotations

import datetime as dt

import asyncpg


async def list_unreferenced_media(conn: asyncpg.Connection, *, older_than: dt.datetime) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT m.sha256 FROM media m
        WHERE m.touched_at < $1
          AND NOT EXISTS (SELECT 1 FROM report_media rm WHERE rm.sha256 = m.sha256)
        ORDER BY m.sha256
        """,
        older_than,
    )
    return [row["sha256"] for row in rows]


async def delete_media_if_unreferenced(conn: asyncpg.Connection, sha256: str, *, older_than: dt.datetime) -> bool:
    """In the caller's transaction: lock the row, then delete it unless a report references it
    or it was uploaded again since ``older_than``. A photo whose derivatives are being rendered
    right now is left for the next run: the worker holds its job, then updates the row, and
    taking the two locks in the other order would deadlock with it."""
    busy = await conn.fetchval(
        """
        WITH free AS (SELECT id FROM jobs WHERE kind = 'derivatives' AND key = $1 FOR UPDATE SKIP LOCKED)
        SELECT (SELECT count(*) FROM jobs WHERE kind = 'derivatives' AND key = $1) > (SELECT count(*) FROM free)
        """,
        sha256,
    )
    if busy or await conn.fetchval("SELECT true FROM media WHERE sha256 = $1 FOR UPDATE", sha256) is None:
        return False
    deleted = await conn.fetchval(
        """
        DELETE FROM media m
        WHERE m.sha256 = $1 AND m.touched_at < $2
          AND NOT EXISTS (SELECT 1 FROM report_media rm WHERE rm.sha256 = m.sha256)
        RETURNING true
        """,
        sha256, older_than,
    )
    if deleted:
        await conn.execute("DELETE FROM jobs WHERE kind = 'derivatives' AND key = $1", sha256)
    return bool(deleted)


async def known_media(conn: asyncpg.Connection, hashes: list[str]) -> set[str]:
    rows = await conn.fetch("SELECT sha256 FROM media WHERE sha256 = ANY($1::text[])", hashes)
    return {row["sha256"] for row in rows}
