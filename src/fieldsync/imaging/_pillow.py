"""Pillow set up once for fieldsync: the HEIF opener registered, the allowed plugins named."""

from __future__ import annotations

import pillow_heif

pillow_heif.register_heif_opener(thumbnails=False)

ALLOWED_PLUGINS = ("JPEG", "PNG", "WEBP", "HEIF")

# Pillow plugin name → (fieldsync format name, MIME type).
FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpeg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "HEIF": ("heic", "image/heic"),
}
