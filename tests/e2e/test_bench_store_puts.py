"""``scripts/bench/store_puts.py`` keeps working: each row measured and reported, nothing left in
/tmp. The numbers are docs/BENCHMARKS.md's business."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROWS = ["spool write and remove (floor)", "puts, fresh store", "puts, established store",
        "the original alone, established store"]


def test_the_store_benchmark_measures_each_row_and_cleans_up(tmp_path: Path) -> None:
    before = set(Path("/tmp").glob("fieldsync-bench-store-*"))
    table = tmp_path / "store.md"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench" / "store_puts.py"), "--count", "20",
                             "--markdown", str(table)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    text = table.read_text()
    assert "`.venv/bin/python scripts/bench/store_puts.py --count 20`" in text
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| what")]
    assert [row[0] for row in rows] == ROWS
    for name, user_ms, system_ms, cpu_ms, wall_ms in rows:
        assert float(cpu_ms) > 0 and float(wall_ms) > 0, name
        assert abs(float(user_ms) + float(system_ms) - float(cpu_ms)) <= 0.011, name
    assert set(Path("/tmp").glob("fieldsync-bench-store-*")) == before
