"""tus 1.0.0 resumable uploads at ``/v1/uploads`` (core, creation, creation-with-upload, checksum,
termination, expiration), so that stock tus clients (tus-js-client, tuspy) work unchanged.

    OPTIONS /v1/uploads          discovery: Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm
    POST    /v1/uploads          Upload-Length + Upload-Metadata (sha256, content_type) → 201 Location
                                 (with an application/offset+octet-stream body: its first chunk)
    HEAD    /v1/uploads/{id}     Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires
    PATCH   /v1/uploads/{id}     a chunk at Upload-Offset (409 if it is not the current offset),
                                 optionally with Upload-Checksum (460 on mismatch) → 204 Upload-Offset
    DELETE  /v1/uploads/{id}     termination → 204

The protocol headers are parsed here and in ``api.tus`` (never by Litestar, so that a
missing or wrong ``Tus-Resumable`` answers 412 as tus requires, and bad values a problem 400);
the use cases are ``services.uploads``. The response that completes an upload carries
``Fieldsync-Media-Sha256``: from then on the photo is ``/v1/media/{sha256}``. Every response of
these routes carries ``Tus-Resumable: 1.0.0`` (``tus_resumable_middleware``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, Response, delete, head, patch, post, route
from litestar.datastructures import ResponseHeader
from litestar.enums import HttpMethod
from litestar.exceptions import InternalServerException
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from fieldsync import errors
from fieldsync.api import tus
from fieldsync.api.deps import Connection, RequestConnections
from fieldsync.api.problems import problem_responses
from fieldsync.api.runtime import Runtime
from fieldsync.domain.principals import Principal
from fieldsync.ports import UploadArea
from fieldsync.services import uploads

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
MEDIA_HEADER = "Fieldsync-Media-Sha256"


def tus_resumable_middleware(app: ASGIApp) -> ASGIApp:
    """Adds ``Tus-Resumable: 1.0.0`` to every response of these routes, error documents included."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"tus-resumable" for name, _ in headers):
                    headers.append((b"tus-resumable", tus.TUS_VERSION.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_version)

    return wrapped


def _header(name: str, description: str, *, required: bool = False, **schema: Any) -> OpenAPIParameter:
    return OpenAPIParameter(
        name=name, param_in="header", required=required, description=description,
        schema=Schema(type=OpenAPIType.STRING, **schema),
    )


TUS_RESUMABLE = _header("Tus-Resumable", "The protocol version; anything but 1.0.0 answers 412", required=True,
                        enum=[tus.TUS_VERSION])
UPLOAD_CHECKSUM = _header(
    "Upload-Checksum", "`sha1 <base64 digest>` or `sha256 <base64 digest>` of this request's body; a mismatch "
    "answers 460 and the chunk is discarded", pattern=r"^(sha1|sha256) [A-Za-z0-9+/]+={0,2}$",
)
_DIGITS = r"^[0-9]{1,18}$"
_PAIR = r"[\x21-\x2b\x2d-\x7e]+( [A-Za-z0-9+/]*={0,2})?"  # an Upload-Metadata key, then maybe its value
_BINARY = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY))


@dataclasses.dataclass
class _TusOperation(Operation):
    """Documents the tus request headers and the raw chunk body, which the handlers read themselves."""

    def __post_init__(self) -> None:
        for status, response in (self.responses or {}).items():
            if status.startswith("2") and isinstance(response, OpenAPIResponse):
                response.content = None  # tus answers carry headers only; Litestar would say "JSON null"
        if headers := self.tus_headers():
            self.parameters = [*(self.parameters or []), *headers]
        chunk = self.chunk_body()
        if chunk is not None:
            self.request_body = RequestBody(
                content={tus.CHUNK_CONTENT_TYPE: _BINARY}, required=chunk,
                description="Bytes of the file, starting at Upload-Offset",
            )

    def tus_headers(self) -> list[OpenAPIParameter]:
        return [TUS_RESUMABLE]

    def chunk_body(self) -> bool | None:
        """None: no body; False: an optional chunk; True: a required chunk."""
        return None


@dataclasses.dataclass
class _DiscoveryOperation(_TusOperation):
    def tus_headers(self) -> list[OpenAPIParameter]:
        return []  # OPTIONS is the one request without Tus-Resumable


@dataclasses.dataclass
class _CreateOperation(_TusOperation):
    def tus_headers(self) -> list[OpenAPIParameter]:
        return [
            TUS_RESUMABLE,
            _header("Upload-Length", "Size of the whole file in bytes, at most Tus-Max-Size", required=True,
                    pattern=_DIGITS),
            _header(
                "Upload-Metadata",
                "Comma-separated `key base64(value)` pairs; `sha256` (hex SHA-256 of the whole file) and "
                "`content_type` (image/jpeg, image/png, image/webp or image/heic) are required",
                required=True, pattern=rf"^{_PAIR}(, ?{_PAIR})*$",
            ),
            UPLOAD_CHECKSUM,
        ]

    def chunk_body(self) -> bool | None:
        return False


@dataclasses.dataclass
class _PatchOperation(_TusOperation):
    def tus_headers(self) -> list[OpenAPIParameter]:
        return [
            TUS_RESUMABLE,
            _header("Upload-Offset", "Where this chunk starts; must equal the upload's current offset (else 409)",
                    required=True, pattern=_DIGITS),
            UPLOAD_CHECKSUM,
        ]

    def chunk_body(self) -> bool | None:
        return True


def _doc_headers(*names: str) -> list[ResponseHeader]:
    descriptions = {
        "Location": "URL of the new upload",
        "Upload-Offset": "Bytes the server holds durably",
        "Upload-Length": "Size of the whole file",
        "Upload-Metadata": "The Upload-Metadata sent at creation",
        "Upload-Expires": "When the unfinished upload is removed (RFC 7231 date)",
        MEDIA_HEADER: "Set once the upload is complete: the media object is /v1/media/{sha256}",
        "Tus-Version": "Protocol versions supported: 1.0.0",
        "Tus-Extension": "Extensions supported",
        "Tus-Max-Size": "Largest Upload-Length accepted",
        "Tus-Checksum-Algorithm": "Algorithms accepted in Upload-Checksum",
    }
    return [ResponseHeader(name=name, documentation_only=True, description=descriptions[name]) for name in names]


def _require_version(request: Request[Any, Any, Any]) -> None:
    version = request.headers.get("tus-resumable")
    if version != tus.TUS_VERSION:
        raise errors.UploadVersionUnsupported(
            f"this server speaks tus {tus.TUS_VERSION}; got Tus-Resumable {version[:20] if version else 'none'!r}",
            headers={"Tus-Version": tus.TUS_VERSION},
        )


def _content_length(request: Request[Any, Any, Any]) -> int | None:
    raw = request.headers.get("content-length")
    return None if raw is None else tus.parse_size(raw, "Content-Length")


def _has_body(request: Request[Any, Any, Any]) -> bool:
    length = _content_length(request)
    return bool(length) or (length is None and "transfer-encoding" in request.headers)


async def _body(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except InternalServerException as exc:  # Litestar's signal that the client went away
        raise errors.UploadInterrupted("the client disconnected before the end of the chunk") from exc


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def _progress_headers(result: uploads.Appended) -> dict[str, str]:
    state = result.upload
    headers = {"Upload-Offset": str(state.offset), "Upload-Expires": tus.http_date(state.expires_at)}
    if state.completed:
        headers[MEDIA_HEADER] = state.sha256
    return headers


def _area(runtime: Runtime) -> UploadArea:
    return runtime.uploads


class UploadController(Controller):
    path = "/v1/uploads"
    tags = ["uploads"]
    middleware = [tus_resumable_middleware]

    @route(
        "/",
        http_method=[HttpMethod.OPTIONS],
        status_code=204,
        summary="tus discovery: protocol version, extensions, size limit, checksum algorithms",
        operation_class=_DiscoveryOperation,
        response_headers=_doc_headers("Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm"),
    )
    async def capabilities(self, runtime: Runtime) -> Response[None]:
        # Litestar registers a controller's handlers in name order and gives a path its automatic
        # OPTIONS answer when the first handler there is not OPTIONS: this name sorts before
        # ``create`` so that the tus discovery answer is the one served (a test checks it).
        return Response(
            None,
            status_code=204,
            headers={
                "Tus-Version": tus.TUS_VERSION,
                "Tus-Extension": ",".join(tus.EXTENSIONS),
                "Tus-Max-Size": str(runtime.settings.max_media_bytes),
                "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS),
            },
        )

    @post(
        "/",
        summary="Create an upload (tus creation), optionally with its first chunk (creation-with-upload)",
        status_code=201,
        security=SECURITY,
        request_max_body_size=None,
        operation_class=_CreateOperation,
        response_headers=_doc_headers("Location", "Upload-Offset", "Upload-Expires", MEDIA_HEADER),
        responses=problem_responses(400, 401, 412, 413, 415, 422, 460, 503, 507),
    )
    async def create(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> Response[None]:
        _require_version(request)
        for unsupported in ("Upload-Defer-Length", "Upload-Concat"):
            if request.headers.get(unsupported) is not None:
                raise errors.UploadHeaderInvalid(
                    f"{unsupported} is not supported: send Upload-Length", field=unsupported
                )
        length = tus.parse_size(request.headers.get("upload-length"), "Upload-Length")
        with_chunk = tus.is_chunk_content_type(request.headers.get("content-type"))
        if not with_chunk and _has_body(request):
            raise errors.UploadContentTypeInvalid("a first chunk in the POST must be application/offset+octet-stream")
        checksum = tus.parse_checksum(request.headers.get("upload-checksum")) if with_chunk else None
        content_length = _content_length(request) if with_chunk else 0
        if content_length is not None and content_length > length:
            raise errors.UploadLengthExceeded(f"the first chunk announces {content_length} bytes of {length}")
        area = _area(runtime)
        state = await uploads.create_upload(
            conn, principal, area=area, length=length, declared=tus.declared_upload(request.headers.get("upload-metadata")),
            max_bytes=runtime.settings.max_media_bytes, now=now, ttl_s=runtime.settings.upload_expiry_s,
        )
        result = uploads.Appended(state)
        if with_chunk or length == 0:
            result = await uploads.append_chunk(
                RequestConnections(request, runtime.pool), principal, state.id, area=area, body=_body(request) if with_chunk else _nothing(),
                chunk=uploads.Chunk(offset=0, content_length=content_length, checksum=checksum),
                store=runtime.media, max_pixels=runtime.settings.max_media_pixels, now=now,
                ttl_s=runtime.settings.upload_expiry_s, lease_s=runtime.settings.upload_lease_s,
            )
            if result.created:
                runtime.wake_workers()
        location = f"{self.path}/{state.id}"
        return Response(None, status_code=201, headers={"Location": location, **_progress_headers(result)})

    @head(
        "/{upload_id:uuid}",
        summary="The upload's offset (tus core): how many bytes the server holds",
        security=SECURITY,
        operation_class=_TusOperation,
        response_headers=_doc_headers(
            "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires", MEDIA_HEADER
        ),
        responses=problem_responses(401, 404, 410, 412),
    )
    async def offset(
        self, request: Request[Any, Any, Any], upload_id: uuid.UUID, principal: Principal, conn: Connection,
        now: dt.datetime,
    ) -> Response[None]:
        _require_version(request)
        state = await uploads.get_upload(conn, principal, upload_id, now=now)
        headers = {
            **_progress_headers(uploads.Appended(state)),
            "Upload-Length": str(state.length),
            "Upload-Metadata": state.metadata,
            "Cache-Control": "no-store",
        }
        return Response(None, status_code=200, headers=headers)

    @patch(
        "/{upload_id:uuid}",
        summary="Append a chunk at Upload-Offset (tus core, checksum); the last byte makes the media object",
        status_code=204,
        security=SECURITY,
        request_max_body_size=None,
        operation_class=_PatchOperation,
        response_headers=_doc_headers("Upload-Offset", "Upload-Expires", MEDIA_HEADER),
        responses=problem_responses(400, 401, 404, 409, 410, 412, 413, 415, 422, 460, 503, 507),
    )
    async def append(
        self, request: Request[Any, Any, Any], upload_id: uuid.UUID, principal: Principal, runtime: Runtime,
        now: dt.datetime,
    ) -> Response[None]:
        _require_version(request)
        if not tus.is_chunk_content_type(request.headers.get("content-type")):
            raise errors.UploadContentTypeInvalid(f"Content-Type must be {tus.CHUNK_CONTENT_TYPE}")
        chunk = uploads.Chunk(
            offset=tus.parse_size(request.headers.get("upload-offset"), "Upload-Offset"),
            content_length=_content_length(request),
            checksum=tus.parse_checksum(request.headers.get("upload-checksum")),
        )
        result = await uploads.append_chunk(
            RequestConnections(request, runtime.pool), principal, upload_id, area=_area(runtime),
            body=_body(request), chunk=chunk, store=runtime.media, max_pixels=runtime.settings.max_media_pixels,
            now=now, ttl_s=runtime.settings.upload_expiry_s, lease_s=runtime.settings.upload_lease_s,
        )
        if result.created:
            runtime.wake_workers()
        return Response(None, status_code=204, headers=_progress_headers(result))

    @delete(
        "/{upload_id:uuid}",
        summary="Abandon an upload (tus termination): its bytes and its state are removed",
        status_code=204,
        security=SECURITY,
        operation_class=_TusOperation,
        responses=problem_responses(401, 404, 410, 412),
    )
    async def terminate(
        self, request: Request[Any, Any, Any], upload_id: uuid.UUID, principal: Principal, runtime: Runtime,
        now: dt.datetime,
    ) -> Response[None]:
        _require_version(request)
        await uploads.terminate_upload(RequestConnections(request, runtime.pool), principal, upload_id,
                                       area=_area(runtime), now=now, lease_s=runtime.settings.upload_lease_s)
        return Response(None, status_code=204)
