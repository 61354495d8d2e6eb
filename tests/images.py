"""Real images made on the fly with Pillow, for upload tests."""

from __future__ import annotations

import hashlib
import io
import random

from PIL import Image


def jpeg(
    width: int = 640,
    height: int = 480,
    *,
    seed: int = 1,
    quality: int = 85,
    gps: tuple[float, float] | None = None,
    taken_at: str | None = "2026:06:01 15:20:00",
    make: str = "HUAWEI",
    model: str = "P60",
    orientation: int | None = None,
) -> bytes:
    """A noisy JPEG (so it does not compress to nothing) with EXIF date, camera and optional GPS."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    pixels = image.load()
    for _ in range(width * height // 50):
        pixels[rng.randrange(width), rng.randrange(height)] = (rng.randrange(256), rng.randrange(256), 0)
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    if orientation is not None:
        exif[0x0112] = orientation
    if taken_at is not None:
        exif.get_ifd(0x8769)[0x9003] = taken_at
    if gps is not None:
        lat, lon = gps
        gps_ifd = exif.get_ifd(0x8825)
        gps_ifd[1] = "N" if lat >= 0 else "S"
        gps_ifd[2] = _dms(abs(lat))
        gps_ifd[3] = "E" if lon >= 0 else "W"
        gps_ifd[4] = _dms(abs(lon))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes_full = (value - degrees) * 60
    minutes = int(minutes_full)
    return (float(degrees), float(minutes), round((minutes_full - minutes) * 60, 4))


def png(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scene(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    """A synthetic photo with real structure (sky, ground, buildings, a pipe, a tank), not noise:
    the same seed is the same scene, so a perceptual hash has something to recognise."""
    from PIL import ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.3, 0.6))
    sky = (rng.randrange(120, 220), rng.randrange(150, 230), rng.randrange(200, 255))
    ground = (rng.randrange(60, 140), rng.randrange(60, 120), rng.randrange(30, 90))
    draw.rectangle((0, 0, width, horizon), fill=sky)
    draw.rectangle((0, horizon, width, height), fill=ground)
    for _ in range(rng.randrange(4, 9)):
        w, h = rng.randrange(width // 12, width // 4), rng.randrange(height // 10, height // 2)
        x = rng.randrange(0, width - w)
        colour = tuple(rng.randrange(20, 235) for _ in range(3))
        draw.rectangle((x, horizon - h, x + w, horizon + rng.randrange(0, height // 8)), fill=colour)
    for _ in range(rng.randrange(2, 5)):
        r = rng.randrange(width // 16, width // 6)
        cx, cy = rng.randrange(r, width - r), rng.randrange(horizon, height)
        draw.ellipse((cx - r, cy - r // 2, cx + r, cy + r // 2), fill=tuple(rng.randrange(0, 255) for _ in range(3)))
    draw.line((0, rng.randrange(height), width, rng.randrange(height)), fill=(30, 30, 30), width=max(2, width // 60))
    return image


def encode(image: Image.Image, *, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def rephotographed(image: Image.Image, *, seed: int = 0) -> Image.Image:
    """The same scene taken again: shifted by a few percent, turned slightly, another size."""
    rng = random.Random(seed)
    w, h = image.size
    turned = image.rotate(rng.uniform(-2.5, 2.5), resample=Image.Resampling.BILINEAR, expand=False, fillcolor=(128, 128, 128))
    dx, dy = int(w * rng.uniform(0, 0.04)), int(h * rng.uniform(0, 0.04))
    cropped = turned.crop((dx, dy, w - int(w * rng.uniform(0, 0.04)), h - int(h * rng.uniform(0, 0.04))))
    scale = rng.uniform(0.6, 1.4)
    return cropped.resize((max(32, int(cropped.width * scale)), max(32, int(cropped.height * scale))))


def noise_png(width: int, height: int, *, seed: int = 1) -> bytes:
    """A PNG of random pixels: about ``width * height * 3`` bytes that no compressor shrinks (for
    uploads that must span several S3 parts)."""
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG", compress_level=1)
    return out.getvalue()
