"""Sync endpoints for tablets and background sync: batched push, gap-free pull.

Both speak JSON and MessagePack: ``Content-Type`` decides how a push body is read, ``Accept``
how any answer is written (``application/msgpack``; ``application/x-msgpack`` and
``application/vnd.msgpack`` are accepted as aliases).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, RequestBody
from litestar.params import Parameter

from fieldsync import errors
from fieldsync.api.deps import Connection
from fieldsync.api.problems import problem_responses
from fieldsync.api.reports import report_read, to_submission
from fieldsync.api.runtime import Runtime
from fieldsync.api.schemas.sync import (
    MAX_MUTATIONS,
    AddComment,
    Deleted,
    MutationHead,
    PullResponse,
    PushRequest,
    PushResponse,
    PushResult,
    RawPush,
    SubmitRectification,
    UpsertReport,
    inline_schema,
    pull_response_schema,
)
from fieldsync.db.transactions import snapshot, transaction
from fieldsync.domain.principals import Principal
from fieldsync.domain.reports import MediaReference
from fieldsync.services import sync
from fieldsync.services.reports import Outcome

MSGPACK = "application/msgpack"
_MSGPACK_ALIASES = {MSGPACK, "application/x-msgpack", "application/vnd.msgpack"}
_HEAD = msgspec.json.Decoder(MutationHead)
_UPSERT_JSON = msgspec.json.Decoder(UpsertReport)
_HEAD_MSGPACK = msgspec.msgpack.Decoder(MutationHead)
_UPSERT_MSGPACK = msgspec.msgpack.Decoder(UpsertReport)
SUPPORTED_OPS = ("upsert_report", "add_comment", "submit_rectification")


def wants_msgpack(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept", "")
    return any(alias in accept for alias in _MSGPACK_ALIASES)


def encoded(request: Request[Any, Any, Any], content: msgspec.Struct) -> Response[bytes]:
    if wants_msgpack(request):
        return Response(msgspec.msgpack.encode(content), media_type=MSGPACK)
    return Response(msgspec.json.encode(content), media_type="application/json")


@dataclasses.dataclass
class _PushOperation(Operation):
    """Documents the push body (JSON or MessagePack), which the handler decodes per mutation."""

    def __post_init__(self) -> None:
        schema = inline_schema(PushRequest)
        self.request_body = RequestBody(
            content={
                "application/json": OpenAPIMediaType(schema=schema),  # type: ignore[arg-type]  # a JSON Schema dict, emitted as given
                MSGPACK: OpenAPIMediaType(schema=schema),  # type: ignore[arg-type]  # a JSON Schema dict, emitted as given
            },
            required=True,
            description=f"Up to {MAX_MUTATIONS} mutations; each is decoded and answered on its own",
        )


@dataclasses.dataclass
class _PullOperation(Operation):
    """Documents the pull answer, whose items are reports or tombstones."""

    def __post_init__(self) -> None:
        schema = pull_response_schema()
        self.responses = {
            **(self.responses or {}),
            "200": OpenAPIResponse(
                description="A page of changes, in commit order",
                content={
                    "application/json": OpenAPIMediaType(schema=schema),  # type: ignore[arg-type]  # a JSON Schema dict, emitted as given
                    MSGPACK: OpenAPIMediaType(schema=schema),  # type: ignore[arg-type]  # a JSON Schema dict, emitted as given
                },
            ),
        }


def _path(error: msgspec.ValidationError) -> str | None:
    message = str(error)
    marker = "at `$."
    if marker not in message:
        return None
    field = message.split(marker, 1)[1].split("`", 1)[0]
    return field.removeprefix("report.")


def decode_push(body: bytes, content_type: str) -> list[sync.PushItem]:
    """Split a push into items, each decoded on its own; refuses the whole request only when the
    envelope itself is unreadable or too large."""
    is_msgpack = content_type in _MSGPACK_ALIASES
    try:
        envelope = (msgspec.msgpack.decode if is_msgpack else msgspec.json.decode)(body, type=RawPush)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise errors.InvalidInput(f"the push body is not a mutation list: {exc}", field="mutations") from None
    if len(envelope.mutations) > MAX_MUTATIONS:
        raise errors.TooManyMutations(f"at most {MAX_MUTATIONS} mutations per push; nothing was applied")
    head_decoder, upsert_decoder = (_HEAD_MSGPACK, _UPSERT_MSGPACK) if is_msgpack else (_HEAD, _UPSERT_JSON)
    items: list[sync.PushItem] = []
    for raw in envelope.mutations:
        try:
            head = head_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            items.append(sync.PushItem(None, outcome=Outcome("rejected", error=errors.InvalidInput(
                f"every mutation needs a mutation_id (UUID) and an op: {exc}", field="mutation_id"))))
            continue
        if head.op not in SUPPORTED_OPS:
            error = errors.InvalidInput(f"unknown op {head.op!r}", field="op")
            items.append(sync.PushItem(head.mutation_id, outcome=Outcome("rejected", error=error)))
            continue
        if head.op != "upsert_report":
            items.append(_review_item(head, raw, is_msgpack))
            continue
        try:
            mutation = upsert_decoder.decode(raw)
            report, report_id = mutation.report, mutation.report.id
            if report_id is None:
                raise errors.ReportInvalid("report.id is required in a push", field="id")
            if mutation.base_version is not None and report.base_version is None:
                report = msgspec.structs.replace(report, base_version=mutation.base_version)
            items.append(sync.PushItem(head.mutation_id, report=to_submission(report_id, report)))
        except msgspec.ValidationError as exc:
            items.append(sync.PushItem(head.mutation_id, outcome=Outcome(
                "rejected", error=errors.ReportInvalid(str(exc), field=_path(exc)))))
        except errors.FieldsyncError as exc:
            items.append(sync.PushItem(head.mutation_id, outcome=Outcome("rejected", error=exc)))
    return items


def _review_item(head: MutationHead, raw: msgspec.Raw, is_msgpack: bool) -> sync.PushItem:
    decode = msgspec.msgpack.decode if is_msgpack else msgspec.json.decode
    try:
        if head.op == "add_comment":
            comment = decode(raw, type=AddComment)
            return sync.PushItem(head.mutation_id, comment=(comment.report_id, comment.body))
        fix = decode(raw, type=SubmitRectification)
        media = tuple(MediaReference(m.sha256, m.role, m.caption) for m in fix.media)
        return sync.PushItem(head.mutation_id, rectification=(fix.report_id, fix.note, media))
    except msgspec.ValidationError as exc:
        return sync.PushItem(head.mutation_id, outcome=Outcome(
            "rejected", error=errors.InvalidInput(str(exc), field=_path(exc))))


class SyncController(Controller):
    path = "/v1/sync"
    tags = ["sync"]
    security = [{"bearer": []}]

    @post(
        "/push",
        status_code=200,
        summary="Apply up to 1000 queued mutations; one result per mutation, in input order",
        operation_class=_PushOperation,
        responses={
            200: ResponseSpec(data_container=PushResponse, description="Per-mutation results", generate_examples=False),
            **problem_responses(400, 401, 413, 415, 503, 507),
        },
    )
    async def push(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> Response[bytes]:
        content_type = request.headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
        if content_type not in _MSGPACK_ALIASES and content_type != "application/json":
            raise errors.UnsupportedMediaType("send application/json or application/msgpack")
        items = decode_push(await request.body(), content_type)
        async with transaction(conn):
            results = await sync.push(conn, principal, items, now=now, clock_skew_s=runtime.settings.clock_skew_s)
        runtime.wake_workers()
        return encoded(request, PushResponse(results=msgspec.convert(results, list[PushResult])))

    @get(
        "/pull",
        summary="Every visible report changed after the cursor, as full reports; tombstones for those that left",
        operation_class=_PullOperation,
        responses=problem_responses(400, 401),
    )
    async def pull(
        self,
        request: Request[Any, Any, Any],
        principal: Principal,
        conn: Connection,
        now: dt.datetime,
        cursor: Annotated[str | None, Parameter(max_length=200_000)] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 500,
    ) -> Response[bytes]:
        position = sync.Cursor.decode(cursor)
        async with snapshot(conn):
            page = await sync.pull_reports(conn, principal, cursor=position, limit=limit, now=now)
        changes: list[Any] = [
            Deleted(id=change) if isinstance(change, uuid.UUID) else report_read(change) for change in page.changes
        ]
        return encoded(request, PullResponse(changes=changes, next_cursor=page.next_cursor.encode(),
                                             has_more=page.has_more))
