"""Media endpoints: content-addressed upload (streamed, hashed, checked), existence checks,
and downloads of the original and its stripped derivatives for callers who may see them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, head, post, put
from litestar.exceptions import InternalServerException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import Parameter
from litestar.response import Redirect, Stream

from fieldsync import errors
from fieldsync.api.deps import Connection, release_connection, request_connection
from fieldsync.api.problems import problem_responses
from fieldsync.api.runtime import Runtime
from fieldsync.api.schemas.common import SHA256_PATTERN
from fieldsync.api.schemas.media import Exif, MediaRead, MissingQuery, MissingRead
from fieldsync.domain.principals import Principal
from fieldsync.services import media
from fieldsync.storage import keys

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
Sha256Path = Annotated[str, Parameter(pattern=SHA256_PATTERN, description="lower-case hex SHA-256")]
PRESIGN_TTL_S = 120
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heic": "heic"}


@dataclasses.dataclass
class _UploadOperation(Operation):
    """Documents the raw image body, which the handler streams itself instead of decoding."""

    def __post_init__(self) -> None:
        binary = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY))
        self.request_body = RequestBody(
            content={ctype: binary for ctype in ("image/jpeg", "image/png", "image/webp", "image/heic")},
            required=True,
            description="The image bytes, byte-identical to what the device holds",
        )


def to_read(record: media.MediaRecord) -> MediaRead:
    return MediaRead(
        sha256=record.sha256, bytes=record.bytes, content_type=record.content_type, width=record.width,
        height=record.height,
        exif=Exif(
            taken_at=record.taken_at or record.taken_at_local, lat=record.lat, lon=record.lon, make=record.make,
            model=record.model,
        ),
    )


def _announced(request: Request[Any, Any, Any]) -> int | None:
    announced = request.headers.get("content-length")
    return int(announced) if announced is not None and announced.isdigit() else None


async def _spool_body(request: Request[Any, Any, Any], staged: Any, max_bytes: int) -> None:
    """Stream the body into the spool, refusing as soon as it is known to be too large."""
    announced = _announced(request)
    if announced is not None and announced > max_bytes:
        raise errors.MediaTooLarge(f"the limit is {max_bytes} bytes", limit=max_bytes)
    try:
        async for chunk in request.stream():
            await staged.write(chunk)
            if staged.size > max_bytes:
                raise errors.MediaTooLarge(f"the limit is {max_bytes} bytes", limit=max_bytes)
    except InternalServerException as exc:
        raise errors.MediaIncomplete("the client disconnected before the last byte") from exc
    await staged.finish()


class MediaController(Controller):
    path = "/v1/media"
    tags = ["media"]
    security = SECURITY

    @put(
        "/{sha256:str}",
        summary="Upload a photo by its SHA-256 (201 new, 200 known)",
        status_code=201,
        request_max_body_size=None,
        operation_class=_UploadOperation,
        responses={
            200: ResponseSpec(data_container=MediaRead, description="Already known", generate_examples=False),
            **problem_responses(400, 401, 404, 413, 415, 422, 503, 507),
        },
    )
    async def upload(
        self, request: Request[Any, Any, Any], sha256: Sha256Path, principal: Principal, runtime: Runtime,
        now: dt.datetime,
    ) -> Response[MediaRead]:
        declared = media.normalized_content_type(request.headers.get("content-type"))
        limit = runtime.settings.max_media_bytes
        runtime.spool.ensure_room(min(_announced(request) or limit, limit))
        # The principal's connection goes back to the pool while the body streams and is checked:
        # that takes seconds to minutes per photo, and holding it would cap uploads at the pool size.
        await release_connection(request)
        async with runtime.spool.staged() as staged:
            await _spool_body(request, staged, runtime.settings.max_media_bytes)
            checked = await media.check_media(
                staged, expected_sha256=sha256, declared_type=declared,
                max_pixels=runtime.settings.max_media_pixels,
            )
            kept = await media.keep_media(
                lambda: request_connection(request, runtime.pool), principal, staged=staged, checked=checked,
                store=runtime.media, now=now,
            )
        if kept.queued:
            runtime.wake_workers()
        return Response(to_read(kept.record), status_code=201 if kept.created else 200)

    @head(
        "/{sha256:str}",
        summary="200 if the server holds this photo, 404 if not",
        responses=problem_responses(400, 401, 404),
    )
    async def exists(self, sha256: Sha256Path, principal: Principal, conn: Connection) -> Response[None]:
        if not await media.exists(conn, principal, sha256):
            raise errors.MediaNotFound()
        return Response(None, status_code=200)

    @post(
        "/missing",
        status_code=200,
        summary="Which of these photos the server does not hold yet (at most 1000)",
        responses=problem_responses(400, 401),
    )
    async def missing(self, data: MissingQuery, principal: Principal, conn: Connection) -> MissingRead:
        return MissingRead(missing=await media.missing(conn, principal, data.sha256))

    @get(
        "/{sha256:str}",
        summary="The original, byte-identical (or a 307 to a short-lived URL on S3)",
        responses={
            200: ResponseSpec(data_container=bytes, description="The original bytes", generate_examples=False),
            307: ResponseSpec(data_container=None, description="Presigned URL of the original"),
            **problem_responses(400, 401, 404),
        },
        media_type="application/octet-stream",
    )
    async def original(
        self, request: Request[Any, Any, Any], sha256: Sha256Path, principal: Principal,
        conn: Connection, runtime: Runtime, now: dt.datetime,
    ) -> Response[Any]:
        return await serve_original(request, runtime, conn, principal, sha256, now=now)

    @get(
        "/{sha256:str}/preview",
        summary="A ≤1280 px JPEG, oriented, with every metadata block stripped",
        responses={200: ResponseSpec(data_container=bytes, description="JPEG", generate_examples=False),
                   **problem_responses(400, 401, 404)},
        media_type="image/jpeg",
    )
    async def preview(
        self, request: Request[Any, Any, Any], sha256: Sha256Path, principal: Principal,
        conn: Connection, runtime: Runtime, now: dt.datetime,
    ) -> Response[Any]:
        return await serve_derivative(request, runtime, conn, principal, sha256, "preview", now=now)

    @get(
        "/{sha256:str}/thumbnail",
        summary="A ≤320 px JPEG, oriented, with every metadata block stripped",
        responses={200: ResponseSpec(data_container=bytes, description="JPEG", generate_examples=False),
                   **problem_responses(400, 401, 404)},
        media_type="image/jpeg",
    )
    async def thumbnail(
        self, request: Request[Any, Any, Any], sha256: Sha256Path, principal: Principal,
        conn: Connection, runtime: Runtime, now: dt.datetime,
    ) -> Response[Any]:
        return await serve_derivative(request, runtime, conn, principal, sha256, "thumbnail", now=now)


async def serve_original(
    request: Request[Any, Any, Any], runtime: Runtime, conn: Connection, principal: Principal, sha256: str,
    *, now: dt.datetime,
) -> Response[Any]:
    """The original as evidence (also for the console): access checked and audited, then sent as an
    attachment without holding the connection."""
    record = await media.get_readable(conn, principal, sha256, variant="original", now=now)
    await release_connection(request)
    filename = f"{sha256}.{EXTENSIONS.get(record.content_type, 'bin')}"
    return await _serve(runtime, keys.original_key(sha256), record.content_type, filename, record.bytes,
                        attachment=True)


async def serve_derivative(
    request: Request[Any, Any, Any], runtime: Runtime, conn: Connection, principal: Principal, sha256: str,
    kind: keys.DerivativeKind, *, now: dt.datetime,
) -> Response[Any]:
    """Checks access, then gives the connection back: the bytes stream without holding one."""
    await media.get_readable(conn, principal, sha256, variant=kind, now=now)
    await release_connection(request)
    key = keys.derivative_key(sha256, kind)
    size = await runtime.media.size(key) if await runtime.media.exists(key) else 0
    if size == 0:  # never made, or stored without fsync and lost to a power cut (``media.keep_media``)
        await media.render_and_store(runtime.media, sha256)
        size = await runtime.media.size(key)
    return await _serve(runtime, key, "image/jpeg", f"{sha256}-{kind}.jpg", size)


async def _serve(
    runtime: Runtime, key: str, content_type: str, filename: str, size: int, *, attachment: bool = False
) -> Response[Any]:
    """The object's bytes (or a presigned URL). Originals are evidence with their metadata: they go
    out as an attachment, never rendered by a browser in the app's origin; nothing is sniffed."""
    url = await runtime.media.presigned_get_url(
        key, expires_s=PRESIGN_TTL_S, filename=filename, content_type=content_type
    )
    headers = {"Cache-Control": "private, max-age=3600, immutable", "ETag": f'"{filename}"',
               "X-Content-Type-Options": "nosniff"}
    if attachment:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if url is not None:
        return Redirect(url, status_code=307, headers={"Cache-Control": "no-store"}, media_type="text/plain")
    chunks = await runtime.media.open(key)
    return Stream(
        chunks, media_type=content_type, headers={**headers, "Content-Length": str(size)}
    )
