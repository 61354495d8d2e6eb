"""Wire types for enrolling a phone for ODK Collect / KoboCollect (SPEC §7)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from fieldsync.api.schemas.common import ShortText, Username


class CollectEnroll(msgspec.Struct):
    username: Username
    label: ShortText = "ODK Collect"


class CollectDevice(msgspec.Struct):
    """A device enrolled for ``username`` and what Collect needs to use it. ``token`` and
    ``server_url`` (which holds it) are shown once; ``qr_png`` is the base64 PNG of the QR code
    Collect scans (its text: the ``settings`` JSON, zlib-compressed, base64-encoded)."""

    device_id: uuid.UUID
    token: str
    server_url: str
    settings: dict[str, Any]
    qr_png: str
