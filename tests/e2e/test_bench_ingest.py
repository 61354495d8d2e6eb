"""``scripts/bench/ingest.py`` (issue 12's benchmark) keeps working: a few quick phases against a
real ``fieldsync serve`` on its embedded PostgreSQL. The numbers themselves are docs/BENCHMARKS.md's
business; this checks that every phase is measured and reported (with the server in two processes,
whose CPU is counted), and that nothing is left running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PHASES = {("metadata", "one firm", "8"): 120, ("photo", "distinct", "1"): 40, ("push", "distinct", "1"): 2000,
          ("push", "distinct", "4"): 4000}


def test_the_ingest_benchmark_measures_each_phase_and_stops_its_server(tmp_path: Path) -> None:
    table = tmp_path / "ingest.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench" / "ingest.py"), "--quick", "--markdown", str(table),
         "--only", "metadata:one_firm:8", "--only", "photo:distinct:1", "--only", "push",
         "--pg-set", "wal_writer_delay=200ms", "--processes", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no postgres process left" in result.stdout, result.stdout[-2000:]
    text = table.read_text()
    assert ("--quick --only metadata:one_firm:8 --only photo:distinct:1 --only push --pg-set wal_writer_delay=200ms"
            " --processes 2") in text
    check = re.search(r"Machine check \(.*\): start (\d+)/(\d+); end (\d+)/(\d+)\.", text)
    assert check is not None and all(int(ms) > 0 for ms in check.groups()), text[:600]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| workload")]
    assert {(kind, shape, c): int(n) for kind, shape, c, n, *_ in rows} == PHASES
    for kind, shape, c, n, answered, sustained, p50, server_ms, pg_ms, total_ms, drain, maintenance, check in rows:
        assert all(float(ms) > 0 for ms in check.split("/")), (kind, shape, check)
        assert float(server_ms) > 0 and float(pg_ms) > 0, (kind, shape)
        assert abs(float(server_ms) + float(pg_ms) - float(total_ms)) <= 0.011, (kind, shape)
        assert float(answered.removesuffix("/s").replace(",", "")) >= float(sustained.removesuffix("/s").replace(",", ""))
        assert maintenance, (kind, shape)
    [photo] = [row for row in rows if row[0] == "photo"]
    assert float(photo[7]) > 1.0, photo  # the workers' image work is counted, not only their supervisor's


def test_the_ingest_benchmark_refuses_a_setting_it_could_not_quote() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench" / "ingest.py"), "--pg-set", "wal_writer_delay='1s'; DROP"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 2 and "not NAME=VALUE" in result.stderr, result.stderr
