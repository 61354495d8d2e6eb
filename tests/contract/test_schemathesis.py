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
to :data:`UNDER_TEST`, which forwards to the current test's app: schemathesis starts that app's
lifespan on the first request and stops it when the test ends, before its fixtures (and the
database) are torn down.

Authentication is declared to schemathesis as an auth provider rather than a fixed header, so
that its negative cases which drop ``Authorization`` really send none and its ``ignored_auth``
check knows what to remove. Schemathesis builds some cases at collection time, before any test
database exists, so the provider hands out a placeholder token and :data:`UNDER_TEST` swaps it
for the running test's admin token on the way into the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import hypothesis
import msgspec
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
PLACEHOLDER_TOKEN = "fsu_admin-of-the-running-test"


class AppUnderTest:
    """An ASGI app that hands every call (lifespan included) to the running test's app, with
    the placeholder bearer token replaced by that test's admin token."""

    def __init__(self) -> None:
        self.target: Litestar | None = None
        self.token: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.target is None or self.token is None:
            raise RuntimeError("no app under test: request the `app_under_test` fixture")
        if scope["type"] == "http":
            placeholder = f"Bearer {PLACEHOLDER_TOKEN}".encode()
            real = f"Bearer {self.token}".encode()
            headers = [
                (name, real if name == b"authorization" and value == placeholder else value)
                for name, value in scope["headers"]
            ]
            scope = {**scope, "headers": headers}  # type: ignore[typeddict-item]
        await self.target(scope, receive, send)


UNDER_TEST = AppUnderTest()


def _served_document() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings.from_env({})).openapi_schema.to_schema()
    return document


schema = schemathesis.openapi.from_dict(_served_document(), config=SchemathesisConfig.from_path(CONFIG))
schema.app = UNDER_TEST


@schema.auth()
class AdminBearer:
    """``Authorization: Bearer`` with the placeholder that :data:`UNDER_TEST` replaces."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return PLACEHOLDER_TOKEN

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.serializer("application/msgpack")
def _encode_msgpack(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    try:
        return msgspec.msgpack.encode(value)
    except OverflowError:
        # MessagePack has no integers beyond 64 bits: no client can send this body, so drop it.
        hypothesis.reject()


@schemathesis.deserializer("application/msgpack")
def _decode_msgpack(ctx: schemathesis.DeserializationContext, response: schemathesis.Response) -> Any:
    return msgspec.msgpack.decode(response.content)


# HEIC bodies are raw bytes like the other image types schemathesis knows.
schemathesis.serializer.alias("image/heic", "image/jpeg")
# tus chunks are raw bytes too.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


@pytest.fixture
async def admin(conn: asyncpg.Connection, clock: MutableClock) -> Actor:
    return await make_user(conn, role="admin", jurisdiction="140400", now=clock.now())


@pytest.fixture
def app_under_test(app: Litestar, admin: Actor) -> Iterator[Litestar]:
    UNDER_TEST.target, UNDER_TEST.token = app, admin.token
    yield app
    UNDER_TEST.target, UNDER_TEST.token = None, None


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_operation_conforms_to_its_schema(case: schemathesis.Case, app_under_test: Litestar) -> None:
    case.call_and_validate()
