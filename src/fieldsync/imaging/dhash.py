"""``dhash``: a 64-bit difference hash of a photo, for near-duplicate detection.

The image (orientation applied, greyscale) is area-averaged down to 9×8 cells; bit ``i`` says
whether a cell is brighter than its right-hand neighbour. Recompression, rescaling and colour
shifts barely move cell averages, and a crop or rotation of a few percent moves each cell by a
fraction of its width, so the same scene re-photographed lands within a few bits, while unrelated
photos differ in about half of them. ``docs/decisions/0007-dhash-on-pillow.md`` records why this
is our own twenty lines on Pillow rather than imagehash (+ numpy, scipy, PyWavelets), with the
measurements.

JPEGs decode through ``draft`` at 1/8 scale when that still leaves ≥ 64 px per side, so hashing a
12 MP photo costs a few milliseconds. Pure function on a file or bytes: run it in a worker thread.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps

_W, _H = 9, 8


def dhash_image(image: Image.Image, *, draft: bool = True) -> int:
    """The signed 64-bit dHash of an open image (signed so that it fits a PostgreSQL bigint);
    ``draft=False`` for an image already loaded (``probe`` hashes the image it decoded)."""
    if draft and image.format == "JPEG":
        image.draft("L", (64, 64))
    image = ImageOps.exif_transpose(image)
    grey = image.convert("L").resize((_W, _H), Image.Resampling.BOX)
    cells = grey.tobytes()
    value = 0
    for row in range(_H):
        base = row * _W
        for col in range(_W - 1):
            value = (value << 1) | (cells[base + col] > cells[base + col + 1])
    return value - (1 << 64) if value >= 1 << 63 else value


def dhash(path: Path) -> int:
    """The dHash of the image file at ``path`` (same errors as ``probe``)."""
    from fieldsync.imaging.probe import open_image

    with open_image(path) as image:
        return dhash_image(image)


def dhash_bytes(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as image:
        return dhash_image(image)


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()
