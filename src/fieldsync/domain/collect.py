"""ODK Collect project settings for a fieldsync device, and the text of the QR code that carries them.

Collect configures a project by scanning a QR code whose text is its settings JSON
(``{"general": {...}, "admin": {...}, "project": {...}}``, the shape of Collect's
``client-settings.schema.json``), zlib-compressed and then base64-encoded. The settings point
Collect at ``{base}`` (the device token is in that URL), download forms automatically and keep
them matching the server, send finalized forms as soon as any network is up, keep photos at their
original size (they are evidence) and show Chinese.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

OPENROSA_PREFIX = "/openrosa/key/"


def server_url(public_base: str, device_token: str) -> str:
    """The absolute ``{base}`` Collect is pointed at."""
    return f"{public_base.rstrip('/')}{OPENROSA_PREFIX}{device_token}"


def collect_settings(*, url: str, project_name: str) -> dict[str, Any]:
    return {
        "general": {
            "protocol": "odk_default",
            "server_url": url,
            "form_update_mode": "match_exactly",
            "periodic_form_updates_check": "every_one_hour",
            "automatic_update": True,
            "autosend": "wifi_and_cellular",
            "delete_send": False,
            "constraint_behavior": "on_swipe",
            "image_size": "original_image_size",
            "app_language": "zh",
        },
        "admin": {"change_server": False},
        "project": {"name": project_name, "icon": "F", "color": "#c62828"},
    }


def qr_text(settings: dict[str, Any]) -> str:
    """What the QR code holds: the settings JSON, zlib-compressed, base64-encoded."""
    raw = json.dumps(settings, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def settings_of_qr_text(text: str) -> dict[str, Any]:
    """The inverse of :func:`qr_text`, as Collect reads it."""
    decoded: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(text)))
    return decoded
