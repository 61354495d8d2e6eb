"""Any JSON value in any field of any request body gives an answer below 500, and in a push the
well-formed mutations around a malformed one still apply (SPEC §5).

Each JSON-bodied operation of the served OpenAPI document has a valid base body here (a test
fails when an operation is added without one). Every place in each body (the whole body, every
member, every list item) gets each of a list of hostile values in turn, and is deleted; then
Hypothesis puts arbitrary JSON values at random places, deletes them or adds unknown members:
wrong types, NUL bytes, newlines, huge and negative numbers, deep lists. Schemathesis sends what
the schema allows; this sends what it does not.

The app runs in-process on an event loop of its own (an anyio blocking portal), as in
``test_device_model``, because Hypothesis runs examples synchronously.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldsync.app import create_app
from fieldsync.db.pool import connect
from fieldsync.settings import Settings
from tests.conftest import running
from tests.support import Actor, MutableClock, hazard_report, make_user

Body = Any
Place = tuple[Any, ...]

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["", "\x00", "140431\n", "ab" * 32 + "\n", "2026-06-01", "hazard", "verify", "-1"]))
ANY_JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=10)


HOSTILE: list[Any] = [None, True, -1, 2**64, 1.5e308, "", "\x00", "140431\n", "ab" * 32 + "\n", [], {},
                      [[[["deep"]]]]]


def places(body: Body, at: Place = ()) -> Iterator[Place]:
    """Every place in a JSON document: the root, each member, each list item, recursively."""
    yield at
    if isinstance(body, dict):
        for key, value in body.items():
            yield from places(value, (*at, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from places(value, (*at, index))


def changed(body: Body, place: Place, how: str, value: Any) -> Body:
    """A copy of ``body`` with ``value`` put at ``place`` (or the member removed, or one added)."""
    if not place:
        return value if how == "replace" else body
    result = copy.deepcopy(body)
    parent = result
    for step in place[:-1]:
        parent = parent[step]
    last = place[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"unknown_{len(parent)}"] = value
    else:
        parent[last] = value
    return result


@dataclasses.dataclass
class World:
    portal: anyio.from_thread.BlockingPortal
    client: httpx.AsyncClient
    admin: Actor
    supervisor: Actor
    inspector: Actor
    report_id: str

    def send(self, method: str, url: str, actor: Actor | None, body: Body) -> httpx.Response:
        headers = actor.headers if actor else {}
        return self.portal.call(lambda: self.client.request(method, url, json=body, headers=headers))


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    template: str
    caller: str | None
    url: Callable[[World], str]
    body: Callable[[World], Body]


OPERATIONS: dict[tuple[str, str], Operation] = {
    (op.method, op.template): op for op in [
        Operation("POST", "/v1/auth/login", None, lambda w: "/v1/auth/login",
                  lambda w: {"username": w.inspector.username, "password": "not it at all"}),
        Operation("POST", "/v1/users", "admin", lambda w: "/v1/users",
                  lambda w: {"username": f"u-{uuid.uuid4().hex[:10]}", "role": "inspector", "jurisdiction": "140431",
                             "password": "long enough password", "display_name": "王"}),
        Operation("POST", "/v1/enrollments", "supervisor", lambda w: "/v1/enrollments",
                  lambda w: {"username": w.inspector.username, "ttl_s": 600}),
        Operation("POST", "/v1/devices/collect", "supervisor", lambda w: "/v1/devices/collect",
                  lambda w: {"username": w.inspector.username, "label": "Collect 手机"}),
        Operation("POST", "/v1/devices/enroll", None, lambda w: "/v1/devices/enroll",
                  lambda w: {"code": "ABCD-EFGH", "label": "phone", "platform": "android"}),
        Operation("POST", "/v1/media/missing", "inspector", lambda w: "/v1/media/missing",
                  lambda w: {"sha256": ["ab" * 32, "cd" * 32]}),
        Operation("PUT", "/v1/reports/{report_id}", "inspector", lambda w: f"/v1/reports/{uuid.uuid4()}",
                  lambda w: {**hazard_report(media=[{"sha256": "ab" * 32, "role": "photo", "caption": "x"}]),
                             "severity": "red", "base_version": 1}),
        Operation("POST", "/v1/reports/{report_id}/comments", "inspector",
                  lambda w: f"/v1/reports/{w.report_id}/comments", lambda w: {"body": "已到现场"}),
        Operation("POST", "/v1/reports/{report_id}/transitions", "supervisor",
                  lambda w: f"/v1/reports/{w.report_id}/transitions",
                  lambda w: {"action": "assign_rectification", "version": 2, "note": "x", "into": str(uuid.uuid4()),
                             "responsible_person": "张三", "measures": "停用", "funds_cny": 1000,
                             "deadline": "2026-07-01T00:00:00+08:00", "contingency_plan": "预案", "level": "140400",
                             "media": [{"sha256": "ab" * 32, "role": "after"}]}),
        Operation("POST", "/v1/webhooks", "admin", lambda w: "/v1/webhooks",
                  lambda w: {"url": "https://hooks.example.invalid/in", "events": ["report.created", "hazard.overdue"],
                             "jurisdiction": "140431"}),
    ]
}
PUSH = ("POST", "/v1/sync/push")


def upsert() -> dict[str, Any]:
    return {"mutation_id": str(uuid.uuid4()), "op": "upsert_report",
            "report": {**hazard_report(), "id": str(uuid.uuid4())}}


def comment(report_id: str) -> dict[str, Any]:
    return {"mutation_id": str(uuid.uuid4()), "op": "add_comment", "report_id": report_id, "body": "复查"}


def rectification(report_id: str) -> dict[str, Any]:
    return {"mutation_id": str(uuid.uuid4()), "op": "submit_rectification", "report_id": report_id, "note": "已整改",
            "media": [{"sha256": "ab" * 32, "role": "after"}]}


@contextlib.asynccontextmanager
async def serve(app_settings: Settings, clock: MutableClock) -> AsyncIterator[tuple[httpx.AsyncClient, list[Actor], str]]:
    app = create_app(app_settings, clock=clock)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
            conn = await connect(app_settings.database_url.value)
            try:
                now = clock.now()
                actors = [await make_user(conn, role=role, jurisdiction=where, now=now)
                          for role, where in (("admin", "140000"), ("supervisor", "140431"), ("inspector", "140431"))]
            finally:
                await conn.close()
            report_id = str(uuid.uuid4())
            created = await client.put(f"/v1/reports/{report_id}", json=hazard_report(), headers=actors[2].headers)
            assert created.status_code == 201, created.text
            yield client, actors, report_id


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    app_settings = Settings.from_env({}, data_dir=tmp_path / "data", database_url=database_url,
                                     media_url=f"file://{tmp_path / 'media'}", log_json=False, log_level="ERROR",
                                     throttle_max_failures=10_000, throttle_client_max_failures=10_000)
    with anyio.from_thread.start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(serve(app_settings, MutableClock())) as (client, actors, report_id):
        yield World(portal, client, *actors, report_id=report_id)


def json_operations(world: World) -> set[tuple[str, str]]:
    document = world.portal.call(lambda: world.client.get("/schema/openapi.json")).json()
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and "application/json" in operation.get("requestBody", {}).get("content", {})
    }


def test_every_json_operation_has_a_base_body_here(world: World) -> None:
    assert json_operations(world) == set(OPERATIONS) | {PUSH}


@st.composite
def bent(draw: st.DrawFn, base: Body) -> Body:
    place = draw(st.sampled_from(list(places(base))))
    return changed(base, place, draw(st.sampled_from(["replace", "replace", "delete", "add"])), draw(ANY_JSON))


def sweep(make: Callable[[], Body]) -> Iterator[Body]:
    """Every hostile value at every place, and every place deleted, each in a fresh base body (a
    push answers a replayed mutation_id with its first result without applying it again)."""
    for place in places(make()):
        for value in HOSTILE:
            yield changed(make(), place, "replace", value)
        if place:
            yield changed(make(), place, "delete", None)


def test_every_hostile_value_in_every_field_of_every_body_is_answered_below_500(world: World) -> None:
    failures = []
    for operation in OPERATIONS.values():
        actor = getattr(world, operation.caller) if operation.caller else None
        for body in sweep(lambda: operation.body(world)):
            response = world.send(operation.method, operation.url(world), actor, body)
            if response.status_code >= 500:
                failures.append((operation.method, operation.template, body, response.text[:200]))
    assert not failures, failures[:5]


def test_every_hostile_value_in_every_field_of_a_mutation_leaves_its_neighbours_applied(world: World) -> None:
    failures = []
    for make in (upsert, lambda: comment(world.report_id), lambda: rectification(world.report_id)):
        for odd in sweep(make):
            batch = [upsert(), odd, comment(world.report_id), upsert()]
            response = world.send("POST", "/v1/sync/push", world.inspector, {"mutations": batch})
            statuses = [r["status"] for r in response.json()["results"]] if response.status_code == 200 else []
            if response.status_code != 200 or [statuses[0], statuses[2], statuses[3]] != ["applied"] * 3:
                failures.append((odd, response.status_code, response.text[:300]))
    assert not failures, failures[:5]


def test_any_json_in_any_field_of_any_body_is_answered_below_500(world: World) -> None:
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(sorted(OPERATIONS.values(), key=lambda o: (o.template, o.method))))
        body = data.draw(bent(operation.body(world)))
        actor = getattr(world, operation.caller) if operation.caller else None
        response = world.send(operation.method, operation.url(world), actor, body)
        assert response.status_code < 500, (operation.method, operation.template, body, response.text)

    for _ in range(len(OPERATIONS)):
        check()


def test_a_malformed_mutation_never_keeps_its_neighbours_from_applying(world: World) -> None:
    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        base = data.draw(st.sampled_from([upsert, comment, rectification]))
        base = base() if base is upsert else base(world.report_id)
        odd = data.draw(bent(base))
        batch = [upsert(), odd, comment(world.report_id), upsert()]
        response = world.send("POST", "/v1/sync/push", world.inspector, {"mutations": batch})
        assert response.status_code == 200, (odd, response.text)
        statuses = [result["status"] for result in response.json()["results"]]
        assert [statuses[0], statuses[2], statuses[3]] == ["applied"] * 3, (odd, response.json())

    check()
