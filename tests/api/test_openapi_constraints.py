"""The served OpenAPI document states the constraints msgspec enforces on every wire struct.

Regression: Litestar dropped ``minimum: 0`` from optional fields (``Losses.deaths``,
``TransitionCreate.funds_cny``) and the pattern from list items (``MissingQuery.sha256``), so
schemathesis sent ``funds_cny: -1e307`` as valid data and got a 400.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from fieldsync.api.openapi import CONSTRAINT_KEYWORDS, wire_structs
from fieldsync.api.schemas.common import SHA256_PATTERN


def _value_branch(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    return branches[0] if len(branches) == 1 else schema


async def _served(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_optional_fields_keep_a_zero_bound(client: httpx.AsyncClient) -> None:
    schemas = (await _served(client))["components"]["schemas"]
    assert schemas["Losses"]["properties"]["deaths"]["minimum"] == 0
    assert schemas["Losses"]["properties"]["crop_area_ha"]["minimum"] == 0
    assert schemas["TransitionCreate"]["properties"]["funds_cny"]["minimum"] == 0


async def test_list_items_keep_their_pattern(client: httpx.AsyncClient) -> None:
    schemas = (await _served(client))["components"]["schemas"]
    assert schemas["MissingQuery"]["properties"]["sha256"]["items"]["pattern"] == SHA256_PATTERN


async def test_every_constraint_msgspec_enforces_is_in_the_served_document(client: httpx.AsyncClient) -> None:
    schemas = (await _served(client))["components"]["schemas"]
    structs = [struct for name, struct in sorted(wire_structs().items()) if name in schemas]
    _, expected = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    missing = []
    for name, schema in expected.items():
        for prop, expected_prop in schema.get("properties", {}).items():
            served = schemas.get(name, {}).get("properties", {}).get(prop, {})
            if "$ref" in served:
                continue
            value = _value_branch(expected_prop)
            pairs = [(f"{name}.{prop}", value, served)]
            if isinstance(value.get("items"), dict) and isinstance(served.get("items"), dict):
                pairs.append((f"{name}.{prop}[]", _value_branch(value["items"]), served["items"]))
            for where, want, have in pairs:
                missing += [f"{where}: {k}" for k in CONSTRAINT_KEYWORDS if k in want and k not in have]
    assert missing == []
