"""``render``/``render_derivatives``: a ≤1280 px preview and a ≤320 px thumbnail, as clean JPEGs.

The pipeline, cheapest order first:

1. Open with the allowed plugins only (same errors as ``probe``).
2. JPEG: ``draft`` asks libjpeg for DCT scaling to the smallest 1/2, 1/4 or 1/8 size that is
   still at least the preview size, so a 12 MP photo decodes as 3 MP. About 2.4× faster than a
   full decode (research/toolchain.md §5; ``scripts/bench/derivatives.py`` measures it here).
3. Flatten to 8-bit without alpha: palette and alpha images are composited on white (a plain
   ``convert("RGB")`` would show whatever colour transparent pixels happen to hold), 16-bit grey
   is scaled down, CMYK stays CMYK until the colour conversion.
4. Downscale to the preview box with LANCZOS (``reducing_gap`` 3.0: box-reduce first when the
   factor is large, visually indistinguishable from a plain LANCZOS).
5. Colour: if the original carries an ICC profile, convert the pixels to sRGB with LittleCMS,
   because the profile itself is not kept (Display P3 from phones would look dull otherwise). A
   profile LittleCMS cannot use is ignored.
6. Orientation: the EXIF orientation is applied with the same transposition table as
   ``ImageOps.exif_transpose``, after the downscale, so it moves a quarter of the pixels.
7. The thumbnail is downscaled from the finished preview: box-averaged by the largest whole
   factor (``reducing_gap`` 1.0), then LANCZOS the rest of the way. Fingerprints for
   near-duplicate search are taken from it (``imaging.process``).
8. A preview that needs no new pixels (an upright RGB baseline JPEG without a colour profile that
   already fits the box) is not re-encoded: it is the original's own scan with every metadata
   segment removed (``imaging.jpeg``), lossless and a JPEG encode cheaper. This is decided from
   the header, before decoding (``own_scan``), so such a photo is decoded at thumbnail scale only.
9. Otherwise both are saved as baseline JPEG (quality 85 / 80) from images whose ``info`` is emptied and
   with ``exif=b""``: no EXIF (so no GPS), no XMP, no ICC, no comment. Pillow carries some
   ``info`` keys (the JPEG comment) into a save unless they are cleared, hence the explicit
   reset. The output holds only SOI, APP0/JFIF, DQT, SOF, DHT, SOS and EOI segments.

Images smaller than a box are not upscaled. Pure function on a file: run it in a worker thread.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageCms

from fieldsync.imaging.jpeg import strip_metadata
from fieldsync.imaging.probe import load_checked, open_image

PREVIEW_PX = 1280
THUMBNAIL_PX = 320
PREVIEW_QUALITY = 85
THUMBNAIL_QUALITY = 80

# EXIF orientation → the transposition that undoes it (as in ``ImageOps.exif_transpose``).
_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class Derivatives(NamedTuple):
    preview: bytes
    thumbnail: bytes


def fit(size: tuple[int, int], box: int) -> tuple[int, int]:
    """``size`` scaled to fit a ``box``×``box`` square, never enlarged, never zero."""
    width, height = size
    scale = min(1.0, box / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_derivatives(
    path: Path, *, preview_px: int = PREVIEW_PX, thumbnail_px: int = THUMBNAIL_PX, draft: bool = True
) -> Derivatives:
    """Preview and thumbnail JPEG bytes for the image at ``path``; ``draft=False`` only to benchmark."""
    with open_image(path) as image:
        orientation = orientation_of(image)
        preview = own_scan(image, orientation, path, preview_px)
        target = fit(image.size, thumbnail_px if preview is not None else preview_px)
        decode_for_preview(image, target if draft else image.size)
        rendered, _ = render(image, orientation=orientation, preview=preview, preview_px=preview_px,
                             thumbnail_px=thumbnail_px)
    return rendered


def own_scan(image: Image.Image, orientation: int, path: Path, preview_px: int = PREVIEW_PX) -> bytes | None:
    """The preview of the opened, not yet decoded ``image`` (from the file at ``path``) when it
    needs no new pixels: an upright RGB JPEG without a colour profile that already fits the box and
    whose layout ``strip_metadata`` rewrites. Only the thumbnail then needs pixels, so the caller
    decodes at thumbnail scale (1/4 of a 1280 px photo: every byte still read, a sixteenth of the
    pixels to transform and convert). None: decode for a new preview."""
    if not (image.format == "JPEG" and image.mode == "RGB" and not image.info.get("icc_profile")
            and orientation == 1 and fit(image.size, preview_px) == image.size):
        return None
    return strip_metadata(path.read_bytes())


def decode_for_preview(image: Image.Image, target: tuple[int, int]) -> None:
    """Decode ``image`` (a JPEG through DCT scaling to the smallest size still covering
    ``target``). A decoder failure is ``MediaUndecodable``, a bomb ``MediaTooManyPixels``."""
    load_checked(image, draft=("RGB", target) if target != image.size else None, broken="the image cannot be decoded")


def render(
    image: Image.Image, *, orientation: int, preview: bytes | None = None, preview_px: int = PREVIEW_PX,
    thumbnail_px: int = THUMBNAIL_PX,
) -> tuple[Derivatives, Image.Image]:
    """Both derivatives of a decoded ``image``, and the thumbnail as an image (fingerprints are
    taken from it). With ``preview`` (``own_scan``'s, taken before decoding), only the thumbnail
    is rendered."""
    icc = image.info.get("icc_profile")
    flat = _flatten(image)
    if preview is not None:
        preview_image, preview_bytes = flat, preview
    else:
        preview_image = _to_srgb(_resize(flat, fit(flat.size, preview_px)), icc)
        if orientation in _TRANSPOSE:
            preview_image = preview_image.transpose(_TRANSPOSE[orientation])
        preview_bytes = _jpeg(preview_image if preview_image is not image else image.copy(), PREVIEW_QUALITY)
    thumbnail = _shrink(preview_image, fit(preview_image.size, thumbnail_px))
    if thumbnail is image:
        thumbnail = image.copy()
    return Derivatives(preview_bytes, _jpeg(thumbnail, THUMBNAIL_QUALITY)), thumbnail


def orientation_of(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF: show the raster as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _flatten(image: Image.Image) -> Image.Image:
    """An ``L``, ``RGB`` or ``CMYK`` image; transparency composited onto white."""
    mode = image.mode
    if mode in ("L", "RGB", "CMYK"):
        return image
    if mode == "P" and "transparency" not in image.info:
        return image.convert("RGB")
    if mode in ("P", "PA", "LA", "RGBA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I"):
        return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    return image.convert("RGB")


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _shrink(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """For the thumbnail: box-average by the largest whole factor that stays at or above ``size``
    (an exact area filter, a tenth of a full LANCZOS pass), then LANCZOS the rest of the way."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0)


def _to_srgb(image: Image.Image, icc: object) -> Image.Image:
    if isinstance(icc, bytes) and icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None
        if converted is not None:
            return converted
    return image.convert("RGB") if image.mode != "RGB" else image


def _jpeg(image: Image.Image, quality: int) -> bytes:
    image.info = {}
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=b"", optimize=False, progressive=False)
    return buffer.getvalue()
