"""The one place where errors become RFC 9457 ``application/problem+json`` responses.

Catalogue errors map by category to a status; Litestar's own HTTP exceptions (routing, body
limits, request validation) are rewritten into the same shape with stable codes, so a client
never sees two kinds of error document. An unexpected exception is logged with its request id and
answered 500 ``internal`` without details.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from fieldsync import errors
from fieldsync.api.deps import (
    CLIENT_STATE_FAILURES,
    CONNECTION_FAILURES,
    DISK_FULL_FAILURES,
    TRANSIENT_FAILURES,
    connection_lost,
)
from fieldsync.api.observability import redact_path

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = structlog.get_logger("fieldsync.api")

_STATUS_BY_CATEGORY: list[tuple[type[errors.FieldsyncError], int]] = [
    (errors.InvalidInput, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.MethodNotAllowed, 405),
    (errors.Conflict, 409),
    (errors.Gone, 410),
    (errors.PreconditionFailed, 412),
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.Unprocessable, 422),
    (errors.Throttled, 429),
    (errors.RequestThrottled, 429),
    (errors.HeadersTooLarge, 431),
    (errors.ChecksumMismatch, 460),
    (errors.Unavailable, 503),
    (errors.InsufficientStorage, 507),
]

# Litestar's own refusals (routing, body limits, validation) take the codes of the catalogue.
_ERROR_BY_HTTP_STATUS: dict[int, type[errors.FieldsyncError]] = {
    400: errors.InvalidInput,
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    429: errors.RequestThrottled,
    503: errors.Unavailable,
}
INTERNAL = errors.FieldsyncError


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem document with fieldsync's stable ``code``; extension members (such as
    a conflict's current ``version``) are added at the top level, as the RFC allows."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


def status_for(exc: errors.FieldsyncError) -> int:
    for category, status in _STATUS_BY_CATEGORY:
        if isinstance(exc, category):
            return status
    return 500


def _type_uri(code: str) -> str:
    return f"https://fieldsync.dev/problems/{code}"


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None,
    field: str | None = None,
    field_errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    request_id = request.scope.get("state", {}).get("request_id")
    body = Problem(
        type=_type_uri(code),
        title=title,
        status=status,
        code=code,
        detail=detail,
        instance=redact_path(request.url.path),
        request_id=request_id,
        field=field,
        errors=field_errors,
    )
    document = msgspec.structs.asdict(body)
    document = {key: value for key, value in document.items() if value is not None}
    for key, value in (extra or {}).items():
        document.setdefault(key, value)
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", 'Bearer realm="fieldsync"')
    return Response(content=document, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=all_headers)


def handle_fieldsync_error(request: Request[Any, Any, Any], exc: errors.FieldsyncError) -> Response[dict[str, Any]]:
    extra = dict(exc.extra)
    field = extra.pop("field", None)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RetryLater):
        headers["Retry-After"] = str(exc.retry_after_s)
    headers.update(extra.pop("headers", {}) or {})
    status = status_for(exc)
    if status >= 500:
        log.warning("dependency_error", code=exc.code, detail=exc.detail)
    return problem_response(
        request,
        status=status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        field=field,
        extra=extra,
        headers=headers,
    )


_KEY_IN_MESSAGE = re.compile(r"at `\$\.([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def _wire_name(request: Request[Any, Any, Any], key: Any, source: Any) -> Any:
    """A parameter's name as the client sent it (``?scope=``), not its Python name (``which``)."""
    where = str(getattr(source, "value", source))
    if where not in {"query", "header", "cookie"}:
        return key
    field = request.route_handler.parsed_fn_signature.parameters.get(str(key))
    alias = getattr(getattr(field, "kwarg_definition", None), where, None)
    return alias or key


def _field_errors(request: Request[Any, Any, Any], exc: ValidationException) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    items = exc.extra if isinstance(exc.extra, list) else []
    for item in items:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", ""))
        key = item.get("key")
        match = _KEY_IN_MESSAGE.search(message)
        if match:
            key = match.group(1)
        missing = _MISSING_FIELD.search(message)
        if missing:
            key = f"{match.group(1)}.{missing.group(1)}" if match else missing.group(1)
        source = item.get("source")
        found.append({"field": _wire_name(request, key, source), "message": message, "source": source})
    return found


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, ValidationException) or status == 400:
        field_errors = _field_errors(request, exc) if isinstance(exc, ValidationException) else []
        detail = field_errors[0]["message"] if field_errors else exc.detail
        return problem_response(
            request,
            status=400,
            code=errors.InvalidInput.code,
            title="The request is invalid",
            detail=detail,
            field=field_errors[0]["field"] if field_errors else None,
            field_errors=field_errors or None,
        )
    if status >= 500:
        log.error("http_exception", status=status, detail=exc.detail)
        return problem_response(request, status=500, code=INTERNAL.code, title=INTERNAL.title, detail=None)
    return problem_response(
        request,
        status=status,
        code=_ERROR_BY_HTTP_STATUS[status].code if status in _ERROR_BY_HTTP_STATUS else f"http.{status}",
        title=exc.detail or "Error",
        detail=exc.detail,
        headers=dict(exc.headers or {}),
    )


def handle_database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A connection lost or a server shutting down mid-request is an outage (503), not a bug.

    When the server closes a pooled connection, asyncpg detaches it or leaves its protocol in an
    odd state, so the request's next query fails with a plain ``InterfaceError`` or
    ``InternalClientError``; those are an outage only if the connection is in fact gone.
    """
    if isinstance(exc, CLIENT_STATE_FAILURES) and not connection_lost(request.scope):
        return handle_unexpected(request, exc)
    lost = errors.DependencyUnavailable("the database connection was lost", dependency="database")
    return handle_fieldsync_error(request, lost)


def handle_disk_full(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """PostgreSQL could not extend a file: the statement (and its transaction) changed nothing."""
    return handle_fieldsync_error(request, errors.StorageFull("the database has no space left on its disk"))


def handle_transient_conflict(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A deadlock or serialization failure rolled the transaction back: nothing changed, retry."""
    log.warning("transient_conflict", error=exc.__class__.__name__)
    return handle_fieldsync_error(request, errors.ConcurrentChange())


def handle_too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """msgspec refuses a body nested deeper than the interpreter's recursion limit with a
    ``RecursionError``; no handler code recurses on request data, so this is the body's fault."""
    return handle_fieldsync_error(request, errors.NestingTooDeep())


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled_exception", error=exc.__class__.__name__)
    return problem_response(request, status=500, code=INTERNAL.code, title=INTERNAL.title, detail=None)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    errors.FieldsyncError: handle_fieldsync_error,
    HTTPException: handle_http_exception,
    **{failure: handle_database_error for failure in CONNECTION_FAILURES},
    **{failure: handle_transient_conflict for failure in TRANSIENT_FAILURES},
    **{failure: handle_disk_full for failure in DISK_FULL_FAILURES},
    RecursionError: handle_too_deep,
    Exception: handle_unexpected,
}

_DESCRIPTIONS = {
    400: "Invalid request: the problem names the failing field",
    401: "Missing, invalid, expired or revoked bearer token",
    403: "The caller's role may not do this, or the target lies outside its jurisdiction",
    404: "Not found, or outside the caller's jurisdiction",
    409: "Conflicts with the current state",
    410: "Gone",
    412: "Precondition failed",
    413: "Body too large",
    415: "Unsupported content type",
    422: "Well-formed but cannot be processed",
    429: "Too many failed attempts",
    460: "Checksum mismatch",
    503: "A dependency is unavailable, or the server is busy; retry after Retry-After",
    507: "The server's storage is full; nothing was kept; retry after Retry-After",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the problem statuses an operation can answer."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS[status],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }

