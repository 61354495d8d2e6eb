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


async def jurisdiction_paths(conn: asyncpg.Connection, codes: list[str]) -> dict[str, str]:
    rows = await conn.fetch("SELECT code, path FROM jurisdictions WHERE code = ANY($1::text[])", codes)
    return {row["code"]: row["path"] for row in rows}
