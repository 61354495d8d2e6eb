"""SQL for reference data: jurisdictions and categories."""

from __future__ import annotations

import asyncpg


async def get_jurisdiction(conn: asyncpg.Connection, code: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT code, parent_code, name_zh, name_en, level, path FROM jurisdictions WHERE code = $1",
        code,
    )


async def list_jurisdictions(conn: asyncpg.Connection, *, under_path: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT code, parent_code, name_zh, name_en, level, path
        FROM jurisdictions WHERE path LIKE $1 || '%'
        ORDER BY path
        """,
        under_path,
    )


async def insert_jurisdiction(
    conn: asyncpg.Connection,
    *,
    code: str,
    parent_code: str | None,
    name_zh: str,
    name_en: str | None,
    level: str,
    path: str,
) -> bool:
    """Insert one jurisdiction; False when the code exists already (imports are re-runnable)."""
    status = await conn.execute(
        """
        INSERT INTO jurisdictions (code, parent_code, name_zh, name_en, level, path)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT ON CONSTRAINT jurisdictions_pkey DO NOTHING
        """,
        code,
        parent_code,
        name_zh,
        name_en,
        level,
        path,
    )
    return status.endswith(" 1")


async def list_categories(conn: asyncpg.Connection, *, kind: str | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT kind, code, name_zh, name_en FROM categories
        WHERE $1::text IS NULL OR kind = $1
        ORDER BY kind, sort_order, code
        """,
        kind,
    )


async def lookup(
    conn: asyncpg.Connection, *, categories: list[tuple[str, str]], jurisdictions: list[str]
) -> tuple[set[tuple[str, str]], dict[str, str]]:
    """Which of these (kind, code) categories exist, and the paths of these jurisdiction codes.

    One statement for both, because report ingest asks on every request.
    """
    rows = await conn.fetch(
        """
        SELECT c.kind, c.code, NULL::text AS path
        FROM categories c JOIN unnest($1::text[], $2::text[]) AS k(kind, code) ON k.kind = c.kind AND k.code = c.code
        UNION ALL
        SELECT NULL, j.code, j.path FROM jurisdictions j WHERE j.code = ANY($3::text[])
        """,
        [kind for kind, _ in categories],
        [code for _, code in categories],
        jurisdictions,
    )
    found = {(row["kind"], row["code"]) for row in rows if row["kind"] is not None}
    return found, {row["code"]: row["path"] for row in rows if row["kind"] is None}
