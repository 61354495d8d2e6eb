"""The tree passes ruff (pyflakes errors, import order, syntax, mutable defaults): an unused import
or an undefined name is a defect the test suite should catch, not a reviewer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is part of the test extras; reinstall with pip install -e '.[test]'"
    result = subprocess.run(
        [ruff, "check", "--no-cache", "src", "tests", "scripts"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
