"""``POST /v1/devices/collect``: enroll an inspector's phone for ODK Collect in one step and hand
back the QR code that configures it (SPEC §7)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from litestar import Controller, Request, post

from fieldsync.api.deps import Connection
from fieldsync.api.openrosa.controller import public_base
from fieldsync.api.problems import problem_responses
from fieldsync.api.runtime import Runtime
from fieldsync.api.schemas.collect import CollectDevice, CollectEnroll
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal
from fieldsync.services import collect


class CollectController(Controller):
    path = "/v1/devices"
    tags = ["devices"]
    security = [{"bearer": []}]

    @post(
        "/collect",
        summary="Enroll a phone for ODK Collect / KoboCollect: a device token and the QR code that sets it up",
        description=(
            "Supervisors (inspectors in their jurisdiction) and admins. `server_url` is the absolute OpenRosa "
            "base `/openrosa/key/{token}`; it is built from `FIELDSYNC_PUBLIC_URL` when set, else from this "
            "request's scheme and host."
        ),
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def enroll_collect(
        self, request: Request[Any, Any, Any], data: CollectEnroll, principal: Principal,
        conn: Connection, runtime: Runtime, now: dt.datetime,
    ) -> CollectDevice:
        async with transaction(conn):
            enrolled = await collect.enroll_collect(
                conn, principal, username=data.username, label=data.label,
                public_base=public_base(request, runtime), now=now,
            )
        return CollectDevice(
            device_id=enrolled.device_id, token=enrolled.token, server_url=enrolled.server_url,
            settings=enrolled.settings, qr_png=base64.b64encode(enrolled.qr_png).decode("ascii"),
        )
