"""``scripts/eval_dedupe`` keeps working and keeps its quality: a small labelled set (1,000
reports, 100 true pairs, a seed the weights were not fitted on) through the real ingest.
The full-size numbers in docs/DEDUPE.md come from the same script at its defaults."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_evaluation_runs_and_meets_its_targets_on_a_small_set(pg_server_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval_dedupe"), "--events", "900", "--pairs", "100", "--big", "0",
         "--seed", "3"],
        env={**os.environ, "FIELDSYNC_DATABASE_URL": pg_server_url}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = re.search(r"precision (\d\.\d+)\s+recall (\d\.\d+)", result.stdout)
    assert found, result.stdout
    precision, recall = float(found[1]), float(found[2])
    assert precision >= 0.95 and recall >= 0.90, result.stdout
    assert "precision–recall curve" in result.stdout and "<- chosen" in result.stdout
