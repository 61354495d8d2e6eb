"""SQL for users, sessions, devices, enrollments and throttling."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from fieldsync.domain.views import DeviceView, UserView

_PRINCIPAL_COLUMNS = """
    u.id AS user_id, u.username, u.role, u.jurisdiction, j.path AS jurisdiction_path,
    u.disabled_at
"""


async def get_session_principal(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        SELECT {_PRINCIPAL_COLUMNS}, s.expires_at, s.revoked_at
        FROM sessions s
        JOIN users u ON u.id = s.user_id
        JOIN jurisdictions j ON j.code = u.jurisdiction
        WHERE s.token_hash = $1
        """,
        token_hash,
    )


async def get_device_principal(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""
        SELECT {_PRINCIPAL_COLUMNS}, d.id AS device_id, d.revoked_at, d.last_seen_at
        FROM devices d
        JOIN users u ON u.id = d.user_id
        JOIN jurisdictions j ON j.code = u.jurisdiction
        WHERE d.token_hash = $1
        """,
        token_hash,
    )


DEVICE_SEEN_EVERY = dt.timedelta(minutes=5)


def device_seen_due(last_seen_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether ``mark_device_seen`` would write: callers skip the statement when it would not."""
    return last_seen_at is None or last_seen_at < now - DEVICE_SEEN_EVERY


async def mark_device_seen(conn: asyncpg.Connection, device_id: uuid.UUID, now: dt.datetime) -> None:
    """Record a device's last request, at most once every five minutes (no write per request)."""
    await conn.execute(
        """
        UPDATE devices SET last_seen_at = $2
        WHERE id = $1 AND (last_seen_at IS NULL OR last_seen_at < $2::timestamptz - $3::interval)
        """,
        device_id,
        now,
        DEVICE_SEEN_EVERY,
    )


async def get_user_by_username(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT u.id, u.username, u.display_name, u.role, u.jurisdiction, j.path AS jurisdiction_path,
               u.password_hash, u.created_at, u.disabled_at
        FROM users u JOIN jurisdictions j ON j.code = u.jurisdiction
        WHERE lower(u.username) = lower($1)
        """,
        username,
    )


def user_view(row: asyncpg.Record) -> UserView:
    return UserView(
        id=row["id"], username=row["username"], display_name=row["display_name"], role=row["role"],
        jurisdiction=row["jurisdiction"], created_at=row["created_at"], disabled=row["disabled_at"] is not None,
    )


def device_view(row: asyncpg.Record) -> DeviceView:
    return DeviceView(
        id=row["id"], label=row["label"], platform=row["platform"], user_id=row["user_id"], username=row["username"],
        jurisdiction=row["jurisdiction"], created_at=row["created_at"], last_seen_at=row["last_seen_at"],
        revoked_at=row["revoked_at"],
    )


async def insert_user(
    conn: asyncpg.Connection,
    *,
    username: str,
    role: str,
    jurisdiction: str,
    password_hash: str | None,
    display_name: str | None,
    created_by: uuid.UUID | None,
) -> UserView:
    return user_view(await conn.fetchrow(
        """
        INSERT INTO users (username, role, jurisdiction, password_hash, display_name, created_by)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING id, username, display_name, role, jurisdiction, created_at, disabled_at
        """,
        username,
        role,
        jurisdiction,
        password_hash,
        display_name,
        created_by,
    ))


async def list_users(
    conn: asyncpg.Connection, *, scope_prefix: str, roles: list[str], after: str | None, limit: int
) -> list[UserView]:
    rows = await conn.fetch(
        """
        SELECT u.id, u.username, u.display_name, u.role, u.jurisdiction, u.created_at, u.disabled_at
        FROM users u JOIN jurisdictions j ON j.code = u.jurisdiction
        WHERE j.path LIKE $1 || '%' AND u.role = ANY($2::text[])
          AND ($3::text IS NULL OR lower(u.username) > lower($3))
        ORDER BY lower(u.username)
        LIMIT $4
        """,
        scope_prefix,
        roles,
        after,
        limit,
    )
    return [user_view(row) for row in rows]


async def insert_session(
    conn: asyncpg.Connection, *, token_hash: bytes, user_id: uuid.UUID, expires_at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        token_hash,
        user_id,
        expires_at,
    )


async def insert_enrollment(
    conn: asyncpg.Connection,
    *,
    code_hash: bytes,
    user_id: uuid.UUID,
    created_by: uuid.UUID,
    expires_at: dt.datetime,
) -> None:
    await conn.execute(
        "INSERT INTO enrollments (code_hash, user_id, created_by, expires_at) VALUES ($1, $2, $3, $4)",
        code_hash,
        user_id,
        created_by,
        expires_at,
    )


async def get_enrollment_for_update(conn: asyncpg.Connection, code_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        SELECT e.user_id, e.created_by, e.expires_at, e.used_at, u.role, u.disabled_at
        FROM enrollments e JOIN users u ON u.id = e.user_id
        WHERE e.code_hash = $1
        FOR UPDATE OF e
        """,
        code_hash,
    )


async def mark_enrollment_used(
    conn: asyncpg.Connection, *, code_hash: bytes, device_id: uuid.UUID, now: dt.datetime
) -> None:
    await conn.execute(
        "UPDATE enrollments SET used_at = $3, device_id = $2 WHERE code_hash = $1",
        code_hash,
        device_id,
        now,
    )


async def insert_device(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    label: str,
    platform: str | None,
    token_hash: bytes,
    enrolled_by: uuid.UUID | None,
    now: dt.datetime,
) -> asyncpg.Record:
    return await conn.fetchrow(
        """
        INSERT INTO devices (user_id, label, platform, token_hash, enrolled_by, created_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING id
        """,
        user_id,
        label,
        platform,
        token_hash,
        enrolled_by,
        now,
    )


_DEVICE_COLUMNS = """
    d.id, d.label, d.platform, d.created_at, d.last_seen_at, d.revoked_at,
    u.id AS user_id, u.username, u.jurisdiction
"""


async def list_devices(
    conn: asyncpg.Connection, *, scope_prefix: str, after: uuid.UUID | None, limit: int
) -> list[DeviceView]:
    rows = await conn.fetch(
        f"""
        SELECT {_DEVICE_COLUMNS}
        FROM devices d
        JOIN users u ON u.id = d.user_id
        JOIN jurisdictions j ON j.code = u.jurisdiction
        WHERE j.path LIKE $1 || '%' AND ($2::uuid IS NULL OR d.id > $2)
        ORDER BY d.id
        LIMIT $3
        """,
        scope_prefix,
        after,
        limit,
    )
    return [device_view(row) for row in rows]


async def get_device_in_scope(
    conn: asyncpg.Connection, *, device_id: uuid.UUID, scope_prefix: str
) -> DeviceView | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_DEVICE_COLUMNS}
        FROM devices d
        JOIN users u ON u.id = d.user_id
        JOIN jurisdictions j ON j.code = u.jurisdiction
        WHERE d.id = $1 AND j.path LIKE $2 || '%'
        """,
        device_id,
        scope_prefix,
    )
    return device_view(row) if row is not None else None


async def revoke_device(
    conn: asyncpg.Connection, *, device_id: uuid.UUID, revoked_by: uuid.UUID, now: dt.datetime
) -> None:
    await conn.execute(
        "UPDATE devices SET revoked_at = $3, revoked_by = $2 WHERE id = $1 AND revoked_at IS NULL",
        device_id,
        revoked_by,
        now,
    )


async def upsert_attempt(
    conn: asyncpg.Connection, *, scope: str, key: str, now: dt.datetime, window_s: int
) -> asyncpg.Record:
    """Count one attempt and return the count in the current window (older windows start over)."""
    return await conn.fetchrow(
        """
        INSERT INTO auth_failures AS f (scope, key, failures, window_started_at)
        VALUES ($1, $2, 1, $3)
        ON CONFLICT ON CONSTRAINT auth_failures_pkey DO UPDATE SET
            failures = CASE WHEN f.window_started_at <= $3 - make_interval(secs => $4)
                            THEN 1 ELSE f.failures + 1 END,
            window_started_at = CASE WHEN f.window_started_at <= $3 - make_interval(secs => $4)
                                     THEN $3 ELSE f.window_started_at END
        RETURNING failures, window_started_at
        """,
        scope,
        key,
        now,
        float(window_s),
    )


async def forgive_attempt(conn: asyncpg.Connection, *, scope: str, key: str) -> None:
    """Take one attempt back from a counter (a success counted beside others' failures)."""
    await conn.execute(
        "UPDATE auth_failures SET failures = greatest(failures - 1, 0) WHERE scope = $1 AND key = $2", scope, key
    )


async def clear_failures(conn: asyncpg.Connection, *, scope: str, key: str) -> None:
    await conn.execute("DELETE FROM auth_failures WHERE scope = $1 AND key = $2", scope, key)


async def stale_failures(conn: asyncpg.Connection, *, window_before: dt.datetime, delete: bool) -> int:
    """Failure counters whose window began before ``window_before``: inert, because the next
    attempt under that key starts a new window anyway. Deleted unless ``delete`` is false."""
    if not delete:
        return int(await conn.fetchval("SELECT count(*) FROM auth_failures WHERE window_started_at < $1", window_before))
    status = await conn.execute("DELETE FROM auth_failures WHERE window_started_at < $1", window_before)
    return int(status.split()[-1])


async def revoke_session(conn: asyncpg.Connection, *, token_hash: bytes, now: dt.datetime) -> None:
    await conn.execute(
        "UPDATE sessions SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL", token_hash, now
    )
