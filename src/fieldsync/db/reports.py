"""SQL for reports, their versions and the photos they reference."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg

from fieldsync.db.duplicates import possible_duplicates_sql
from fieldsync.db.media import hold_references
from fieldsync.db.rules import possessed_sql, visible_sql
from fieldsync.domain.principals import Visibility
from fieldsync.domain.reports import ReportSubmission

_ROW_COLUMNS = (
    "id", "kind", "category", "title", "description", "jurisdiction", "lat", "lon", "accuracy_m",
    "observed_at", "severity", "grade", "credit_code", "incident_id", "stage", "body", "content_hash",
)
_ROW_TYPES = (
    "uuid", "text", "text", "text", "text", "text", "float8", "float8", "float8", "timestamptz", "text",
    "text", "text", "uuid", "text", "jsonb", "bytea",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Writer:
    """Who wrote a row: its author and the device it came from."""

    author_id: uuid.UUID
    device_id: uuid.UUID | None


def _columns(rows: list[ReportSubmission]) -> list[list[Any]]:
    return [[getattr(row, name) for row in rows] for name in _ROW_COLUMNS]


def _unnest(first_param: int, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """``unnest($n::uuid[], $n+1::text[], ...) AS v(id, kind, ...)`` over the row columns (+ extra)."""
    names = (*_ROW_COLUMNS, *(name for name, _ in extra))
    types = (*_ROW_TYPES, *(kind for _, kind in extra))
    args = ", ".join(f"${first_param + i}::{t}[]" for i, t in enumerate(types))
    return f"unnest({args}) AS v({', '.join(names)})"


async def insert_reports(
    conn: asyncpg.Connection,
    rows: list[ReportSubmission],
    writers: list[Writer],
    *,
    now: dt.datetime,
) -> set[uuid.UUID]:
    """Insert every row whose id is new, with its stored version 1, in one statement; returns the
    ids inserted.

    Concurrent inserts of one id serialise on the primary key: exactly one wins, the others see
    its committed row afterwards. Rows go in id order, so two batches naming the same new ids wait
    for each other instead of deadlocking. A row that would give a disaster chain a second initial
    or final report violates a partial unique index (``reports_incident_initial_key`` /
    ``…_final_key``), which ``db.constraints`` names ``incident.stage_taken``.
    """
    inserted = await conn.fetch(
        f"""
        WITH v AS (SELECT * FROM {_unnest(2, (("author_id", "uuid"), ("device_id", "uuid")))}),
        created AS (
            INSERT INTO reports ({", ".join(_ROW_COLUMNS)}, author_id, device_id, received_at, updated_at)
            SELECT v.*, $1::timestamptz, $1::timestamptz FROM v
            ORDER BY v.id
            ON CONFLICT ON CONSTRAINT reports_pkey DO NOTHING
            RETURNING id
        ),
        versions AS (
            INSERT INTO report_versions (report_id, version, body, content_hash, author_id, device_id, created_at)
            SELECT v.id, 1, v.body, v.content_hash, v.author_id, v.device_id, $1::timestamptz
            FROM v JOIN created ON created.id = v.id
        )
        SELECT id FROM created
        """,
        now, *_columns(rows), [w.author_id for w in writers], [w.device_id for w in writers],
    )
    return {row["id"] for row in inserted}


async def revise_reports(
    conn: asyncpg.Connection,
    rows: list[ReportSubmission],
    base_versions: list[int],
    device_ids: list[uuid.UUID | None],
    *,
    now: dt.datetime,
) -> dict[uuid.UUID, asyncpg.Record]:
    """Write a new version of each row whose ``base_version`` is current and that is editable."""
    assignments = ", ".join(f"{name} = v.{name}" for name in _ROW_COLUMNS if name != "id")
    revised = await conn.fetch(
        f"""
        UPDATE reports r SET {assignments},
            device_id = coalesce(v.device_id, r.device_id), updated_at = $1::timestamptz,
            version = r.version + 1, status = 'submitted'
        FROM {_unnest(2, (("base_version", "int"), ("device_id", "uuid")))}
        WHERE r.id = v.id AND r.version = v.base_version AND r.status IN ('submitted', 'needs_info')
        RETURNING r.id, r.version, r.status
        """,
        now, *_columns(rows), base_versions, device_ids,
    )
    return {row["id"]: row for row in revised}


async def insert_versions(
    conn: asyncpg.Connection,
    rows: list[ReportSubmission],
    versions: list[int],
    writers: list[Writer],
    *,
    now: dt.datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO report_versions (report_id, version, body, content_hash, author_id, device_id, created_at)
        SELECT v.*, $1 FROM unnest($2::uuid[], $3::int[], $4::jsonb[], $5::bytea[], $6::uuid[], $7::uuid[])
            AS v(id, version, body, content_hash, author_id, device_id)
        """,
        now, [r.id for r in rows], versions, [r.body for r in rows], [r.content_hash for r in rows],
        [w.author_id for w in writers], [w.device_id for w in writers],
    )


async def replace_media(
    conn: asyncpg.Connection,
    media: dict[uuid.UUID, list[tuple[str, str, str | None]]],
    *,
    attached_by: uuid.UUID | dict[uuid.UUID, uuid.UUID],
    created: set[uuid.UUID] | frozenset[uuid.UUID] = frozenset(),
) -> None:
    """Set each report's photo list to the given [(sha256, role, caption)], in order, attached by
    ``attached_by`` (one user, or each report's author).

    ``created``: reports inserted by this transaction. They hold no photo rows yet (the foreign
    key needs the report row first), so there is nothing of theirs to delete.
    """
    if not media:
        return
    await hold_references(conn, [sha for items in media.values() for sha, _, _ in items])
    revised = [report_id for report_id in media if report_id not in created]
    if revised:
        await conn.execute("DELETE FROM report_media WHERE report_id = ANY($1::uuid[])", revised)
    by = attached_by if isinstance(attached_by, dict) else dict.fromkeys(media, attached_by)
    flat = [(report_id, n, sha, role, caption, by[report_id]) for report_id, items in media.items()
            for n, (sha, role, caption) in enumerate(items, start=1)]
    if flat:
        await conn.execute(
            """
            INSERT INTO report_media (report_id, position, sha256, role, caption, attached_by)
            SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::uuid[])
            """,
            *(list(column) for column in zip(*flat, strict=True)),
        )


async def lock_reports(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, asyncpg.Record]:
    rows = await conn.fetch(
        """
        SELECT r.id, r.version, r.status, r.content_hash, r.author_id, j.path AS jurisdiction_path
        FROM reports r JOIN jurisdictions j ON j.code = r.jurisdiction
        WHERE r.id = ANY($1::uuid[])
        ORDER BY r.id
        FOR UPDATE OF r
        """,
        ids,
    )
    return {row["id"]: row for row in rows}


async def versions_with_hashes(
    conn: asyncpg.Connection, pairs: list[tuple[uuid.UUID, bytes]]
) -> dict[tuple[uuid.UUID, bytes], int]:
    """For each (report, content hash), the latest earlier version with exactly that content."""
    if not pairs:
        return {}
    rows = await conn.fetch(
        """
        SELECT v.report_id, v.content_hash, max(v.version) AS version
        FROM report_versions v
        JOIN unnest($1::uuid[], $2::bytea[]) AS p(report_id, content_hash)
          ON p.report_id = v.report_id AND p.content_hash = v.content_hash
        GROUP BY v.report_id, v.content_hash
        """,
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return {(row["report_id"], bytes(row["content_hash"])): row["version"] for row in rows}


async def missing_media(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    """For each report, the referenced photos that do not count yet (their attacher has not
    uploaded them), in first-reference order."""
    rows = await conn.fetch(
        f"""
        SELECT rm.report_id, rm.sha256, min(rm.position) AS first_position
        FROM report_media rm
        WHERE rm.report_id = ANY($1::uuid[])
          AND NOT {possessed_sql("rm")}
        GROUP BY rm.report_id, rm.sha256
        ORDER BY rm.report_id, first_position
        """,
        ids,
    )
    found: dict[uuid.UUID, list[str]] = {report_id: [] for report_id in ids}
    for row in rows:
        found[row["report_id"]].append(row["sha256"])
    return found


async def get_reports(conn: asyncpg.Connection, ids: list[uuid.UUID], viewer: Visibility) -> list[asyncpg.Record]:
    """Rows for the report read model, in the order of ``ids``, as ``viewer`` may see them: the
    merged reports and duplicate candidates it names are only those ``viewer`` may see."""
    rows = await conn.fetch(
        f"""
        SELECT r.id, r.kind, r.body, r.author_id, u.username AS author_username, r.device_id,
               r.received_at, r.updated_at, r.version, r.status, r.duplicate_of, r.jurisdiction,
               j.path AS jurisdiction_path, r.verified_at, r.rectification, r.rectification_deadline,
               r.rectified_at, r.rectification_note, r.closed_at, r.listed_level, r.listed_deadline,
               coalesce((SELECT array_agg(d.id ORDER BY d.received_at, d.id) FROM reports d
                         JOIN jurisdictions dj ON dj.code = d.jurisdiction
                         WHERE d.duplicate_of = r.id AND {visible_sql("d", "dj.path", "$2", "$3")}),
                        '{{}}') AS merged_from,
               {possible_duplicates_sql("$2", "$3")} AS possible_duplicates
        FROM reports r
        JOIN jurisdictions j ON j.code = r.jurisdiction
        JOIN users u ON u.id = r.author_id
        WHERE r.id = ANY($1::uuid[])
        """,
        ids, viewer.author_id, viewer.path_prefix,
    )
    by_id = {row["id"]: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


async def list_media_of_reports(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[asyncpg.Record]]:
    rows = await conn.fetch(
        f"""
        SELECT rm.report_id, rm.position, rm.sha256, rm.role, rm.caption, m.sha256 IS NOT NULL AS present,
               m.content_type, m.bytes, m.width, m.height, m.taken_at, m.taken_at_local, m.lat, m.lon,
               m.make, m.model
        FROM report_media rm
        LEFT JOIN media m ON m.sha256 = rm.sha256 AND {possessed_sql("rm")}
        WHERE rm.report_id = ANY($1::uuid[])
        ORDER BY rm.report_id, rm.position
        """,
        ids,
    )
    found: dict[uuid.UUID, list[asyncpg.Record]] = {i: [] for i in ids}
    for row in rows:
        found[row["report_id"]].append(row)
    return found


async def incident_report_ids(conn: asyncpg.Connection, incident_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM reports WHERE incident_id = $1 ORDER BY observed_at, received_at, id", incident_id
    )
    return [row["id"] for row in rows]
