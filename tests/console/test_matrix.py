"""Every console route × every kind of caller, the console's counterpart of
tests/api/test_authorization_matrix.py (which leaves /console to this file: the console signs in
with a cookie, not a bearer token). A new console route fails ``test_every_console_route_has_a_row``
until it is added here."""

from __future__ import annotations

import uuid

import pytest

from fieldsync.app import create_app
from fieldsync.settings import Settings
from tests.api.test_authorization_matrix import served_routes
from tests.console.conftest import create, report
from tests.support import disaster_report

pytestmark = pytest.mark.timeout(90)
CALLERS = ("admin", "city", "other_county", "inspector", "anonymous")
# method, route template, concrete path (with {report}/{photo}/{incident}/{device}), form or None,
# expected status per caller in CALLERS order.
ROWS = [
    ("GET", "/console", "/console", None, (303, 303, 303, 303, 303)),
    ("GET", "/console/login", "/console/login", None, (200, 200, 200, 200, 200)),
    ("POST", "/console/login", "/console/login", {}, (403, 403, 403, 403, 403)),
    ("POST", "/console/logout", "/console/logout", {}, (303, 303, 303, 303, 303)),
    ("GET", "/console/reports", "/console/reports", None, (200, 200, 200, 200, 303)),
    ("GET", "/console/reports/{report_id:uuid}", "/console/reports/{report}", None, (200, 200, 404, 200, 303)),
    ("POST", "/console/reports/{report_id:uuid}/transitions", "/console/reports/{report}/transitions",
     {"action": "request_info", "version": "1"}, (303, 303, 404, 303, 303)),
    ("POST", "/console/reports/{report_id:uuid}/comments", "/console/reports/{report}/comments",
     {"body": "矩阵"}, (303, 303, 404, 303, 303)),
    ("GET", "/console/incidents/{incident_id:uuid}", "/console/incidents/{incident}", None, (200, 200, 404, 200, 303)),
    ("GET", "/console/map", "/console/map", None, (200, 200, 200, 403, 303)),
    ("GET", "/console/stats", "/console/stats", None, (200, 200, 200, 200, 303)),
    ("GET", "/console/devices", "/console/devices", None, (200, 200, 200, 403, 303)),
    ("POST", "/console/devices/enrollments", "/console/devices/enrollments", {"username": "{inspector}"},
     (200, 200, 303, 403, 303)),
    ("POST", "/console/devices/collect", "/console/devices/collect", {"username": "{inspector}"},
     (200, 200, 303, 403, 303)),
    ("POST", "/console/devices/{device_id:uuid}/revoke", "/console/devices/{device}/revoke", {},
     (404, 404, 404, 403, 303)),
    ("GET", "/console/export", "/console/export?format=csv", None, (200, 200, 200, 403, 303)),
    ("GET", "/console/media/{sha256:str}", "/console/media/{photo}", None, (200, 200, 404, 200, 303)),
    ("GET", "/console/media/{sha256:str}/{variant:str}", "/console/media/{photo}/thumbnail", None,
     (200, 200, 404, 200, 303)),
    ("GET", "/console/static/{file_path:path}", "/console/static/console.css", None, (200, 200, 200, 200, 200)),
    ("HEAD", "/console/static/{file_path:path}", "/console/static/console.css", None, (200, 200, 200, 200, 200)),
]


def test_every_console_route_has_a_row() -> None:
    app = create_app(Settings.from_env({}, database_url="postgresql://unused.invalid/unused"))
    served = {key for key in served_routes(app) if key[1].startswith("/console")}
    assert served == {(method, template) for method, template, *_ in ROWS}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]} {r[1]}" for r in ROWS])
async def test_console_matrix(client, browsers, people, hazard, row) -> None:
    method, _, path, form, expected = row
    photo = (await report(client, people["city"], hazard))["media"][0]["sha256"]
    incident = uuid.uuid4()
    if "{incident}" in path:
        await create(client, people["inspector"], disaster_report(incident_id=str(incident)))
    concrete = path.format(report=hazard, photo=photo, incident=incident, device=uuid.uuid4())
    got = []
    for caller in CALLERS:
        browser = browsers[caller]
        if form is None:
            response = await (browser.get(concrete) if method == "GET" else browser.client.head(concrete))
        else:
            fields = {k: v.format(inspector=people["inspector"].username) for k, v in form.items()}
            response = await browser.post(concrete, fields)
        got.append(response.status_code)
    assert tuple(got) == expected, dict(zip(CALLERS, got, strict=True))
