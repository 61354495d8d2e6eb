"""The served OpenAPI document states every constraint the server enforces on a body.

Litestar 2.x loses two kinds of msgspec constraints when it builds the document. A bound of zero
on an optional field disappears: ``Annotated[int, Meta(ge=0)] | None`` loses ``minimum: 0``,
because Litestar tests the value for truthiness. Constraints on list items disappear too:
``list[Annotated[str, Meta(pattern=...)]]`` becomes ``items: {type: string}``. msgspec still
enforces both, so without them the document calls requests valid that the server refuses with
400. Clients generated from the document, and the contract tests, then disagree with the
server.

The fix leaves Litestar's generation alone and repairs its output. When the document is rendered,
msgspec's own JSON Schema for every wire struct in ``fieldsync.api`` supplies the bound and
length keywords that the matching component properties lack. Nothing Litestar states is
changed. The document is rendered once per app and then cached, so the cost is paid once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPI

CONSTRAINT_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
)


def wire_structs() -> dict[str, type[msgspec.Struct]]:
    """Every msgspec struct defined under ``fieldsync.api``, by name; ambiguous names left out."""
    found: dict[str, list[type[msgspec.Struct]]] = {}
    pending: list[type[msgspec.Struct]] = list(msgspec.Struct.__subclasses__())
    while pending:
        struct = pending.pop()
        pending.extend(struct.__subclasses__())
        if struct.__module__.startswith("fieldsync.api"):
            found.setdefault(struct.__name__, []).append(struct)
    return {name: structs[0] for name, structs in found.items() if len(set(structs)) == 1}


def _value_branch(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null alternative of an optional schema, or the schema itself."""
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    return branches[0] if len(branches) == 1 else schema


def _copy_missing(expected: dict[str, Any], served: dict[str, Any]) -> None:
    for keyword in CONSTRAINT_KEYWORDS:
        if keyword in expected and keyword not in served:
            served[keyword] = expected[keyword]


def restore_constraints(document: dict[str, Any]) -> dict[str, Any]:
    """Add the constraint keywords msgspec enforces to the component properties that lack them."""
    components: dict[str, Any] = document.get("components", {}).get("schemas", {})
    structs = [struct for name, struct in sorted(wire_structs().items()) if name in components]
    if not structs:
        return document
    _, expected_components = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    for name, expected in expected_components.items():
        served_properties = components.get(name, {}).get("properties", {})
        for prop, expected_prop in expected.get("properties", {}).items():
            served_prop = served_properties.get(prop)
            if not isinstance(served_prop, dict) or "$ref" in served_prop:
                continue
            value = _value_branch(expected_prop)
            _copy_missing(value, served_prop)
            expected_items, served_items = value.get("items"), served_prop.get("items")
            if isinstance(expected_items, dict) and isinstance(served_items, dict) and "$ref" not in served_items:
                _copy_missing(_value_branch(expected_items), served_items)
    return document


class ConstrainedOpenAPI(OpenAPI):
    """An OpenAPI document whose rendering restores the constraints Litestar dropped."""

    def to_schema(self) -> dict[str, Any]:
        return restore_constraints(super().to_schema())


@dataclasses.dataclass
class ConstrainedOpenAPIConfig(OpenAPIConfig):
    """``OpenAPIConfig`` whose document is a :class:`ConstrainedOpenAPI`."""

    def to_openapi_schema(self) -> OpenAPI:
        base = super().to_openapi_schema()
        return ConstrainedOpenAPI(**{field.name: getattr(base, field.name) for field in dataclasses.fields(base)})
