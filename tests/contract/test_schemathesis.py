"""Schemathesis over every operation of the served OpenAPI document, in-process, as an admin.

Each operation is one pytest test with its own database (cloned from the migrated template by
``tests/conftest.py``) and its own app; Hypothesis then sends generated requests with an admin's
bearer token, so authenticated operations run their real logic. The checks (no 5xx, responses
match the documented schema and status codes, negative data rejected, auth enforced, ...) are
schemathesis' defaults; the few narrowed for a stated reason live in ``schemathesis.toml`` next
to this file.

The schema is loaded once at import, from an app that is never started (serving the document
needs no database). ``schemathesis.pytest.from_fixture`` would load it per test instead, but
schemathesis 4.32.5 reads ``request.node._nodeid``, which pytest 9.2 no longer has. Requests go
to :data:`APP_UNDER_TEST`, which forwards to the current test's app: schemathesis starts that
app's lifespan on the first request and stops it when the test ends, before its fixtures (and
the database) are torn down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from litestar.types import Receive, Scope, Send
from schemathesis.config import SchemathesisConfig

from fieldsync.app import create_app
from fieldsync.settings import Settings
from tests.support import Actor, MutableClock, make_user

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 25


class ForwardingApp:
    """An ASGI app that hands every call (lifespan included) to the app of the running test."""

    def __init__(self) -> None:
        self.target: Litestar | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.target is None:
            raise RuntimeError("no app under test: request the `app_under_test` fixture")
        await self.target(scope, receive, send)


APP_UNDER_TEST = ForwardingApp()


def _served_document() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings.from_env({})).openapi_schema.to_schema()
    return document


schema = schemathesis.openapi.from_dict(_served_document(), config=SchemathesisConfig.from_path(CONFIG))
schema.app = APP_UNDER_TEST


@pytest.fixture
async def admin(conn: Any, clock: MutableClock) -> Actor:
    return await make_user(conn, role="admin", jurisdiction="140400", now=clock.now())


@pytest.fixture
def app_under_test(app: Litestar) -> Any:
    APP_UNDER_TEST.target = app
    yield app
    APP_UNDER_TEST.target = None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_operation_conforms_to_its_schema(case: schemathesis.Case, app_under_test: Litestar, admin: Actor) -> None:
    case.call_and_validate(headers=admin.headers)
