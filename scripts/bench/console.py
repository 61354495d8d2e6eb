"""Server time of the console's pages on the 长治市 demo (issue 14's target: each page ≤ 150 ms).

    .venv/bin/python scripts/bench/console.py [--rounds 20] [--quick]

Loads ``fieldsync demo`` into a fresh data directory under /tmp, starts ``fieldsync serve`` there
with JSON request logs, signs in as the city supervisor (``changzhi.city``, who sees all 12
counties) and asks each page ``--rounds`` times after one warm-up. Server time is the
``duration_ms`` the server logs for each request (matched by ``X-Request-ID``); the client's wall
time over loopback is shown beside it. Prints a Markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.e2e.server import FIELDSYNC, environment, free_port, postgres_pids  # noqa: E402

PASSWORD = "changzhi-demo-2026"
TARGET_MS = 150.0


def _pages(client: httpx.Client) -> dict[str, str]:
    """One URL per page, picked from the demo's own data."""
    queue = client.get("/console/reports?kind=hazard&status=rectified").text
    report = re.search(r'href="(/console/reports/[0-9a-f-]{36})"', queue)
    disasters = client.get("/console/reports?kind=disaster").text
    first = re.search(r'href="(/console/reports/[0-9a-f-]{36})"', disasters)
    incident = re.search(r'href="(/console/incidents/[0-9a-f-]{36})"', client.get(first.group(1)).text) if first else None
    pages = {
        "queue (50 newest)": "/console/reports",
        "queue: overdue hazards of 沁源县": "/console/reports?kind=hazard&overdue=true&jurisdiction=140431",
        "report (rectified hazard, photos, timeline)": report.group(1) if report else "",
        "incident chain": incident.group(1) if incident else "",
        "map (every report)": "/console/map",
        "stats (per county, year before)": "/console/stats",
        "devices": "/console/devices",
    }
    return {name: url for name, url in pages.items() if url}


def _sign_in(client: httpx.Client) -> None:
    form = client.get("/console/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    answer = client.post("/console/login", data={"username": "changzhi.city", "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 303, answer.text


def _server_ms(log: Path) -> dict[str, float]:
    found = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"duration_ms"' in line:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            found[event.get("request_id", "")] = float(event["duration_ms"])
    return found


def measure(data_dir: Path, rounds: int) -> list[tuple[str, list[str], list[float]]]:
    port = free_port()
    log = data_dir / "serve.log"
    env = environment(data_dir, FIELDSYNC_LOG_LEVEL="info", FIELDSYNC_LOG_JSON="true")
    with log.open("w") as out:
        server = subprocess.Popen([*FIELDSYNC, "serve", "--port", str(port)], env=env, stdout=out, stderr=out)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Accept-Language": "zh-CN"})
        for _ in range(300):
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        _sign_in(client)
        results = []
        for name, url in _pages(client).items():
            client.get(url)  # warm-up
            ids, wall = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                response = client.get(url)
                wall.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (url, response.status_code)
                ids.append(response.headers["x-request-id"])
            results.append((name, ids, wall))
        time.sleep(0.5)  # let the last log lines reach the file
        return results
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    args = parser.parse_args()
    rounds = 5 if args.quick else args.rounds
    data_dir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-console-", dir="/tmp"))
    try:
        subprocess.run([*FIELDSYNC, "demo"], env=environment(data_dir), check=True, capture_output=True, timeout=300)
        results = measure(data_dir, rounds)
        server_ms = _server_ms(data_dir / "serve.log")
        print(f"| page | server ms median | server ms p95 | server ms max | client ms median | ≤ {TARGET_MS:.0f} ms |")
        print("|---|---|---|---|---|---|")
        worst = 0.0
        for name, ids, wall in results:
            times = sorted(server_ms[i] for i in ids if i in server_ms)
            p95 = times[max(0, round(0.95 * len(times)) - 1)]
            worst = max(worst, p95)
            print(f"| {name} | {statistics.median(times):.0f} | {p95:.0f} | {times[-1]:.0f} | "
                  f"{statistics.median(wall):.0f} | {'met' if p95 <= TARGET_MS else '**missed**'} |")
        print(f"\nrounds per page: {rounds} (after 1 warm-up); worst p95 {worst:.0f} ms; nproc {os.cpu_count()}; "
              f"load average {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return 0
    finally:
        for pid in postgres_pids(data_dir):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
