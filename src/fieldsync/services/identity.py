"""Identity use cases: authenticate a bearer token, log in, users, enrollment codes, devices.

Login and device enrollment are throttled: every attempt is counted *before* its secret is
checked and the count is dropped on success, so guesses sent in parallel cannot outrun the limit
(checking first and counting failures afterwards let any number of concurrent guesses through).
Logins are counted twice: per (username, client), and per client across usernames, so that
rotating usernames gains a guesser nothing; a success takes back only its own attempt from the
client's count, so one good password does not buy more guesses at others.

Argon2 (64 MiB and tens of milliseconds per call) runs on two threads of its own with a bounded
queue: a burst of logins can neither starve the worker threads that ingest decodes photos on
nor queue without limit (beyond it, ``server.busy``).
The count must survive the failed attempt, so those two run their own short transactions instead
of one owned by the caller. Every other function runs inside the caller's transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fieldsync import errors
from fieldsync.db import identity as q
from fieldsync.db import reference as ref
from fieldsync.db.transactions import transaction
from fieldsync.domain import tokens
from fieldsync.domain.principals import Principal, Role, require_role
from fieldsync.domain.views import DeviceView, UserView

T = TypeVar("T")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("fieldsync-timing-equaliser")
ARGON2_THREADS = 2
ARGON2_QUEUE = 32
_argon2_pool = ThreadPoolExecutor(max_workers=ARGON2_THREADS, thread_name_prefix="fieldsync-argon2")
_argon2_queued = 0


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    max_failures: int
    window_s: int
    client_max_failures: int = 20


def _argon2_full() -> bool:
    return _argon2_queued >= ARGON2_QUEUE


async def _argon2(func: Callable[..., T], *args: object) -> T:
    """Run an argon2 call on its own small pool (see the module docstring)."""
    global _argon2_queued
    if _argon2_full():
        raise errors.ServerBusy("too many sign-ins at once; retry shortly", retry_after_s=2)
    _argon2_queued += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(_argon2_pool, func, *args)
    finally:
        _argon2_queued -= 1


def _principal(row: asyncpg.Record, device_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        user_id=row["user_id"],
        username=row["username"],
        role=Role(row["role"]),
        jurisdiction=row["jurisdiction"],
        jurisdiction_path=row["jurisdiction_path"],
        device_id=device_id,
    )


async def authenticate(conn: asyncpg.Connection, *, token: str, now: dt.datetime) -> Principal:
    """The principal behind a bearer token, or the precise reason it is refused."""
    token_hash = tokens.digest(token)
    if token.startswith(tokens.DEVICE_PREFIX):
        row = await q.get_device_principal(conn, token_hash)
        if row is None:
            raise errors.TokenInvalid()
        if row["revoked_at"] is not None or row["disabled_at"] is not None:
            raise errors.TokenRevoked()
        if q.device_seen_due(row["last_seen_at"], now):  # a statement per request only every 5 min
            await q.mark_device_seen(conn, row["device_id"], now)
        return _principal(row, device_id=row["device_id"])
    if token.startswith(tokens.SESSION_PREFIX):
        row = await q.get_session_principal(conn, token_hash)
        if row is None:
            raise errors.TokenInvalid()
        if row["revoked_at"] is not None or row["disabled_at"] is not None:
            raise errors.TokenRevoked("the session has been revoked")
        if row["expires_at"] <= now:
            raise errors.TokenExpired()
        return _principal(row)
    raise errors.TokenInvalid()


async def _count_attempt(
    conn: asyncpg.Connection, *, scope: str, key: str, now: dt.datetime, policy: ThrottlePolicy
) -> None:
    """Count this attempt; refuse it when the attempts in the window exceed the policy."""
    row = await q.upsert_attempt(conn, scope=scope, key=key, now=now, window_s=policy.window_s)
    if row["failures"] <= policy.max_failures:
        return
    window_end = row["window_started_at"] + dt.timedelta(seconds=policy.window_s)
    if window_end > now:
        raise errors.Throttled(
            "too many failed attempts; try again later",
            retry_after_s=max(1, int((window_end - now).total_seconds()) + 1),
        )


async def login(
    conn: asyncpg.Connection,
    *,
    username: str,
    password: str,
    client: str,
    now: dt.datetime,
    session_ttl_s: int,
    throttle: ThrottlePolicy,
) -> tuple[str, dt.datetime]:
    """Exchange a username and password for a session token; throttled per (username, client) and
    per client."""
    if _argon2_full():
        raise errors.ServerBusy("too many sign-ins at once; retry shortly", retry_after_s=2)
    key = f"{username.lower()}|{client}"
    client_policy = ThrottlePolicy(max_failures=throttle.client_max_failures, window_s=throttle.window_s)
    await _count_attempt(conn, scope="login_client", key=client, now=now, policy=client_policy)
    await _count_attempt(conn, scope="login", key=key, now=now, policy=throttle)
    user = await q.get_user_by_username(conn, username)
    stored = user["password_hash"] if user is not None and user["disabled_at"] is None else None
    if not await _argon2(_verify_password, stored, password):
        raise errors.BadCredentials()
    assert user is not None
    async with transaction(conn):
        issued = await issue_session(conn, user_id=user["id"], now=now, ttl_s=session_ttl_s)
        await q.clear_failures(conn, scope="login", key=key)
        await q.forgive_attempt(conn, scope="login_client", key=client)
    return issued


async def issue_session(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, now: dt.datetime, ttl_s: int
) -> tuple[str, dt.datetime]:
    token = tokens.new_session_token()
    expires_at = now + dt.timedelta(seconds=ttl_s)
    await q.insert_session(conn, token_hash=tokens.digest(token), user_id=user_id, expires_at=expires_at)
    return token, expires_at


def _verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists, so timing does not reveal usernames."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await _argon2(_hasher.hash, password)


async def create_user(
    conn: asyncpg.Connection,
    actor: Principal | None,
    *,
    username: str,
    role: Role,
    jurisdiction: str,
    password: str | None,
    display_name: str | None,
) -> UserView:
    """Create a user. Admins create anyone; supervisors create inspectors in their subtree.

    ``actor`` is None for the command line, which acts with the machine owner's authority.
    """
    if actor is not None:
        require_role(actor, Role.ADMIN, Role.SUPERVISOR)
        if actor.role is Role.SUPERVISOR and role is not Role.INSPECTOR:
            raise errors.RoleForbidden("supervisors may create inspector users only")
    place = await ref.get_jurisdiction(conn, jurisdiction)
    if place is None:
        raise errors.JurisdictionUnknown(f"no jurisdiction with code {jurisdiction}", field="jurisdiction")
    if actor is not None and not actor.sees(place["path"]):
        raise errors.JurisdictionOutOfScope(field="jurisdiction")
    password_hash = await hash_password(password) if password else None
    return await q.insert_user(
        conn,
        username=username,
        role=role.value,
        jurisdiction=jurisdiction,
        password_hash=password_hash,
        display_name=display_name,
        created_by=actor.user_id if actor else None,
    )


async def list_users(
    conn: asyncpg.Connection, actor: Principal, *, after: str | None, limit: int
) -> list[UserView]:
    require_role(actor, Role.ADMIN, Role.SUPERVISOR)
    roles = [r.value for r in Role] if actor.is_admin else [Role.INSPECTOR.value]
    return await q.list_users(conn, scope_prefix=actor.scope_prefix, roles=roles, after=after, limit=limit)


async def issue_enrollment(
    conn: asyncpg.Connection, actor: Principal, *, username: str, ttl_s: int, now: dt.datetime
) -> tuple[str, dt.datetime]:
    """A one-time code with which a device can enroll for the inspector ``username``."""
    require_role(actor, Role.ADMIN, Role.SUPERVISOR)
    user = await q.get_user_by_username(conn, username)
    if user is None or not actor.sees(user["jurisdiction_path"]):
        raise errors.UserNotFound(f"no user {username!r} in your jurisdiction", field="username")
    if user["role"] != Role.INSPECTOR.value or user["disabled_at"] is not None:
        raise errors.UserNotInspector(field="username")
    code = tokens.new_enrollment_code()
    expires_at = now + dt.timedelta(seconds=ttl_s)
    await q.insert_enrollment(
        conn, code_hash=tokens.digest(code), user_id=user["id"], created_by=actor.user_id, expires_at=expires_at
    )
    return code, expires_at


async def enroll_device(
    conn: asyncpg.Connection,
    *,
    code: str,
    label: str,
    platform: str | None,
    client: str,
    now: dt.datetime,
    throttle: ThrottlePolicy,
) -> tuple[uuid.UUID, str]:
    """Trade a one-time enrollment code for a device id and a device token; throttled per client."""
    await _count_attempt(conn, scope="enroll", key=client, now=now, policy=throttle)
    async with transaction(conn):
        enrolled = await _redeem(conn, code=code, label=label, platform=platform, now=now)
    await q.clear_failures(conn, scope="enroll", key=client)
    return enrolled


async def _redeem(
    conn: asyncpg.Connection, *, code: str, label: str, platform: str | None, now: dt.datetime
) -> tuple[uuid.UUID, str]:
    """Use an enrollment code once, inside the caller's transaction: a new device and its token."""
    code_hash = tokens.digest(tokens.normalize_enrollment_code(code))
    row = await q.get_enrollment_for_update(conn, code_hash)
    if row is None:
        raise errors.EnrollmentCodeInvalid()
    if row["used_at"] is not None:
        raise errors.EnrollmentCodeUsed()
    if row["expires_at"] <= now:
        raise errors.EnrollmentCodeExpired()
    if row["role"] != Role.INSPECTOR.value or row["disabled_at"] is not None:
        raise errors.EnrollmentCodeInvalid("the user of this code can no longer enroll devices")
    token = tokens.new_device_token()
    device = await q.insert_device(
        conn,
        user_id=row["user_id"],
        label=label,
        platform=platform,
        token_hash=tokens.digest(token),
        enrolled_by=row["created_by"],
        now=now,
    )
    await q.mark_enrollment_used(conn, code_hash=code_hash, device_id=device["id"], now=now)
    return device["id"], token


async def enroll_device_for(
    conn: asyncpg.Connection,
    actor: Principal | None,
    *,
    username: str,
    label: str,
    platform: str | None,
    now: dt.datetime,
) -> tuple[uuid.UUID, str]:
    """Enroll a device for an inspector at once (a supervisor hands over a configured phone).

    A supervisor's or admin's leaves the same enrollment record a code does, issued and used in
    the caller's transaction; ``actor`` None is the command line (the machine owner's authority).
    """
    if actor is not None:
        code, _ = await issue_enrollment(conn, actor, username=username, ttl_s=60, now=now)
        return await _redeem(conn, code=code, label=label, platform=platform, now=now)
    user = await q.get_user_by_username(conn, username)
    if user is None:
        raise errors.UserNotFound(f"no user {username!r}", field="username")
    if user["role"] != Role.INSPECTOR.value or user["disabled_at"] is not None:
        raise errors.UserNotInspector(field="username")
    token = tokens.new_device_token()
    device = await q.insert_device(
        conn, user_id=user["id"], label=label, platform=platform, token_hash=tokens.digest(token), enrolled_by=None,
        now=now,
    )
    return device["id"], token


async def list_devices(
    conn: asyncpg.Connection, actor: Principal, *, after: uuid.UUID | None, limit: int
) -> list[DeviceView]:
    require_role(actor, Role.ADMIN, Role.SUPERVISOR)
    return await q.list_devices(conn, scope_prefix=actor.scope_prefix, after=after, limit=limit)


async def revoke_device(
    conn: asyncpg.Connection, actor: Principal, *, device_id: uuid.UUID, now: dt.datetime
) -> DeviceView:
    """Revoke a device: its token fails with ``auth.revoked`` from its very next request."""
    require_role(actor, Role.ADMIN, Role.SUPERVISOR)
    device = await q.get_device_in_scope(conn, device_id=device_id, scope_prefix=actor.scope_prefix)
    if device is None:
        raise errors.DeviceNotFound()
    await q.revoke_device(conn, device_id=device_id, revoked_by=actor.user_id, now=now)
    refreshed = await q.get_device_in_scope(conn, device_id=device_id, scope_prefix=actor.scope_prefix)
    assert refreshed is not None
    return refreshed


async def end_session(conn: asyncpg.Connection, *, token: str, now: dt.datetime) -> None:
    """Log out: the session token fails with ``auth.revoked`` from its next use on."""
    await q.revoke_session(conn, token_hash=tokens.digest(token), now=now)
