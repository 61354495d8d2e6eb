"""Test support: a controllable clock and helpers that create principals through the services."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg

from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal, Role
from fieldsync.services import identity


class MutableClock:
    """A clock tests can move; starts at a fixed instant so results are reproducible."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, **delta: float) -> None:
        self._now += dt.timedelta(**delta)

    def set(self, when: dt.datetime) -> None:
        self._now = when


@dataclasses.dataclass
class Actor:
    """A principal a test can act as: its user row and a bearer token."""

    user_id: uuid.UUID
    username: str
    role: str
    jurisdiction: str
    token: str
    device_id: uuid.UUID | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(
    conn: asyncpg.Connection,
    *,
    role: str,
    jurisdiction: str,
    username: str | None = None,
    password: str | None = None,
    now: dt.datetime,
) -> Actor:
    username = username or f"{role[:3]}-{uuid.uuid4().hex[:10]}"
    async with transaction(conn):
        row = await identity.create_user(
            conn,
            None,
            username=username,
            role=Role(role),
            jurisdiction=jurisdiction,
            password=password,
            display_name=None,
        )
        token, _ = await identity.issue_session(conn, user_id=row.id, now=now, ttl_s=86400)
    return Actor(row.id, username, role, jurisdiction, token)


async def make_device(conn: asyncpg.Connection, inspector: Actor, issuer: Principal, *, now: dt.datetime) -> Actor:
    """Enroll a device for ``inspector`` the way the app does: code, then enroll."""
    async with transaction(conn):
        code, _ = await identity.issue_enrollment(conn, issuer, username=inspector.username, ttl_s=600, now=now)
    device_id, token = await identity.enroll_device(
        conn,
        code=code,
        label="test phone",
        platform="android",
        client=f"test-{uuid.uuid4().hex}",
        now=now,
        throttle=identity.ThrottlePolicy(max_failures=100, window_s=60),
    )
    return dataclasses.replace(inspector, token=token, device_id=device_id)


def principal_of(actor: Actor, path: str) -> Principal:
    return Principal(
        user_id=actor.user_id,
        username=actor.username,
        role=Role(actor.role),
        jurisdiction=actor.jurisdiction,
        jurisdiction_path=path,
        device_id=actor.device_id,
    )


def problem(response: Any) -> dict[str, Any]:
    """The problem document of an error response, checked for the RFC 9457 shape."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert {"type", "title", "status", "code"} <= body.keys()
    assert body["status"] == response.status_code
    return body


def hazard_report(**overrides: Any) -> dict[str, Any]:
    """A valid hazard report body for 沁源县 140431; override any field."""
    body: dict[str, Any] = {
        "kind": "hazard",
        "category": "coal_mine",
        "title": "主斜井皮带机保护装置失效",
        "description": "煤矿主斜井皮带机跑偏保护失效, 现场未停机",
        "jurisdiction": "140431",
        "location": {"lat": 36.5, "lon": 112.3, "accuracy_m": 8.0},
        "observed_at": "2026-06-01T15:30:00+08:00",
        "media": [],
        "enterprise": {"name": "沁源县某煤业有限公司", "credit_code": "91350100M000100Y43", "industry": "coal_mine"},
        "grade": "general",
    }
    body.update(overrides)
    return body


def disaster_report(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "disaster",
        "category": "flood",
        "title": "沁河水位上涨 村道被淹",
        "jurisdiction": "140431",
        "location": {"lat": 36.6, "lon": 112.2, "accuracy_m": 20.0},
        "observed_at": "2026-06-01T14:00:00+08:00",
        "incident_id": "6f1c1d8e-0c55-4d43-9b7e-2f0f6f7f0a11",
        "stage": "initial",
        "as_of": "2026-06-01T14:00:00+08:00",
        "losses": {"affected_people": 120, "evacuated_people": 40},
    }
    body.update(overrides)
    return body


async def settled(conn: asyncpg.Connection, *, timeout_s: float = 20.0) -> None:
    """Wait until the app's background worker has run every due job (near-duplicate detection,
    derivatives, restamps): what a device sees a few seconds after its PUT."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await conn.fetchval("SELECT count(*) FROM jobs WHERE attempts = 0"):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"background jobs still queued after {timeout_s} s")
        await asyncio.sleep(0.02)
