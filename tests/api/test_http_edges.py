"""HTTP edge behaviour the contract run found wrong: OPTIONS ``Allow``, page-limit bounds, and
404 for path ids that do not parse."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.support import Actor, MutableClock, make_user, problem


@pytest.fixture
async def admin(conn: asyncpg.Connection, clock: MutableClock) -> Actor:
    return await make_user(conn, role="admin", jurisdiction="140400", now=clock.now())


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/users", {"GET", "POST", "OPTIONS"}),
        ("/v1/devices", {"GET", "OPTIONS"}),
        ("/v1/devices/6b1f9c3e-0d7a-4c51-9f3e-2a7d5b8c4e10", {"DELETE", "OPTIONS"}),
    ],
)
async def test_options_lists_every_method_of_the_path(client: httpx.AsyncClient, path: str, methods: set[str]) -> None:
    response = await client.request("OPTIONS", path)
    assert response.status_code == 204
    assert {m.strip() for m in response.headers["allow"].split(",")} == methods


async def test_unsupported_method_answers_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.request("PATCH", "/v1/users")
    assert response.status_code == 405
    assert problem(response)["code"] == "request.method_not_allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "POST", "OPTIONS"}


@pytest.mark.parametrize("path", ["/v1/users", "/v1/devices"])
@pytest.mark.parametrize("limit", ["-1", "0", "501"])
async def test_page_limit_out_of_bounds_is_a_400_naming_it(
    client: httpx.AsyncClient, admin: Actor, path: str, limit: str
) -> None:
    response = await client.get(path, params={"limit": limit}, headers=admin.headers)
    assert response.status_code == 400, response.text
    body = problem(response)
    assert body["code"] == "request.invalid"
    assert body["field"] == "limit"


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/v1/devices/not-a-uuid"), ("PUT", "/v1/reports/not-a-uuid"), ("GET", "/v1/reports/null,null")],
)
async def test_malformed_id_in_the_path_is_a_404_problem(
    client: httpx.AsyncClient, admin: Actor, method: str, path: str
) -> None:
    response = await client.request(method, path, json={}, headers=admin.headers)
    assert response.status_code == 404
    assert problem(response)["code"] == "not_found"


async def test_every_operation_with_a_path_parameter_documents_404(client: httpx.AsyncClient) -> None:
    """A path segment that does not parse (or names nothing) answers 404; the schema must say so."""
    document = (await client.get("/schema/openapi.json")).json()
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        if "{" in path
        for method, operation in operations.items()
        if "404" not in operation["responses"]
    ]
    assert undocumented == []
