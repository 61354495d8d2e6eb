"""Photos and exports for the browser: the API's media and export endpoints behind the console's
session cookie (a browser cannot send ``Authorization: Bearer`` with an ``<img>`` or a link).

Same access rule and audit event per photo as ``GET /v1/media/…``, same stream and encoding
as ``GET /v1/export``: the console adds no rule of its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get
from litestar.background_tasks import BackgroundTask
from litestar.di import Provide
from litestar.params import Parameter
from litestar.response import Stream

from fieldsync.api.console import data
from fieldsync.api.console.web import drop_empty_filters
from fieldsync.api.deps import Connection
from fieldsync.api.runtime import Runtime
from fieldsync.domain.principals import Principal

Sha256 = Annotated[str, Parameter(pattern=r"^[0-9a-f]{64}$")]


async def _close(body: Any) -> None:
    await body.aclose()


class ConsoleFilesController(Controller):
    path = "/console"
    dependencies = {"where": Provide(data.report_filter)}

    @get("/media/{sha256:str}", name="console:original")
    async def original(
        self, request: Request[Any, Any, Any], sha256: Sha256, principal: Principal, conn: Connection,
        runtime: Runtime, now: dt.datetime,
    ) -> Response[Any]:
        return await data.media_response(request, runtime, conn, principal, sha256, "original", now=now)

    @get("/media/{sha256:str}/{variant:str}", name="console:derivative")
    async def derivative(
        self, request: Request[Any, Any, Any], sha256: Sha256, variant: Literal["preview", "thumbnail"],
        principal: Principal, conn: Connection, runtime: Runtime, now: dt.datetime,
    ) -> Response[Any]:
        return await data.media_response(request, runtime, conn, principal, sha256, variant, now=now)

    @get("/export", name="console:export", before_request=drop_empty_filters)
    async def export(
        self, principal: Principal, conn: Connection, now: dt.datetime, where: data.ReportFilter,
        fmt: Annotated[Literal["csv", "geojson"], Parameter(query="format")] = "csv",
    ) -> Stream:
        chosen = data.ExportFormat[fmt]
        filename = f"fieldsync-reports-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.{chosen.extension}"
        body = data.export_body(conn, principal, where, now=now, fmt=fmt)
        return Stream(
            body, media_type=chosen.media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
            background=BackgroundTask(_close, body),
        )
