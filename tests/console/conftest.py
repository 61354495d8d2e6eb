"""Console fixtures: the people of the workflow tests, each able to use the console.

The console keeps the API's own session token in its cookie, so a test signs an actor in by
sending that token as ``fieldsync_session`` (``Browser``); one test signs in through the form.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from fieldsync.api.console.security import csrf_for_session
from tests import images
from tests.support import Actor, hazard_report, make_user

PASSWORD = "console-password-1"
FIVE = {
    "responsible_person": "张三", "measures": "更换皮带机跑偏保护装置", "funds_cny": "50000",
    "deadline": "2026-07-01T12:00", "contingency_plan": "停机检修, 人员撤离",
}


class Browser:
    """An actor in the console: session cookie on every request, the CSRF token its forms carry."""

    def __init__(self, client: httpx.AsyncClient, actor: Actor | None) -> None:
        self.client = client
        self.actor = actor
        self.csrf = csrf_for_session(actor.token) if actor else ""

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept-Language": "zh-CN"}
        if self.actor:
            headers["Cookie"] = f"fieldsync_session={self.actor.token}"
        return {**headers, **(extra or {})}

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        return await self.client.post(path, data=form, headers=self._headers(kwargs.pop("headers", None)), **kwargs)


async def create(client: httpx.AsyncClient, actor: Actor, body: dict[str, Any]) -> str:
    report_id = str(uuid.uuid4())
    response = await client.put(f"/v1/reports/{report_id}", json=body, headers=actor.headers)
    assert response.status_code == 201, response.text
    return report_id


async def report(client: httpx.AsyncClient, actor: Actor, report_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/reports/{report_id}", headers=actor.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def api_step(client: httpx.AsyncClient, actor: Actor, report_id: str, action: str, **fields: Any) -> None:
    current = await report(client, actor, report_id)
    response = await client.post(
        f"/v1/reports/{report_id}/transitions", json={"action": action, "version": current["version"], **fields},
        headers=actor.headers,
    )
    assert response.status_code == 200, response.text


async def upload_photo(client: httpx.AsyncClient, actor: Actor, seed: int) -> str:
    photo = images.jpeg(width=64, height=48, seed=seed)
    response = await client.put(
        f"/v1/media/{images.sha256(photo)}", content=photo, headers={**actor.headers, "Content-Type": "image/jpeg"}
    )
    assert response.status_code in (200, 201), response.text
    return images.sha256(photo)


def form_csrf(html: str) -> str:
    found = re.search(r'<input type="hidden" name="(csrf[a-z_]*)" value="([^"]+)"', html)
    assert found, "the page has no CSRF input"
    return found.group(2)


@pytest.fixture
async def people(conn, clock) -> dict[str, Actor]:
    now = clock.now()
    return {
        "inspector": await make_user(conn, role="inspector", jurisdiction="140431", now=now),
        "county": await make_user(conn, role="supervisor", jurisdiction="140431", now=now),
        "city": await make_user(conn, role="supervisor", jurisdiction="140400", username="city.sup",
                                password=PASSWORD, now=now),
        "other_county": await make_user(conn, role="supervisor", jurisdiction="140403", now=now),
        "admin": await make_user(conn, role="admin", jurisdiction="140000", now=now),
    }


@pytest.fixture
def browsers(client: httpx.AsyncClient, people: dict[str, Actor]) -> dict[str, Browser]:
    return {name: Browser(client, actor) for name, actor in people.items()} | {"anonymous": Browser(client, None)}


@pytest.fixture
async def hazard(client: httpx.AsyncClient, people: dict[str, Actor]) -> str:
    """A submitted general hazard of the inspector's in 沁源县, with one photo."""
    sha = await upload_photo(client, people["inspector"], seed=3)
    return await create(client, people["inspector"], hazard_report(media=[{"sha256": sha, "role": "photo"}]))
