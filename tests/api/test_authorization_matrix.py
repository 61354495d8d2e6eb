"""The authorization matrix: every route the app serves × every kind of caller → the expected answer.

Reading it
----------
``MATRIX`` holds one ``Row`` per (HTTP method, route template) the app serves. The template is
written exactly as Litestar reports it in ``app.routes`` (``/v1/devices/{device_id:uuid}``).
``test_matrix_covers_every_served_route`` enumerates the app's route handlers and fails when a
route has no row, or when a row names a route that is no longer served: a new endpoint cannot
ship without saying who may call it.

The columns are the callers (``Caller``), all created by the ``world`` fixture:

===============  ==========================================================================
``admin``        an admin whose home is 北京市 110000: admins are not scoped by jurisdiction
``sup_in``       the supervisor of 长治市 140400, whose subtree holds every target object
``sup_out``      the supervisor of 潞州区 140403, a sibling county: the targets lie outside
``inspector``    the inspector of 沁源县 140431 who owns the targets (a user session token)
``revoked``      a device enrolled for that inspector and then revoked
``anonymous``    no ``Authorization`` header at all
===============  ==========================================================================

The target objects live in 沁源县 140431: the inspector, its live device, its report and that
report's photo (uploaded by the inspector).

Conventions (SPEC §3): an object outside the caller's scope answers 404 (existence is not
revealed); a role lacking the right answers 403; no token answers 401 ``auth.required``; a
revoked device answers 401 ``auth.revoked``. ``authed(...)`` fills in the last two, which hold
for every protected route, so a row states only the four interesting cells. ``public(...)`` marks
a route that ignores the token: every caller, the revoked device included, gets the same answer.
A HEAD answer has no body, so only its status is compared.

Extending it
------------
Add a ``Row(method, template, expect, call)`` where ``call`` is an async function of the
``World`` returning the concrete ``Call`` (path, optional JSON body). ``call`` runs once per cell,
so a route that consumes or changes its target (revoke, enroll, create) makes a fresh one per
cell through a ``World`` helper; add a helper there when a new kind of target is needed
(a report under review, a rectification task). A 200 does not prove much for lists and batches,
so a row may add ``check``, a yes/no question about the response body (does the list include the
target? was the mutation applied?), and ``Expect.check`` states the answer per caller: that is
how a list proves it is scoped, not only allowed, and a batch that it refuses per item.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from fieldsync.app import create_app
from fieldsync.settings import Settings
from tests import images
from tests.support import Actor, MutableClock, disaster_report, hazard_report, make_device, make_user, principal_of

PASSWORD = "matrix-password-1"


class Caller(enum.StrEnum):
    ADMIN = "admin"
    SUP_IN = "sup_in"
    SUP_OUT = "sup_out"
    INSPECTOR = "inspector"
    REVOKED = "revoked"
    ANONYMOUS = "anonymous"


@dataclasses.dataclass(frozen=True)
class Expect:
    status: int
    code: str | None = None
    check: bool | None = None

    def __str__(self) -> str:
        checked = "" if self.check is None else f" check={self.check}"
        return f"{self.status}{' ' + self.code if self.code else ''}{checked}"


@dataclasses.dataclass(frozen=True)
class Call:
    path: str
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class World:
    """The callers and target objects every row is checked against."""

    client: httpx.AsyncClient
    conn: asyncpg.Connection
    clock: MutableClock
    actors: dict[Caller, Actor]
    inspector: Actor
    device: Actor
    report_id: uuid.UUID
    photo_sha256: str

    def headers(self, caller: Caller) -> dict[str, str]:
        return {} if caller is Caller.ANONYMOUS else self.actors[caller].headers

    async def fresh_device(self) -> Actor:
        issuer = principal_of(self.actors[Caller.SUP_IN], "/140000/140400/")
        return await make_device(self.conn, self.inspector, issuer, now=self.clock.now())

    async def fresh_code(self) -> str:
        response = await self.client.post(
            "/v1/enrollments", json={"username": self.inspector.username}, headers=self.headers(Caller.SUP_IN)
        )
        assert response.status_code == 201, response.text
        code: str = response.json()["code"]
        return code


    async def fresh_report(self, body: dict[str, Any] | None = None) -> str:
        """A new submitted report of the inspector's, for rows whose call changes its target."""
        report_id = str(uuid.uuid4())
        response = await self.client.put(
            f"/v1/reports/{report_id}", json=body or hazard_report(), headers=self.inspector.headers
        )
        assert response.status_code == 201, response.text
        return report_id

    async def fresh_webhook(self) -> str:
        """A new subscription (admins only) to a name that does not resolve: nothing is ever sent."""
        response = await self.client.post(
            "/v1/webhooks", json={"url": "https://hooks.example.invalid/fieldsync", "events": ["report.created"]},
            headers=self.headers(Caller.ADMIN),
        )
        assert response.status_code == 201, response.text
        webhook_id: str = response.json()["id"]
        return webhook_id

    def fresh_photo(self) -> bytes:
        return images.jpeg(width=64, height=48, seed=uuid.uuid4().int & 0xFFFF_FFFF)

    async def fresh_upload(self) -> str:
        """A new tus upload of the inspector's (its URL): uploads belong to the user who made them."""
        response = await self.client.post(
            "/v1/uploads", headers={**TUS, **_upload_creation(self.fresh_photo()), **self.inspector.headers}
        )
        assert response.status_code == 201, response.text
        return response.headers["location"]


def authed(
    *, admin: Expect | int, sup_in: Expect | int, sup_out: Expect | int, inspector: Expect | int
) -> dict[Caller, Expect]:
    cells = {Caller.ADMIN: admin, Caller.SUP_IN: sup_in, Caller.SUP_OUT: sup_out, Caller.INSPECTOR: inspector}
    expected = {caller: cell if isinstance(cell, Expect) else Expect(cell) for caller, cell in cells.items()}
    expected[Caller.REVOKED] = Expect(401, "auth.revoked")
    expected[Caller.ANONYMOUS] = Expect(401, "auth.required")
    return expected


def public(status: int) -> dict[Caller, Expect]:
    return {caller: Expect(status) for caller in Caller}


FORBIDDEN = Expect(403, "auth.forbidden")


@dataclasses.dataclass(frozen=True)
class Row:
    method: str
    template: str
    expect: Mapping[Caller, Expect]
    call: Callable[[World], Awaitable[Call]]
    check: Callable[[World, Any], bool] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.method, self.template

    @property
    def is_public(self) -> bool:
        return all(e.status != 401 for e in self.expect.values())


def at(path: str, json: Any = None) -> Callable[[World], Awaitable[Call]]:
    async def call(world: World) -> Call:
        return Call(path, json)

    return call


async def _new_user(world: World) -> Call:
    return Call("/v1/users", {"username": f"new-{uuid.uuid4().hex[:12]}", "role": "inspector", "jurisdiction": "140431"})


async def _enrollment(world: World) -> Call:
    return Call("/v1/enrollments", {"username": world.inspector.username})


async def _enroll(world: World) -> Call:
    return Call("/v1/devices/enroll", {"code": await world.fresh_code(), "label": "matrix phone"})


async def _collect(world: World) -> Call:
    return Call("/v1/devices/collect", {"username": world.inspector.username, "label": "matrix Collect"})


OPENROSA = {"X-OpenRosa-Version": "1.0"}


def _openrosa(suffix: str) -> Callable[[World], Awaitable[Call]]:
    """A path under the live device's OpenRosa base: the token in the path decides, not the bearer."""

    async def call(world: World) -> Call:
        return Call(f"/openrosa/key/{world.device.token}{suffix}", headers=OPENROSA)

    return call


async def _openrosa_submission(world: World) -> Call:
    from tests.openrosa.collect import multipart_body

    report = hazard_report()
    xml = (
        f"<data id='fieldsync_hazard'><category>{report['category']}</category><title>{report['title']}</title>"
        f"<jurisdiction>140431</jurisdiction><location>36.5 112.3 0 8</location>"
        f"<observed_at>{report['observed_at']}</observed_at><enterprise><name>某煤业</name>"
        f"<credit_code>{report['enterprise']['credit_code']}</credit_code></enterprise><grade>general</grade>"
        f"<meta><instanceID>uuid:{uuid.uuid4()}</instanceID></meta></data>"
    ).encode()
    body, content_type = multipart_body("instance.xml", xml, [], incomplete=False)
    return Call(f"/openrosa/key/{world.device.token}/submission", content=body,
                headers={**OPENROSA, "Content-Type": content_type})


async def _revoke(world: World) -> Call:
    device = await world.fresh_device()
    return Call(f"/v1/devices/{device.device_id}")


async def _login(world: World) -> Call:
    return Call("/v1/auth/login", {"username": world.inspector.username, "password": PASSWORD})


async def _put_report(world: World) -> Call:
    return Call(f"/v1/reports/{uuid.uuid4()}", hazard_report())


def at_report(suffix: str) -> Callable[[World], Awaitable[Call]]:
    async def call(world: World) -> Call:
        return Call(f"/v1/reports/{world.report_id}{suffix}")

    return call


async def _get_report(world: World) -> Call:
    return Call(f"/v1/reports/{world.report_id}")


async def _transition(world: World) -> Call:
    return Call(f"/v1/reports/{await world.fresh_report()}/transitions", {"action": "verify", "version": 1})


async def _comment(world: World) -> Call:
    return Call(f"/v1/reports/{world.report_id}/comments", {"body": "请补充照片"})


async def _incident(world: World) -> Call:
    incident_id = str(uuid.uuid4())
    await world.fresh_report(disaster_report(incident_id=incident_id))
    return Call(f"/v1/incidents/{incident_id}")


async def _upload(world: World) -> Call:
    photo = world.fresh_photo()
    return Call(f"/v1/media/{images.sha256(photo)}", content=photo, headers={"Content-Type": "image/jpeg"})


def _photo(suffix: str = "") -> Callable[[World], Awaitable[Call]]:
    async def call(world: World) -> Call:
        return Call(f"/v1/media/{world.photo_sha256}{suffix}")

    return call


async def _missing(world: World) -> Call:
    return Call("/v1/media/missing", {"sha256": [world.photo_sha256, "0" * 64]})


async def _new_webhook(world: World) -> Call:
    return Call("/v1/webhooks", {"url": "https://hooks.example.invalid/in", "events": ["report.created"]})


async def _webhook(world: World) -> Call:
    return Call(f"/v1/webhooks/{await world.fresh_webhook()}")


async def _deliveries(world: World) -> Call:
    return Call(f"/v1/webhooks/{await world.fresh_webhook()}/deliveries")


async def _retry_delivery(world: World) -> Call:
    webhook_id = await world.fresh_webhook()
    await world.fresh_report()
    listed = await world.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=world.headers(Caller.ADMIN))
    (delivery,) = listed.json()["items"]
    return Call(f"/v1/webhooks/{webhook_id}/deliveries/{delivery['id']}/retry")


async def _listed_webhooks(world: World) -> Call:
    await world.fresh_webhook()
    return Call("/v1/webhooks")


def _lists_webhook(world: World, body: Any) -> bool:
    return len(body["items"]) > 0


TUS = {"Tus-Resumable": "1.0.0"}


def _upload_creation(photo: bytes) -> dict[str, str]:
    sha256 = base64.b64encode(images.sha256(photo).encode()).decode()
    content_type = base64.b64encode(b"image/jpeg").decode()
    return {"Upload-Length": str(len(photo)), "Upload-Metadata": f"sha256 {sha256},content_type {content_type}"}


async def _create_upload(world: World) -> Call:
    return Call("/v1/uploads", headers={**TUS, **_upload_creation(world.fresh_photo())})


async def _upload_offset(world: World) -> Call:
    return Call(await world.fresh_upload(), headers=TUS)


async def _upload_chunk(world: World) -> Call:
    headers = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    return Call(await world.fresh_upload(), content=b"\xff\xd8", headers=headers)


async def _push(world: World) -> Call:
    mutation = {"mutation_id": str(uuid.uuid4()), "op": "upsert_report", "report": hazard_report(id=str(uuid.uuid4()))}
    return Call("/v1/sync/push", {"mutations": [mutation]})


def _applied(world: World, body: Any) -> bool:
    return [r["status"] for r in body["results"]] == ["applied"]


def _pulls_report(world: World, body: Any) -> bool:
    return str(world.report_id) in {change["id"] for change in body["changes"]}


def _counts_report(world: World, body: Any) -> bool:
    """The target hazard is the world's only report: the figures count it or they are empty."""
    return bool(body["current"]["reports"] > 0 and body["current"]["hazards"]["found"] > 0)


def _lists_report(world: World, body: Any) -> bool:
    return str(world.report_id) in {item["id"] for item in body["items"]}


def _exports_report(world: World, body: Any) -> bool:
    return str(world.report_id) in body


def _lists_inspector(world: World, body: Any) -> bool:
    return world.inspector.username in {item["username"] for item in body["items"]}


def _lists_device(world: World, body: Any) -> bool:
    return str(world.device.device_id) in {item["id"] for item in body["items"]}


MATRIX: list[Row] = [
    # --- operations and documentation: public --------------------------------------------------
    Row("GET", "/healthz", public(200), at("/healthz")),
    Row("GET", "/readyz", public(200), at("/readyz")),
    Row("GET", "/metrics", public(200), at("/metrics")),
    Row("GET", "/schema", public(200), at("/schema")),
    Row("GET", "/schema/scalar", public(200), at("/schema/scalar")),
    Row("GET", "/schema/openapi.json", public(200), at("/schema/openapi.json")),
    Row("GET", "/schema/{path:str}", public(404), at("/schema/no-such-renderer")),
    # --- identity --------------------------------------------------------------------------------
    Row("POST", "/v1/auth/login", public(200), _login),
    Row("POST", "/v1/devices/enroll", public(201), _enroll),
    Row("GET", "/v1/me", authed(admin=200, sup_in=200, sup_out=200, inspector=200), at("/v1/me")),
    Row(
        "POST",
        "/v1/users",
        authed(admin=201, sup_in=201, sup_out=Expect(403, "jurisdiction.out_of_scope"), inspector=FORBIDDEN),
        _new_user,
    ),
    Row(
        "GET",
        "/v1/users",
        authed(
            admin=Expect(200, check=True), sup_in=Expect(200, check=True), sup_out=Expect(200, check=False),
            inspector=FORBIDDEN,
        ),
        at("/v1/users"),
        check=_lists_inspector,
    ),
    Row(
        "POST",
        "/v1/enrollments",
        authed(admin=201, sup_in=201, sup_out=Expect(404, "user.not_found"), inspector=FORBIDDEN),
        _enrollment,
    ),
    Row(
        "GET",
        "/v1/devices",
        authed(
            admin=Expect(200, check=True), sup_in=Expect(200, check=True), sup_out=Expect(200, check=False),
            inspector=FORBIDDEN,
        ),
        at("/v1/devices"),
        check=_lists_device,
    ),
    Row(
        "DELETE",
        "/v1/devices/{device_id:uuid}",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "device.not_found"), inspector=FORBIDDEN),
        _revoke,
    ),
    Row(
        "POST",
        "/v1/devices/collect",
        authed(admin=201, sup_in=201, sup_out=Expect(404, "user.not_found"), inspector=FORBIDDEN),
        _collect,
    ),
    # --- OpenRosa (ODK Collect): the device token in the path authenticates; a bearer is ignored ---
    Row("GET", "/openrosa/key/{device_token:str}/formList", public(200), _openrosa("/formList")),
    Row(
        "GET", "/openrosa/key/{device_token:str}/forms/{form_file:str}", public(200),
        _openrosa("/forms/fieldsync_hazard.xml"),
    ),
    Row("HEAD", "/openrosa/key/{device_token:str}/submission", public(204), _openrosa("/submission")),
    Row("GET", "/openrosa/key/{device_token:str}/submission", public(204), _openrosa("/submission")),
    Row("POST", "/openrosa/key/{device_token:str}/submission", public(201), _openrosa_submission),
    # --- reference data ----------------------------------------------------------------------------
    Row("GET", "/v1/jurisdictions", authed(admin=200, sup_in=200, sup_out=200, inspector=200), at("/v1/jurisdictions")),
    Row("GET", "/v1/categories", authed(admin=200, sup_in=200, sup_out=200, inspector=200), at("/v1/categories")),
    # --- reports -----------------------------------------------------------------------------------
    Row(
        "PUT",
        "/v1/reports/{report_id:uuid}",
        authed(admin=FORBIDDEN, sup_in=FORBIDDEN, sup_out=FORBIDDEN, inspector=201),
        _put_report,
    ),
    Row(
        "GET",
        "/v1/reports/{report_id:uuid}",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "report.not_found"), inspector=200),
        _get_report,
    ),
    # --- list and export: everyone may ask; the answer holds only what the caller may see ----------
    Row(
        "GET",
        "/v1/reports",
        authed(
            admin=Expect(200, check=True), sup_in=Expect(200, check=True), sup_out=Expect(200, check=False),
            inspector=Expect(200, check=True),
        ),
        at("/v1/reports"),
        check=_lists_report,
    ),
    Row(
        "GET",
        "/v1/export",
        authed(
            admin=Expect(200, check=True), sup_in=Expect(200, check=True), sup_out=Expect(200, check=False),
            inspector=FORBIDDEN,
        ),
        at("/v1/export"),
        check=_exports_report,
    ),
    # --- review: supervisors in scope act; the author reads and comments; others see nothing ------
    Row(
        "POST",
        "/v1/reports/{report_id:uuid}/transitions",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "report.not_found"), inspector=FORBIDDEN),
        _transition,
    ),
    Row(
        "GET",
        "/v1/reports/{report_id:uuid}/comments",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "report.not_found"), inspector=200),
        _comment,
    ),
    Row(
        "POST",
        "/v1/reports/{report_id:uuid}/comments",
        authed(admin=201, sup_in=201, sup_out=Expect(404, "report.not_found"), inspector=201),
        _comment,
    ),
    Row(
        "GET",
        "/v1/reports/{report_id:uuid}/events",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "report.not_found"), inspector=200),
        at_report("/events"),
    ),
    Row(
        "GET",
        "/v1/reports/{report_id:uuid}/duplicates",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "report.not_found"), inspector=200),
        at_report("/duplicates"),
    ),
    Row(
        "GET",
        "/v1/incidents/{incident_id:uuid}",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "incident.not_found"), inspector=200),
        _incident,
    ),
    # --- statistics: everyone gets figures for their own view; outsiders' figures exclude the target
    Row(
        "GET",
        "/v1/stats",
        authed(
            admin=Expect(200, check=True), sup_in=Expect(200, check=True), sup_out=Expect(200, check=False),
            inspector=Expect(200, check=True),
        ),
        at("/v1/stats"),
        check=_counts_report,
    ),
    # --- media: anyone signed in may upload and ask what is missing; downloads and HEAD follow the
    # report (knowing a hash grants nothing: out of scope, HEAD answers 404 as for an unknown hash)
    Row("PUT", "/v1/media/{sha256:str}", authed(admin=201, sup_in=201, sup_out=201, inspector=201), _upload),
    Row("HEAD", "/v1/media/{sha256:str}", authed(admin=200, sup_in=200, sup_out=404, inspector=200), _photo()),
    Row("POST", "/v1/media/missing", authed(admin=200, sup_in=200, sup_out=200, inspector=200), _missing),
    Row(
        "GET",
        "/v1/media/{sha256:str}",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "media.not_found"), inspector=200),
        _photo(),
    ),
    Row(
        "GET",
        "/v1/media/{sha256:str}/preview",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "media.not_found"), inspector=200),
        _photo("/preview"),
    ),
    Row(
        "GET",
        "/v1/media/{sha256:str}/thumbnail",
        authed(admin=200, sup_in=200, sup_out=Expect(404, "media.not_found"), inspector=200),
        _photo("/thumbnail"),
    ),
    # --- sync: every caller gets 200; authoring is refused per mutation, pulls are scoped ----------
    Row(
        "POST",
        "/v1/sync/push",
        authed(
            admin=Expect(200, check=False), sup_in=Expect(200, check=False), sup_out=Expect(200, check=False),
            inspector=Expect(200, check=True),
        ),
        _push,
        check=_applied,
    ),
    Row(
        "GET",
        "/v1/sync/pull",
        authed(
            admin=Expect(200, check=True), sup_in=Expect(200, check=True), sup_out=Expect(200, check=False),
            inspector=Expect(200, check=True),
        ),
        at("/v1/sync/pull"),
        check=_pulls_report,
    ),
    # --- webhooks: admins only, whatever the supervisor's scope ------------------------------------
    Row("POST", "/v1/webhooks", authed(admin=201, sup_in=FORBIDDEN, sup_out=FORBIDDEN, inspector=FORBIDDEN),
        _new_webhook),
    Row(
        "GET",
        "/v1/webhooks",
        authed(admin=Expect(200, check=True), sup_in=FORBIDDEN, sup_out=FORBIDDEN, inspector=FORBIDDEN),
        _listed_webhooks,
        check=_lists_webhook,
    ),
    Row("DELETE", "/v1/webhooks/{webhook_id:uuid}",
        authed(admin=200, sup_in=FORBIDDEN, sup_out=FORBIDDEN, inspector=FORBIDDEN), _webhook),
    Row("GET", "/v1/webhooks/{webhook_id:uuid}/deliveries",
        authed(admin=200, sup_in=FORBIDDEN, sup_out=FORBIDDEN, inspector=FORBIDDEN), _deliveries),
    Row("POST", "/v1/webhooks/{webhook_id:uuid}/deliveries/{delivery_id:uuid}/retry",
        authed(admin=202, sup_in=FORBIDDEN, sup_out=FORBIDDEN, inspector=FORBIDDEN), _retry_delivery),
    # --- tus uploads: discovery is public; an upload is its creator's alone (anyone else: 404) ------
    Row("OPTIONS", "/v1/uploads", public(204), at("/v1/uploads")),
    Row("POST", "/v1/uploads", authed(admin=201, sup_in=201, sup_out=201, inspector=201), _create_upload),
    Row(
        "HEAD",
        "/v1/uploads/{upload_id:uuid}",
        authed(admin=404, sup_in=404, sup_out=404, inspector=200),
        _upload_offset,
    ),
    Row(
        "PATCH",
        "/v1/uploads/{upload_id:uuid}",
        authed(
            admin=Expect(404, "upload.not_found"), sup_in=Expect(404, "upload.not_found"),
            sup_out=Expect(404, "upload.not_found"), inspector=204,
        ),
        _upload_chunk,
    ),
    Row(
        "DELETE",
        "/v1/uploads/{upload_id:uuid}",
        authed(
            admin=Expect(404, "upload.not_found"), sup_in=Expect(404, "upload.not_found"),
            sup_out=Expect(404, "upload.not_found"), inspector=204,
        ),
        _upload_offset,
    ),
]

PUBLIC_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/devices/enroll"),
    ("OPTIONS", "/v1/uploads"),
    # OpenRosa: authenticated by the device token in the path (tests/openrosa covers bad/revoked keys)
    ("GET", "/openrosa/key/{device_token:str}/formList"),
    ("GET", "/openrosa/key/{device_token:str}/forms/{form_file:str}"),
    ("HEAD", "/openrosa/key/{device_token:str}/submission"),
    ("GET", "/openrosa/key/{device_token:str}/submission"),
    ("POST", "/openrosa/key/{device_token:str}/submission"),
}


def _is_automatic_options(handler: Any) -> bool:
    """Litestar answers OPTIONS on every path itself (no auth, no body); those are not ours."""
    return handler.http_methods == {"OPTIONS"} and handler.fn.__qualname__.endswith(
        "create_options_handler.<locals>.options_handler"
    )


def served_routes(app: Litestar) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if not _is_automatic_options(handler)
        for method in handler.http_methods
    }


def api_routes(app: Litestar) -> set[tuple[str, str]]:
    """The routes this matrix covers: all but the browser console's, which signs in with a cookie
    and has its own matrix (tests/console/test_matrix.py)."""
    return {key for key in served_routes(app) if not key[1].startswith("/console")}


def _template_regex(template: str) -> re.Pattern[str]:
    literal_parts = re.split(r"\{[^}]+\}", template)
    return re.compile("^" + "[^/]+".join(re.escape(part) for part in literal_parts) + "$")


@pytest.fixture
async def world(client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock) -> World:
    now = clock.now()
    admin = await make_user(conn, role="admin", jurisdiction="110000", username="m-admin", now=now)
    sup_in = await make_user(conn, role="supervisor", jurisdiction="140400", username="m-sup-in", now=now)
    sup_out = await make_user(conn, role="supervisor", jurisdiction="140403", username="m-sup-out", now=now)
    inspector = await make_user(
        conn, role="inspector", jurisdiction="140431", username="m-inspector", password=PASSWORD, now=now
    )
    issuer = principal_of(sup_in, "/140000/140400/")
    device = await make_device(conn, inspector, issuer, now=now)
    revoked = await make_device(conn, inspector, issuer, now=now)
    response = await client.delete(f"/v1/devices/{revoked.device_id}", headers=admin.headers)
    assert response.status_code == 200, response.text

    photo = images.jpeg(width=64, height=48, seed=7)
    response = await client.put(
        f"/v1/media/{images.sha256(photo)}", content=photo, headers={**inspector.headers, "Content-Type": "image/jpeg"}
    )
    assert response.status_code == 201, response.text
    report_id = uuid.uuid4()
    report = hazard_report(media=[{"sha256": images.sha256(photo), "role": "photo"}])
    response = await client.put(f"/v1/reports/{report_id}", json=report, headers=inspector.headers)
    assert response.status_code == 201, response.text

    actors = {
        Caller.ADMIN: admin,
        Caller.SUP_IN: sup_in,
        Caller.SUP_OUT: sup_out,
        Caller.INSPECTOR: inspector,
        Caller.REVOKED: revoked,
    }
    return World(client, conn, clock, actors, inspector, device, report_id, images.sha256(photo))


def test_matrix_covers_every_served_route() -> None:
    app = create_app(Settings.from_env({}, database_url="postgresql://unused.invalid/unused"))
    served = api_routes(app)
    rows = [row.key for row in MATRIX]

    assert len(rows) == len(set(rows)), "a route has two rows in MATRIX"
    missing = sorted(served - set(rows))
    stale = sorted(set(rows) - served)
    assert not missing, f"routes without a row in the authorization MATRIX: {missing}"
    assert not stale, f"MATRIX rows for routes the app no longer serves: {stale}"


def test_every_row_states_every_caller_and_public_routes_are_the_known_ones() -> None:
    for row in MATRIX:
        assert set(row.expect) == set(Caller), f"{row.key} does not state every caller"
        if row.check is None:
            assert all(e.check is None for e in row.expect.values()), f"{row.key} expects a check but has none"
    public_rows = {row.key for row in MATRIX if row.is_public and not row.template.startswith("/schema")}
    assert public_rows == PUBLIC_ROUTES


@pytest.mark.parametrize("row", MATRIX, ids=[f"{row.method} {row.template}" for row in MATRIX])
async def test_authorization_matrix(world: World, row: Row) -> None:
    pattern = _template_regex(row.template)
    mismatches: list[str] = []
    for caller in Caller:
        expected = row.expect[caller]
        call = await row.call(world)
        assert pattern.match(call.path), f"{call.path} does not match the row's template {row.template}"
        response = await world.client.request(
            row.method,
            call.path,
            json=call.json,
            content=call.content,
            headers={**call.headers, **world.headers(caller)},
        )
        code = None
        body: Any = None
        if response.content and response.headers.get("content-type", "").startswith(
            ("application/json", "application/problem+json")
        ):
            body = response.json()
            code = body.get("code") if isinstance(body, dict) and response.status_code >= 400 else None
        elif response.status_code == 200:
            body = response.text  # a file (CSV): a check reads it as text
        checked = row.check(world, body) if row.check is not None and response.status_code == 200 else None
        if row.method == "HEAD":
            expected = dataclasses.replace(expected, code=None)
        got = Expect(
            response.status_code, code if expected.code else None, checked if expected.check is not None else None
        )
        if got != expected:
            mismatches.append(f"  {caller:<10} expected {expected}, got {got} ({response.text[:160]})")
    assert not mismatches, f"{row.method} {row.template}:\n" + "\n".join(mismatches)
