"""OpenRosa endpoints for ODK Collect and KoboCollect at ``{base}`` = ``/openrosa/key/{device_token}``
(SPEC §7): the form list, the forms, the submission HEAD check and submissions.

The device token sits in the path because Collect cannot send a bearer header; it is the one
place a token is read from a URL (a device token only, never a user session), and the
observability middleware and problem documents redact it (``api.observability.redact_path``).
A bad or revoked token answers 403 so Collect shows an error instead of a login prompt. Every
request must carry ``X-OpenRosa-Version: 1.0``; every answer carries the OpenRosa headers, errors
included (``responses.handle_openrosa_error``).

A submission is read as a stream into the spool (``multipart``), its XML turned into the JSON
API's ``ReportWrite`` (``instances``), each attachment the XML names put through the checks and
the store of ``PUT /v1/media/{sha256}`` (``services.media.check_media`` / ``keep_media``, which
also record this device's user as the uploader), and the instance accepted by
``services.openrosa.accept_instance`` in one transaction. No pooled connection is held while
the body streams in.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, head, post
from litestar.di import Provide
from litestar.params import Parameter

from fieldsync import errors
from fieldsync.api.deps import Connection, release_connection, request_connection
from fieldsync.api.openrosa import instances, multipart, responses, xforms
from fieldsync.api.openrosa.fields import FORMS
from fieldsync.api.problems import EXCEPTION_HANDLERS
from fieldsync.api.runtime import Runtime
from fieldsync.db.transactions import transaction
from fieldsync.domain import tokens
from fieldsync.domain.collect import OPENROSA_PREFIX
from fieldsync.domain.principals import Principal
from fieldsync.services import identity, media, openrosa


async def provide_device(
    request: Request[Any, Any, Any], device_token: str, conn: Connection, now: dt.datetime
) -> Principal:
    """The device behind the token in the path, after the OpenRosa version check."""
    if request.headers.get("x-openrosa-version", "").strip() != responses.OPENROSA_VERSION:
        raise errors.OpenRosaVersionRequired()
    if not device_token.startswith(tokens.DEVICE_PREFIX) or len(device_token) > 200:
        raise errors.OpenRosaKeyInvalid()
    try:
        principal = await identity.authenticate(conn, token=device_token, now=now)
    except errors.TokenRevoked as exc:
        raise errors.OpenRosaKeyRevoked() from exc
    except errors.Unauthenticated as exc:
        raise errors.OpenRosaKeyInvalid() from exc
    openrosa.require_device(principal)
    request.scope["state"]["principal"] = principal
    return principal


def public_base(request: Request[Any, Any, Any], runtime: Runtime) -> str:
    """scheme://host[:port] the device reaches this server at (FIELDSYNC_PUBLIC_URL wins)."""
    return runtime.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")


def _declared_type(attachment: multipart.Attachment) -> str:
    declared = attachment.content_type
    if declared is None or declared.split(";", 1)[0].strip().lower() in ("application/octet-stream", ""):
        declared = mimetypes.guess_type(attachment.filename)[0]
    return media.normalized_content_type(declared)


async def _keep_attachments(
    request: Request[Any, Any, Any], runtime: Runtime, device: Principal,
    attachments: dict[str, multipart.Attachment], now: dt.datetime,
) -> dict[str, str]:
    """Each attachment through the checks and the store of ``PUT /v1/media``; file name → sha256."""
    kept: dict[str, str] = {}
    for name, attachment in sorted(attachments.items()):
        staged = attachment.staged
        checked = await media.check_media(
            staged, expected_sha256=staged.sha256, declared_type=_declared_type(attachment),
            max_pixels=runtime.settings.max_media_pixels,
        )
        stored = await media.keep_media(
            lambda: request_connection(request, runtime.pool), device, staged=staged, checked=checked,
            store=runtime.media, now=now,
        )
        if stored.queued:
            runtime.wake_workers()
        kept[name] = staged.sha256
    return kept


def _message(outcome: openrosa.InstanceOutcome, parsed: instances.ParsedInstance, received: int) -> str:
    missing = sorted(parsed.filenames - outcome.files.keys())
    receipt = outcome.receipt
    if receipt is None:
        text = f"已收到本次上传的 {received} 个文件，等待其余部分。Received {received} file(s); waiting for the rest."
    elif receipt.duplicate:
        text = "此报告此前已收到，没有重复保存。This report had been received already; nothing was stored twice."
    elif receipt.created:
        text = f"报告已提交（第 {receipt.version} 版）。Report received (version {receipt.version})."
    else:
        text = f"报告已更新为第 {receipt.version} 版。Report updated to version {receipt.version}."
    if receipt is not None and missing:
        text += f" 未收到的照片 Photos not received: {', '.join(missing)}."
    if receipt is not None and receipt.possible_duplicates:
        text += f" 可能与 {len(receipt.possible_duplicates)} 份报告重复 May duplicate other reports."
    return text


class OpenRosaController(Controller):
    path = OPENROSA_PREFIX + "{device_token:str}"
    tags = ["openrosa"]
    include_in_schema = False
    dependencies = {"device": Provide(provide_device)}
    # every key the app maps, so none of the app's problem+json handlers is more specific than ours
    exception_handlers = {key: responses.handle_openrosa_error for key in EXCEPTION_HANDLERS}
    response_headers = responses.RESPONSE_HEADERS

    @get("/formList", summary="OpenRosa form list")
    async def form_list(
        self, request: Request[Any, Any, Any], device_token: str, device: Principal, conn: Connection,
        runtime: Runtime, form_id: Annotated[str | None, Parameter(query="formID")] = None,
    ) -> Response[bytes]:
        forms = xforms.render_forms(await openrosa.form_reference(conn, device))
        forms = [form for form in forms if form_id is None or form.form_id == form_id]
        base = f"{public_base(request, runtime)}{OPENROSA_PREFIX}{device_token}"
        return responses.xml_response(responses.form_list_document(forms, base))

    @get("/forms/{form_file:str}", summary="One XForm")
    async def form(self, form_file: str, device: Principal, conn: Connection) -> Response[bytes]:
        spec = FORMS.get(form_file.removesuffix(".xml"))
        if spec is None or not form_file.endswith(".xml"):
            raise errors.FormNotFound(f"no form {form_file[:80]!r}; this server has {', '.join(FORMS)}")
        rendered = xforms.render_form(spec, await openrosa.form_reference(conn, device))
        return responses.xml_response(rendered.xml)

    @head("/submission", status_code=204, summary="Submission endpoint check (Collect accepts only 204)")
    async def check(self, device: Principal) -> Response[None]:
        return Response(None, status_code=204, headers=responses.HEADERS)

    @get("/submission", status_code=204, summary="Submission endpoint check")
    async def check_get(self, device: Principal) -> Response[None]:
        return Response(None, status_code=204, headers=responses.HEADERS)

    @post("/submission", status_code=201, request_max_body_size=None, summary="Submit an instance")
    async def submit(
        self, request: Request[Any, Any, Any], device: Principal, runtime: Runtime, now: dt.datetime
    ) -> Response[bytes]:
        await release_connection(request)
        settings = runtime.settings
        limits = multipart.Limits(
            max_body_bytes=responses.ACCEPT_CONTENT_LENGTH + settings.max_media_bytes + settings.max_json_bytes,
            max_xml_bytes=settings.max_json_bytes, max_media_bytes=settings.max_media_bytes,
        )
        seen: list[instances.ParsedInstance] = []

        def wanted(xml: bytes) -> set[str]:
            parsed = instances.parse_instance(xml)
            instances.to_report(parsed, parsed.instance_id, {})  # refuse a bad report before any photo is kept
            seen.append(parsed)
            return parsed.filenames

        async with multipart.read_submission(request, runtime.spool, limits, wanted) as body:
            parsed = seen[-1]
            files = await _keep_attachments(request, runtime, device, body.attachments, now)
        post_ = openrosa.InstancePost(
            instance_id=parsed.instance_id, deprecated_id=parsed.deprecated_id, form_id=parsed.spec.form_id,
            xml_sha256=parsed.xml_sha256, complete=not body.incomplete, files=files,
        )
        conn = await request_connection(request, runtime.pool)
        async with transaction(conn):
            outcome = await openrosa.accept_instance(
                conn, device, post_, lambda report_id, known: instances.to_report(parsed, report_id, known),
                now=now, clock_skew_s=settings.clock_skew_s,
            )
        if outcome.receipt is not None:
            runtime.wake_workers()  # the report's near-duplicate search was queued
        message = _message(outcome, parsed, len(files))
        return responses.xml_response(responses.message_document(message, nature="submit_success"), status=201)
