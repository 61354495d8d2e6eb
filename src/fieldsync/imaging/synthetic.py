"""Synthetic field photos for the demo: small real JPEGs with a scene and camera EXIF.

Each seed gives its own scene (sky, ground, buildings, a pipe or a river, a few objects), so no
two demo reports share a photo and previews look like something. EXIF carries what a phone
writes: make and model, ``DateTimeOriginal`` with ``OffsetTimeOriginal`` and a GPS position,
so the report's evidence checks (distance, time gap) have real input.
"""

from __future__ import annotations

import datetime as dt
import io
import random

from PIL import Image, ImageDraw, ImageOps

_PALETTES = {
    # scene kind → (sky, ground) base colours
    "site": ((168, 196, 226), (122, 112, 96)),
    "flood": ((120, 130, 140), (96, 110, 104)),
    "fire": ((214, 150, 96), (70, 62, 48)),
    "snow": ((200, 210, 222), (236, 238, 242)),
    "field": ((150, 190, 235), (96, 140, 70)),
}


def _jitter(colour: tuple[int, int, int], rng: random.Random, spread: int = 24) -> tuple[int, int, int]:
    r, g, b = (max(0, min(255, c + rng.randrange(-spread, spread + 1))) for c in colour)
    return r, g, b


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    return float(degrees), float(minutes), round((minutes_full - minutes) * 60, 4)


def field_photo(
    seed: int,
    *,
    scene: str = "site",
    width: int = 480,
    height: int = 360,
    taken_at: dt.datetime | None = None,
    lat: float | None = None,
    lon: float | None = None,
    make: str = "HUAWEI",
    model: str = "Mate 60",
) -> bytes:
    """A JPEG of a made-up scene; ``taken_at`` must be timezone-aware."""
    rng = random.Random(seed)
    sky, ground = _PALETTES.get(scene, _PALETTES["site"])
    image = Image.new("RGB", (width, height), _jitter(ground, rng, 10))
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.3, 0.55))
    top = _jitter(sky, rng)
    gradient = Image.linear_gradient("L").resize((width, horizon))  # a sky brightening to the horizon
    image.paste(ImageOps.colorize(gradient, top, tuple(min(255, c + 40) for c in top)), (0, 0))
    for _ in range(rng.randrange(3, 8)):  # buildings, sheds, tanks
        w, h = rng.randrange(width // 14, width // 4), rng.randrange(height // 10, height // 2)
        x = rng.randrange(0, width - w)
        base = horizon + rng.randrange(0, height // 10)
        draw.rectangle((x, base - h, x + w, base), fill=_jitter((150, 140, 130), rng, 60))
        for wx in range(x + 4, x + w - 6, 12):  # windows
            draw.rectangle((wx, base - h + 6, wx + 5, base - h + 12), fill=(60, 70, 80))
    if scene == "flood":
        draw.rectangle((0, int(height * 0.7), width, height), fill=_jitter((110, 100, 70), rng))
    elif scene == "fire":
        for _ in range(6):
            cx, cy = rng.randrange(width), rng.randrange(horizon - 20, horizon + 40)
            draw.ellipse((cx - 30, cy - 60, cx + 30, cy), fill=_jitter((90, 90, 90), rng, 30))
    draw.line((0, rng.randrange(horizon, height), width, rng.randrange(horizon, height)),
              fill=(40, 40, 40), width=max(2, width // 80))
    for _ in range(rng.randrange(3, 7)):  # equipment, debris, people
        r = rng.randrange(width // 40, width // 12)
        cx, cy = rng.randrange(r, width - r), rng.randrange(horizon, height - r)
        draw.ellipse((cx - r, cy - r // 2, cx + r, cy + r // 2), fill=_jitter((128, 96, 64), rng, 100))
    # Sensor noise, so the JPEG is not suspiciously small; seeded, so a seed is always the same photo.
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    image = Image.blend(image, noise, 0.08)

    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    if taken_at is not None:
        offset = taken_at.strftime("%z")
        photo_ifd = exif.get_ifd(0x8769)
        photo_ifd[0x9003] = taken_at.strftime("%Y:%m:%d %H:%M:%S")
        photo_ifd[0x9011] = f"{offset[:3]}:{offset[3:]}"
    if lat is not None and lon is not None:
        gps = exif.get_ifd(0x8825)
        gps[1] = "N" if lat >= 0 else "S"
        gps[2] = _dms(abs(lat))
        gps[3] = "E" if lon >= 0 else "W"
        gps[4] = _dms(abs(lon))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=82, exif=exif.tobytes())
    return out.getvalue()
