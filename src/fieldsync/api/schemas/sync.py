"""Wire types for sync push and pull (JSON or MessagePack)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec

from fieldsync.api.schemas.common import CommentBody, LongText
from fieldsync.api.schemas.reports import MediaRef, ReportRead, ReportWrite

MAX_MUTATIONS = 1000


class MutationHead(msgspec.Struct):
    """What every mutation must at least carry, read first so a bad one can still be answered."""

    mutation_id: uuid.UUID
    op: str


class UpsertReport(msgspec.Struct, tag="upsert_report", tag_field="op", kw_only=True):
    mutation_id: uuid.UUID
    report: ReportWrite
    base_version: Annotated[int, msgspec.Meta(ge=1)] | None = None


class AddComment(msgspec.Struct, tag="add_comment", tag_field="op", kw_only=True):
    mutation_id: uuid.UUID
    report_id: uuid.UUID
    body: CommentBody


class SubmitRectification(msgspec.Struct, tag="submit_rectification", tag_field="op", kw_only=True):
    mutation_id: uuid.UUID
    report_id: uuid.UUID
    note: LongText = ""
    media: Annotated[list[MediaRef], msgspec.Meta(max_length=50)] = []


Mutation = UpsertReport | AddComment | SubmitRectification


class PushRequest(msgspec.Struct):
    """Documented shape of a push; the server decodes each mutation on its own."""

    mutations: Annotated[list[Mutation], msgspec.Meta(max_length=MAX_MUTATIONS)]


class RawPush(msgspec.Struct):
    mutations: list[msgspec.Raw]


class MutationError(msgspec.Struct):
    code: str
    detail: str
    field: str | None = None


class PushResult(msgspec.Struct, omit_defaults=True):
    mutation_id: uuid.UUID | None
    status: Literal["applied", "duplicate", "conflict", "rejected"]
    report_id: uuid.UUID | None = None
    version: int | None = None
    missing_media: list[str] | None = None
    error: MutationError | None = None


class PushResponse(msgspec.Struct):
    results: list[PushResult]


class Deleted(msgspec.Struct):
    id: uuid.UUID
    deleted: bool = True


class PullResponse(msgspec.Struct):
    """``changes`` holds ``ReportRead`` and ``Deleted`` items (see ``pull_response_schema``: an
    untagged union of structs cannot be typed for msgspec, and a tag would change the wire)."""

    changes: list[Any]
    next_cursor: str
    has_more: bool


def pull_response_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["changes", "next_cursor", "has_more"],
        "properties": {
            "changes": {
                "type": "array",
                "items": {"anyOf": [inline_schema(ReportRead), inline_schema(Deleted)]},
            },
            "next_cursor": {"type": "string", "description": "Opaque; pass it back to continue"},
            "has_more": {"type": "boolean"},
        },
    }


def inline_schema(struct: type) -> dict[str, Any]:
    """msgspec's JSON Schema for ``struct`` with its ``$defs`` inlined, for an OpenAPI body."""
    document = msgspec.json.schema(struct)
    definitions: dict[str, Any] = document.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(document)
    return resolved
