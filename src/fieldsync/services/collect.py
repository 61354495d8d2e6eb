"""Enrolling a phone for ODK Collect / KoboCollect in one step: a device for an inspector, the
Collect settings that point at its ``{base}``, and the QR code Collect scans to take them.

Runs inside the caller's transaction (the device row and its enrollment record commit together).
The QR code is rendered with segno at error-correction level M (readable off a printed sheet or a
screen with some glare) as a PNG of 6-pixel modules.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import uuid
from typing import Any

import asyncpg
import segno

from fieldsync.domain import collect
from fieldsync.domain.principals import Principal
from fieldsync.services import identity

PLATFORM = "odk-collect"


@dataclasses.dataclass(frozen=True, slots=True)
class CollectEnrollment:
    device_id: uuid.UUID
    token: str
    server_url: str
    settings: dict[str, Any]
    qr_text: str
    qr_png: bytes


def qr_png(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=6, border=4)
    return out.getvalue()


async def enroll_collect(
    conn: asyncpg.Connection,
    actor: Principal | None,
    *,
    username: str,
    label: str,
    public_base: str,
    now: dt.datetime,
) -> CollectEnrollment:
    """A device enrolled at once for ``username`` and everything Collect needs to use it."""
    device_id, token = await identity.enroll_device_for(
        conn, actor, username=username, label=label, platform=PLATFORM, now=now
    )
    url = collect.server_url(public_base, token)
    settings = collect.collect_settings(url=url, project_name=f"fieldsync · {username}")
    text = collect.qr_text(settings)
    return CollectEnrollment(device_id, token, url, settings, text, qr_png(text))
