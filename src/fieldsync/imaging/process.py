"""``process``: everything the server keeps of an upload, from one decode.

An upload used to be decoded three times: by ``probe`` (is it a whole image?), by the
derivative job (preview and thumbnail, after reading the original back from the store) and, for
fingerprints, a third time when a small JPEG's 1/8 draft was too small. Now one decode, at the
scale the preview needs, answers all of it:

1. open with the allowed plugins and check the pixel count from the header (``probe.open_checked``);
2. EXIF (orientation, time, position, camera) from the header;
3. decode once, a JPEG through DCT scaling to the smallest size covering the preview box, or the
   thumbnail box when the photo is its own preview (``derivatives.own_scan``: upright, fits, no
   colour profile, a plain baseline layout): every entropy-coded byte is still read, so a
   truncated or corrupt file fails here as in ``probe``;
4. preview and thumbnail from those pixels (``derivatives.render``), or only the thumbnail next
   to the original's own scan;
5. dHash and thumbprint from the thumbnail, which is already oriented, small and area-averaged.

A decode failure is the caller's 4xx. A rendering failure after a clean decode (which would be a
bug, or a colour profile LittleCMS chokes on) is not the uploader's fault: ``derivatives`` is then
``None``, the fingerprints come from the decoded pixels, and the caller queues the derivative job.
Pure function on a file: run it in a worker thread, a bounded number at a time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import structlog

from fieldsync.imaging.derivatives import (
    PREVIEW_PX,
    THUMBNAIL_PX,
    Derivatives,
    decode_for_preview,
    fit,
    own_scan,
    render,
)
from fieldsync.imaging.dhash import dhash_image
from fieldsync.imaging.likeness import thumbprint
from fieldsync.imaging.probe import ImageInfo, exif_fields, fingerprints_of, open_checked

log = structlog.get_logger("fieldsync.imaging")


@dataclasses.dataclass(frozen=True, slots=True)
class Processed:
    info: ImageInfo
    derivatives: Derivatives | None  # None: decoded cleanly but not rendered; render it later


def process(path: Path, *, max_pixels: int) -> Processed:
    """Check, decode once, and derive metadata, fingerprints, preview and thumbnail."""
    image, name, mime_type = open_checked(path, max_pixels=max_pixels)
    with image:
        width, height = image.size
        exif = exif_fields(image)
        orientation = exif.get("orientation", 1)
        preview = own_scan(image, orientation, path)
        decode_for_preview(image, fit(image.size, THUMBNAIL_PX if preview is not None else PREVIEW_PX))
        base = ImageInfo(format=name, mime_type=mime_type, width=width, height=height, **exif)
        try:
            derivatives, small = render(image, orientation=orientation, preview=preview)
        except Exception as exc:  # noqa: BLE001 - the upload is sound; its derivatives are retried later
            log.warning("derivatives_not_rendered", error=repr(exc))
            photo_hash, photo_print = fingerprints_of(image, path, stored_size=(width, height))
            return Processed(dataclasses.replace(base, dhash=photo_hash, thumbprint=photo_print), None)
    return Processed(dataclasses.replace(base, dhash=dhash_image(small, draft=False), thumbprint=thumbprint(small)),
                     derivatives)
