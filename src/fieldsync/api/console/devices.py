"""The devices page: enrolled devices in the caller's view, one-time enrollment codes for
inspectors' devices, revocation, and (once the OpenRosa work lands) the Collect QR code.

An issued code is shown once, in the answer to the POST that made it (200, never cached): a
redirect would have to carry the secret in a URL, which browsers keep in their history.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Controller, Request, Response, get, post
from markupsafe import Markup

from fieldsync import errors
from fieldsync.api.console import data, messages
from fieldsync.api.console.reports import names_for
from fieldsync.api.console.security import require_csrf
from fieldsync.api.console.web import error_message, language, render, see_other, with_query
from fieldsync.api.deps import Connection
from fieldsync.api.runtime import Runtime
from fieldsync.domain.principals import Principal


async def _page(
    request: Request[Any, Any, Any], conn: Connection, principal: Principal, *, status: int = 200,
    issued: tuple[str, dt.datetime, str] | None = None, error: str | None = None, collect_qr: Any = None,
) -> Response[str]:
    devices = await data.devices(conn, principal)
    inspectors = await data.inspectors(conn, principal)
    lang = language(request)
    names, _ = await names_for(conn, principal, lang)
    code = (error or request.query_params.get("error") or "")[:64]
    return render(
        request, "devices.html", status=status, devices=devices, inspectors=inspectors, names=names, issued=issued,
        error_text=error_message(messages.translator(lang), lang, code) if code else None,
        collect_qr=collect_qr,
    )


class ConsoleDevicesController(Controller):
    path = "/console/devices"

    @get("/", name="console:devices")
    async def devices(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection
    ) -> Response[str]:
        return await _page(request, conn, principal)

    @post("/enrollments", name="console:enroll")
    async def enroll(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> Response[Any]:
        form = await request.form()
        require_csrf(request, form.get("csrf_token"))
        username = str(form.get("username") or "")[:64]
        try:
            code, expires_at = await data.issue_enrollment(conn, principal, runtime, username=username, now=now)
        except (errors.InvalidInput, errors.NotFound, errors.Unprocessable) as exc:
            return see_other(with_query("/console/devices", error=exc.code))
        return await _page(request, conn, principal, issued=(code, expires_at, username))

    @post("/collect", name="console:collect")
    async def enroll_collect(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> Response[Any]:
        """A phone for ODK Collect: its QR code is shown once, in this answer (it carries the token)."""
        form = await request.form()
        require_csrf(request, form.get("csrf_token"))
        username = str(form.get("username") or "")[:64]
        label = str(form.get("label") or "").strip()[:100] or "ODK Collect"
        try:
            enrolled = await data.enroll_collect(request, conn, principal, runtime, username=username, label=label,
                                                 now=now)
        except (errors.InvalidInput, errors.NotFound, errors.Unprocessable) as exc:
            return see_other(with_query("/console/devices", error=exc.code))
        qr = Markup(data.qr_svg(enrolled.qr_text))  # segno's markup of our own text: nothing to escape
        return await _page(request, conn, principal, collect_qr=(qr, username, label, enrolled.server_url))

    @post("/{device_id:uuid}/revoke", name="console:revoke")
    async def revoke(
        self, request: Request[Any, Any, Any], device_id: uuid.UUID, principal: Principal, conn: Connection,
        now: dt.datetime,
    ) -> Response[Any]:
        form = await request.form()
        require_csrf(request, form.get("csrf_token"))
        await data.revoke_device(conn, principal, device_id, now=now)
        return see_other("/console/devices")
