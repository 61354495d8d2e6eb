"""Time ``best_likeness`` (near-duplicate photo scoring) on the shapes detection meets.

    .venv/bin/python scripts/bench/likeness.py [--runs 15] [--baseline-src DIR]

Thumbprints are taken from ``tests/images.scene`` photos (distinct scenes, or re-sends of one
photo whose pixels are the same). With ``--baseline-src`` (another checkout's ``src``, e.g. from
``git archive <rev> src | tar -x -C /tmp/base``) each shape also runs on that code, in a
subprocess of this run, and the ratio is printed. Median ms per call, single thread. Nothing is
asserted: this is a measurement for docs/BENCHMARKS.md, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {  # name: (reports, candidates per report, photos alike)
    "one report, 23 candidates, distinct photos": (1, 23, False),
    "one report, 23 candidates, same pixels": (1, 23, True),
    "dense cell: 10 reports × 100 candidates, distinct": (10, 100, False),
    "bulk slice: 500 reports × 20 candidates, distinct": (500, 20, False),
}


def measure(runs: int) -> dict[str, float]:
    """Median ms per shape, and under "code" the file of the likeness module that ran."""
    sys.path.insert(0, str(ROOT))
    from fieldsync.imaging import likeness
    from fieldsync.imaging.likeness import best_likeness, thumbprint
    from tests import images

    prints = [thumbprint(images.scene(seed, width=320, height=240)) for seed in range(64)]
    results: dict[str, float | str] = {"code": likeness.__file__ or "?"}
    for name, (reports, candidates, alike) in SHAPES.items():
        pairs = [([prints[0 if alike else r % 64]], [prints[0 if alike else (r * 7 + c) % 61 + 1]])
                 for r in range(reports) for c in range(candidates)]
        best_likeness(pairs)
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            best_likeness(pairs)
            samples.append((time.perf_counter() - started) * 1000)
        results[name] = statistics.median(samples)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--baseline-src", type=Path)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a baseline subprocess's output
    args = parser.parse_args()
    current = measure(args.runs)
    if args.json:
        print(json.dumps(current))
        return 0
    baseline: dict[str, float | str] = {}
    if args.baseline_src:
        env = os.environ | {"PYTHONPATH": str(args.baseline_src.resolve())}
        out = subprocess.run([sys.executable, __file__, "--json", "--runs", str(args.runs)], env=env,
                             check=True, capture_output=True, text=True).stdout
        baseline = json.loads(out)
    print(f"best_likeness, median of {args.runs} runs, ms per call; this code: {current.pop('code')}"
          + (f"; baseline: {baseline.pop('code')}" if baseline else ""))
    print("| shape | this code | baseline | ratio |")
    print("|---|---|---|---|")
    for name, ms in current.items():
        base = baseline.get(name)
        assert isinstance(ms, float) and (base is None or isinstance(base, float))
        print(f"| {name} | {ms:.2f} | {f'{base:.2f}' if base else '—'} | {f'{base / ms:.1f}×' if base else '—'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
