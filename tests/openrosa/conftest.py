"""Fixtures for the OpenRosa tests: a county supervisor, an inspector of 沁源县 140431 and a phone
enrolled for it through ``POST /v1/devices/collect``, driven by the ``Collect`` stand-in."""

from __future__ import annotations

import dataclasses
from typing import Any

import asyncpg
import httpx
import pytest

from tests.openrosa.collect import Collect
from tests.support import Actor, MutableClock, make_user


@dataclasses.dataclass
class Phone:
    collect: Collect
    inspector: Actor
    supervisor: Actor
    device: dict[str, Any]

    @property
    def token(self) -> str:
        token: str = self.device["token"]
        return token

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def enroll(client: httpx.AsyncClient, supervisor: Actor, username: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/devices/collect", json={"username": username, "label": "王工的手机"}, headers=supervisor.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
async def phone(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> Phone:
    now = clock.now()
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140400", now=now)
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=now)
    device = await enroll(client, supervisor, inspector.username)
    return Phone(Collect(client, device["server_url"]), inspector, supervisor, device)
