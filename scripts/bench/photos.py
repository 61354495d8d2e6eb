"""Large photos for upload benchmarks: random noise compresses badly, so a JPEG of it has a
predictable size and still decodes like a camera photo."""

from __future__ import annotations

import io
import os

from PIL import Image


def noisy_jpeg(target_bytes: int) -> tuple[bytes, tuple[int, int]]:
    """Random noise at q95 4:4:4 (about 2.4 bytes a pixel), sized to ``target_bytes`` within 3 %."""
    size = (3328, 2496)
    data = b""
    for _ in range(4):
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=95, subsampling=0)
        data = out.getvalue()
        if abs(len(data) - target_bytes) <= 0.03 * target_bytes:
            break
        scale = (target_bytes / len(data)) ** 0.5
        size = (int(size[0] * scale) // 16 * 16, int(size[1] * scale) // 16 * 16)
    return data, size
