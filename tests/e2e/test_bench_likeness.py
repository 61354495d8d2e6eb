"""``scripts/bench/likeness.py`` keeps working: every shape timed, on this code and on the
baseline it is given. The numbers are docs/BENCHMARKS.md's business."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_likeness_benchmark_times_each_shape_on_both_builds(tmp_path: Path) -> None:
    baseline = tmp_path / "base" / "src"
    shutil.copytree(ROOT / "src", baseline, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench" / "likeness.py"), "--runs", "1",
                             "--baseline-src", str(baseline)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    heading, *lines = result.stdout.splitlines()
    assert f"this code: {ROOT / 'src'}" in heading and f"baseline: {baseline}" in heading, heading
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines
            if line.startswith("| ") and not line.startswith("| shape")]
    assert len(rows) == 4
    for name, ours, theirs, ratio in rows:
        assert float(ours) > 0 and float(theirs) > 0, name
        # both times are printed rounded to 0.01 ms, the ratio to 0.1: agree within that rounding
        assert float(ratio.removesuffix("×")) == pytest.approx(float(theirs) / float(ours), rel=0.15, abs=0.06), name
