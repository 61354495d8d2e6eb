"""Imaging: Pillow only. Files in, metadata and derivative bytes out; no asyncio, no I/O policy.

    probe(path, *, max_pixels) -> ImageInfo
        Format decided by the decoded content (JPEG, PNG, WebP, HEIC), pixel limit checked from
        the header before decoding, full decode to catch truncation, EXIF summary.
        Raises MediaUnsupportedType (415), MediaTooManyPixels (422), MediaUndecodable (422).
    render_derivatives(path, *, preview_px=1280, thumbnail_px=320) -> Derivatives(preview, thumbnail)
        JPEG bytes, orientation applied, sRGB, every metadata block stripped.
    dhash(path) -> int
        64-bit difference hash (signed, fits a bigint) for near-duplicate photos; ``hamming``.
    likeness.thumbprint(image) -> bytes, likeness.best_likeness(pairs) -> [float | None]
        32×32 grey thumbnail of a photo and the normalised correlation of two photos' thumbnails.

Both are CPU-bound and blocking. On the dev box a 12 MP JPEG takes ≈30 ms to probe and ≈100 ms
to render (``scripts/bench/derivatives.py``); a 64 MP PNG needs about 256 MB while it decodes.
Callers run them in worker threads and bound how many run at once. Comparing the detected type
with a declared ``Content-Type`` is the caller's policy.
Details and invariants are in ``probe`` and ``derivatives``.
"""

from __future__ import annotations

from fieldsync.imaging._pillow import ALLOWED_PLUGINS, FORMATS
from fieldsync.imaging.derivatives import PREVIEW_PX, THUMBNAIL_PX, Derivatives, render_derivatives
from fieldsync.imaging.dhash import dhash, dhash_bytes, hamming
from fieldsync.imaging.probe import ImageInfo, probe, sniff

MIME_TYPES = frozenset(mime for _, mime in FORMATS.values())

__all__ = [
    "ALLOWED_PLUGINS",
    "MIME_TYPES",
    "PREVIEW_PX",
    "THUMBNAIL_PX",
    "Derivatives",
    "dhash",
    "dhash_bytes",
    "hamming",
    "ImageInfo",
    "probe",
    "render_derivatives",
    "sniff",
]
