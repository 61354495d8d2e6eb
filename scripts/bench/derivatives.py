"""Time ``render_derivatives`` (and ``probe``) on a synthetic 12 MP JPEG, with and without draft.

    .venv/bin/python scripts/bench/derivatives.py [--runs 9] [--size 4000x3000] [--quality 90]

The photo is generated (gradient, fractal, soft noise: about 2–3 MB at q90, like a phone photo),
written to a temporary directory, and each variant runs ``--runs`` times after one warm-up run,
single-threaded. Prints the median and the spread in ms per photo. Nothing is asserted: this is
a measurement for docs/BENCHMARKS.md, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageFilter, features

from fieldsync.imaging import probe, render_derivatives


def synthetic_photo(width: int, height: int) -> Image.Image:
    gradient = Image.linear_gradient("L").resize((width, height))
    fractal = Image.effect_mandelbrot((width, height), (-2.2, -1.4, 1.0, 1.4), 96)
    noise = Image.effect_noise((width, height), 48).filter(ImageFilter.GaussianBlur(0.7))
    return Image.merge("RGB", (gradient, fractal, noise))


def timed(runs: int, work: Callable[[], object]) -> list[float]:
    work()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="fieldsync-bench-") as directory:
        path = Path(directory) / "photo.jpg"
        synthetic_photo(width, height).save(path, "JPEG", quality=args.quality)
        print(
            f"{width}x{height} JPEG q{args.quality}, {path.stat().st_size / 1e6:.1f} MB; "
            f"libjpeg {features.version('jpg')}, {args.runs} runs each, median (min–max) ms per photo"
        )
        variants: list[tuple[str, Callable[[], object]]] = [
            ("probe (identify, size check, 1/8-scale full decode, EXIF)", lambda: probe(path, max_pixels=64_000_000)),
            ("render_derivatives with draft (default)", lambda: render_derivatives(path)),
            ("render_derivatives without draft", lambda: render_derivatives(path, draft=False)),
        ]
        medians = {}
        for label, work in variants:
            samples = timed(args.runs, work)
            medians[label] = statistics.median(samples)
            print(f"  {label:<58} {medians[label]:7.1f}  ({min(samples):.1f}–{max(samples):.1f})")
        with_draft, without = medians[variants[1][0]], medians[variants[2][0]]
        print(f"  draft speed-up: {without / with_draft:.2f}x; {1000 / with_draft:.1f} photos/s per core with draft")


if __name__ == "__main__":
    main()
