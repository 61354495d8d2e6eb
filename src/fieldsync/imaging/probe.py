"""``probe``: is this file an allowed image, how big is it, and what does its EXIF say?

Order of checks, each before the next costs anything:

1. **Format from the content.** Pillow is asked to open the file with only the allowed plugins
   (JPEG, PNG, WebP, and HEIF from pillow-heif); each identifies a file by its magic bytes, never
   by name or declared type. Anything else (text, SVG, PDF, GIF, AVIF, random bytes) is
   ``MediaUnsupportedType``. A file that starts like an allowed format but whose header cannot
   be read is ``MediaUndecodable`` instead (``sniff`` tells the two apart).
2. **Pixel limit from the header**, before a single pixel is decoded: ``width * height >
   max_pixels`` is ``MediaTooManyPixels``. Pillow's own bomb guard (``Image.MAX_IMAGE_PIXELS``,
   left at its default; a ``DecompressionBombError`` maps to the same error) stays as a second
   fence; it is process-global, so probe never changes it.
3. **Full decode**, so a truncated or corrupt file is ``MediaUndecodable``. JPEGs decode with
   DCT scaling 1/8 (``draft``): every entropy-coded byte is still read, so truncation is caught,
   at a sixty-fourth of the memory. Other formats decode at full size: a PNG at the 64 MP limit
   needs up to 256 MB while probing, so callers bound how many probes run at once.
   ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay ``False`` (the default) for this to hold.
4. **EXIF**, best effort: a malformed EXIF block never rejects an image that decodes.

What ``ImageInfo`` reports:

- ``width``/``height``: the stored raster as decoded. ``orientation`` (EXIF 1–8, 1 when absent)
  is the rotation a viewer must still apply; ``display_size`` applies it. pillow-heif applies
  HEIF transforms while decoding and reports orientation 1 for HEIC.
- ``taken_at``: ``DateTimeOriginal`` (with ``SubSecTimeOriginal``). Timezone-aware when the camera
  recorded ``OffsetTimeOriginal``; otherwise **naive**: camera-local wall time in an unknown zone.
  imaging never guesses a zone; the caller decides (e.g. the offset of the report's
  ``observed_at``) and should keep the two cases apart.
- ``lat``/``lon``: signed decimal degrees (S and W negative) from the GPS IFD, or ``None`` when
  missing, void (``GPSStatus`` = V), without a hemisphere reference, or out of range.
- ``make``/``model``: stripped of NULs and control characters, at most 64 characters.

Pure functions on files: no asyncio and no I/O policy. Run them in a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from fieldsync.errors import MediaTooManyPixels, MediaUndecodable, MediaUnsupportedType
from fieldsync.imaging._pillow import ALLOWED_PLUGINS, FORMATS
from fieldsync.imaging.dhash import dhash_image
from fieldsync.imaging.likeness import MIN_SOURCE_PX, thumbprint

_ORIENTATION = 0x0112
_MAKE = 0x010F
_MODEL = 0x0110
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_SUBSEC_TIME_ORIGINAL = 0x9291
_GPS_LATITUDE_REF, _GPS_LATITUDE, _GPS_LONGITUDE_REF, _GPS_LONGITUDE, _GPS_STATUS = 1, 2, 3, 4, 9

_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_DATETIME = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclasses.dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str
    mime_type: str
    width: int
    height: int
    orientation: int = 1
    taken_at: dt.datetime | None = None
    lat: float | None = None
    lon: float | None = None
    make: str | None = None
    model: str | None = None
    dhash: int | None = None  # perceptual hash for near-duplicate search (``imaging.dhash``)
    thumbprint: bytes | None = None  # 32×32 grey thumbnail for near-duplicate scoring (``imaging.likeness``)

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as a viewer shows the image, orientation applied."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)


def sniff(head: bytes) -> str | None:
    """The allowed format a file's first bytes claim to be (``jpeg``, ``png``, ...), if any."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[0:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIC_BRANDS:
        return "heic"
    return None


def open_image(path: Path) -> Image.Image:
    """Open with the allowed plugins only; catalogue errors for anything else."""
    try:
        return Image.open(path, formats=ALLOWED_PLUGINS)
    except Image.DecompressionBombError as exc:
        raise MediaTooManyPixels(str(exc)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        with open(path, "rb") as handle:
            claimed = sniff(handle.read(16))
        if claimed is None:
            raise MediaUnsupportedType("not a JPEG, PNG, WebP or HEIC image") from None
        raise MediaUndecodable(f"starts like {claimed.upper()} but its header cannot be read") from exc


def open_checked(path: Path, *, max_pixels: int) -> tuple[Image.Image, str, str]:
    """Open with the allowed plugins and check the pixel count from the header, before any pixel
    is decoded; returns the open image, its format name and MIME type (the caller closes it)."""
    image = open_image(path)
    try:
        name, mime_type = FORMATS[image.format or ""]
        width, height = image.size
        if width <= 0 or height <= 0:
            raise MediaUndecodable("the image has no pixels")
        if width * height > max_pixels:
            raise MediaTooManyPixels(
                f"{width}×{height} is {width * height:,} pixels; at most {max_pixels:,} are allowed",
                width=width,
                height=height,
            )
    except BaseException:
        image.close()
        raise
    return image, name, mime_type


def load_checked(image: Image.Image, *, draft: tuple[str | None, tuple[int, int]] | None, broken: str) -> None:
    """Decode ``image`` (a JPEG through DCT scaling to ``draft``'s mode and smallest covering size,
    which still reads every entropy-coded byte): a decoder failure is ``MediaUndecodable`` saying
    ``broken``, a bomb ``MediaTooManyPixels``."""
    try:
        if draft is not None and image.format == "JPEG":
            image.draft(*draft)
        image.load()
    except Image.DecompressionBombError as exc:
        raise MediaTooManyPixels(str(exc)) from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the file is broken
        raise MediaUndecodable(f"{broken}: {exc}") from exc


def probe(path: Path, *, max_pixels: int) -> ImageInfo:
    """Identify, size-check and fully decode the image at ``path``; report its metadata."""
    image, name, mime_type = open_checked(path, max_pixels=max_pixels)
    with image:
        width, height = image.size
        load_checked(image, draft=(None, (1, 1)), broken=f"the {name.upper()} data is truncated or corrupt")
        photo_hash, photo_print = fingerprints_of(image, path, stored_size=(width, height))
        return ImageInfo(
            format=name, mime_type=mime_type, width=width, height=height, dhash=photo_hash,
            thumbprint=photo_print, **exif_fields(image),
        )


def fingerprints_of(image: Image.Image, path: Path, *, stored_size: tuple[int, int]) -> tuple[int | None, bytes | None]:
    """dHash and thumbprint of the decoded image. A small JPEG drafted at 1/8 scale is decoded
    again at the scale that keeps 64 px per side (cheap: it is small), so both see real pixels."""
    try:
        if image.format == "JPEG" and min(image.size) < MIN_SOURCE_PX and min(image.size) < min(stored_size):
            with open_image(path) as again:
                again.draft("L", (MIN_SOURCE_PX, MIN_SOURCE_PX))
                again.load()
                return dhash_image(again, draft=False), thumbprint(again)
        return dhash_image(image, draft=False), thumbprint(image)
    except Exception:  # noqa: BLE001 - a photo without fingerprints is still a photo
        return None, None


def exif_fields(image: Image.Image) -> dict[str, Any]:
    """orientation, taken_at, lat, lon, make, model from the image's EXIF, best effort."""
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - malformed EXIF is no reason to reject a photo
        return {}
    fields: dict[str, Any] = {}
    orientation = exif.get(_ORIENTATION)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        fields["orientation"] = orientation
    fields["make"] = _text(exif.get(_MAKE))
    fields["model"] = _text(exif.get(_MODEL))
    try:
        details = exif.get_ifd(_EXIF_IFD)
        fields["taken_at"] = _taken_at(
            details.get(_DATETIME_ORIGINAL), details.get(_OFFSET_TIME_ORIGINAL), details.get(_SUBSEC_TIME_ORIGINAL)
        )
    except Exception:  # noqa: BLE001
        fields["taken_at"] = None
    try:
        fields["lat"], fields["lon"] = _position(exif.get_ifd(_GPS_IFD))
    except Exception:  # noqa: BLE001
        fields["lat"] = fields["lon"] = None
    return fields


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = _CONTROL.sub("", value).strip()
    return cleaned[:64] or None


def _taken_at(value: object, offset: object, subsec: object) -> dt.datetime | None:
    text = _text(value)
    match = _DATETIME.match(text or "")
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        taken = dt.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    digits = re.match(r"\d+", _text(subsec) or "")
    if digits:
        taken = taken.replace(microsecond=int(digits.group()[:6].ljust(6, "0")))
    zone = _OFFSET.fullmatch(_text(offset) or "")
    if zone:
        sign, hours, minutes = zone.groups()
        delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
        if delta <= dt.timedelta(hours=14) and int(minutes) < 60:
            taken = taken.replace(tzinfo=dt.timezone(-delta if sign == "-" else delta))
    return taken


def _degrees(value: object) -> float | None:
    if value is None:
        return None
    parts = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    total = 0.0
    for part, unit in zip(parts, (1.0, 60.0, 3600.0), strict=False):
        number = float(part)
        if not math.isfinite(number) or number < 0:
            return None
        total += number / unit
    return total


def _position(gps: dict[int, Any]) -> tuple[float | None, float | None]:
    if not gps or _text(gps.get(_GPS_STATUS)) == "V":
        return None, None
    lat = _degrees(gps.get(_GPS_LATITUDE))
    lon = _degrees(gps.get(_GPS_LONGITUDE))
    lat_ref = (_text(gps.get(_GPS_LATITUDE_REF)) or "").upper()
    lon_ref = (_text(gps.get(_GPS_LONGITUDE_REF)) or "").upper()
    if lat is None or lon is None or lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        return None, None
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if abs(lat) > 90 or abs(lon) > 180:
        return None, None
    return round(lat, 7), round(lon, 7)
