"""Export memory benchmark: does ``GET /v1/export`` of 100k reports stream in constant memory?

    .venv/bin/python scripts/bench/export_memory.py [--reports 100000] [--keep]

What it does (loopback only, stops by itself):

1. Creates a fresh data directory under /tmp and starts ``fieldsync serve`` there with no database
   URL (embedded PostgreSQL, ``FIELDSYNC_LOG_LEVEL=warning``) on a free 127.0.0.1 port, using the
   source tree this script belongs to.
2. Adds an admin (``fieldsync user add --token``, whose last stdout line is the bearer token) and
   an inspector who authors the reports, both through the CLI against the same data directory.
3. Loads ``--reports`` reports set-based: one ``INSERT … SELECT … FROM generate_series`` over the
   embedded cluster's unix socket (joined with ``fieldsync.db.embedded``, the CLI-free path),
   hazards / disasters / accidents across the 12 counties of 长治市, Chinese titles and
   descriptions with commas and quotes (no line breaks, so CSV rows can be counted by CRLF),
   workflow states, losses, and a photo reference missing for one report in ten. Then ANALYZE.
4. Warms the server up (a list page and a 10-report export), takes the baseline RSS, then streams
   the whole export four times while a thread samples the server's ``VmRSS`` from
   ``/proc/<pid>/status`` every 10 ms: CSV with ``Accept-Encoding: gzip`` (what a browser sends;
   the server compresses on the fly), CSV uncompressed, GeoJSON (gzip), and CSV by a client that
   stops reading for 5 s after the first chunk (the server must wait for the socket rather than
   buffer the rest). Each run reports baseline, peak, growth (peak − baseline), rows, bytes,
   seconds and rows/s, and checks the row count against the database.
5. Stops the server with SIGINT; removes the data directory unless ``--keep``.

The target (issue 5): growth ≤ 50 MB for the 100k-report export. The client runs in this process
on the same machine as the server and PostgreSQL, so rows/s is "with the client on the same box".
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SRC = REPO / "src"
sys.path.insert(0, str(SRC))

from server import Server  # noqa: E402 - scripts/bench is sys.path[0]

from fieldsync.db import embedded  # noqa: E402

HOST = "127.0.0.1"
MB = 1_000_000
TARGET_GROWTH_MB = 50
COUNTIES = ["140403", "140404", "140405", "140406", "140423", "140425",
            "140426", "140427", "140428", "140429", "140430", "140431"]

LOAD_SQL = """
INSERT INTO reports (id, kind, category, title, description, jurisdiction, lat, lon, accuracy_m, observed_at,
                     severity, grade, credit_code, incident_id, stage, body, content_hash, author_id,
                     received_at, updated_at, version, status, verified_at, rectification,
                     rectification_deadline, listed_level, listed_deadline)
SELECT g.id, g.kind, g.category, g.title, g.description, g.jurisdiction, g.lat, g.lon, g.accuracy_m, g.observed_at,
       NULL, g.grade, g.credit_code, g.incident_id, g.stage,
       jsonb_strip_nulls(jsonb_build_object(
           'kind', g.kind, 'category', g.category, 'title', g.title, 'description', g.description,
           'jurisdiction', g.jurisdiction,
           'location', jsonb_build_object('lat', g.lat, 'lon', g.lon, 'accuracy_m', g.accuracy_m,
                                          'address', '长治市某路 ' || (g.i % 900 + 1) || ' 号'),
           'observed_at', to_char(g.observed_at AT TIME ZONE 'UTC' + interval '8 hours',
                                  'YYYY-MM-DD"T"HH24:MI:SS"+08:00"'),
           'media', '[]'::jsonb,
           'grade', g.grade,
           'enterprise', CASE WHEN g.kind <> 'disaster' THEN jsonb_build_object(
               'name', '长治市某' || (ARRAY['煤业','化工','建设','运输','钢铁'])[1 + g.i % 5]
                       || '有限公司' || (g.i % 5000),
               'credit_code', '91350100M000100Y43', 'industry', g.category) END,
           'incident_id', g.incident_id, 'stage', g.stage,
           'as_of', CASE WHEN g.kind = 'disaster' THEN to_char(g.observed_at AT TIME ZONE 'UTC' + interval '8 hours',
                                                          'YYYY-MM-DD"T"HH24:MI:SS"+08:00"') END,
           'losses', CASE WHEN g.kind = 'disaster' THEN jsonb_build_object(
               'deaths', g.i % 3, 'affected_people', g.i % 2000, 'evacuated_people', g.i % 300,
               'houses_damaged', g.i % 40, 'crop_area_ha', (g.i % 1000) / 10.0,
               'direct_loss_cny', (g.i % 100000) * 12.5) END,
           'deaths', CASE WHEN g.kind = 'accident' THEN g.i % 2 END,
           'injured', CASE WHEN g.kind = 'accident' THEN g.i % 4 END,
           'direct_loss_cny', CASE WHEN g.kind = 'accident' THEN (g.i % 5000) * 100.0 END
       )),
       sha256(g.id::text::bytea), $2::uuid, g.observed_at + interval '1 hour', g.updated_at,
       CASE WHEN g.status = 'submitted' THEN 1 ELSE 3 END, g.status,
       CASE WHEN g.status <> 'submitted' THEN g.observed_at + interval '1 day' END,
       CASE WHEN g.status IN ('rectifying', 'rectified', 'closed') THEN jsonb_build_object(
           'responsible_person', '张' || (g.i % 100), 'measures', '停产整顿, 更换设备', 'funds_cny', 50000,
           'deadline', to_char(g.deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           'contingency_plan', '人员撤离') END,
       CASE WHEN g.status IN ('rectifying', 'rectified', 'closed') THEN g.deadline END,
       CASE WHEN g.grade = 'major' AND g.status <> 'submitted' THEN '140400' END,
       CASE WHEN g.grade = 'major' AND g.status <> 'submitted' THEN g.deadline + interval '10 days' END
FROM (
    SELECT s.i, gen_random_uuid() AS id, k.kind,
           CASE k.kind
               WHEN 'hazard' THEN (ARRAY['coal_mine','metal_nonmetal_mine','tailings_pond','hazardous_chemicals',
                   'fireworks','metallurgy','industry_trade','fire_safety','gas','construction','road_transport',
                   'other'])[1 + s.i % 12]
               WHEN 'disaster' THEN (ARRAY['flood','drought','wind_hail','landslide','debris_flow',
                   'forest_grassland_fire','earthquake','snow'])[1 + s.i % 8]
               ELSE (ARRAY['object_strike','vehicle_injury','machinery_injury','electric_shock','fire',
                   'fall_from_height','collapse','gas_explosion'])[1 + s.i % 8]
           END AS category,
           (ARRAY['主斜井皮带机保护装置失效','瓦斯监测探头失灵','尾矿库排洪设施堵塞','危化品仓库通风不良',
                  '燃气管道腐蚀泄漏','消防通道被占用','脚手架连墙件缺失','客运车辆超员','沁河水位上涨 村道被淹',
                  '山体滑坡阻断道路'])[1 + s.i % 10] || ' 第' || s.i || '号' AS title,
           (ARRAY['现场检查发现, 设备"带病"运行, 已责令停用','隐患位于井下 -350 水平, 需立即整改',
                  '值班人员未按规定巡查, 记录缺失','企业已制定整改方案, 待复查',
                  '受灾群众已转移安置, 房屋部分损坏'])[1 + s.i % 5]
             || ', 编号 ' || s.i AS description,
           ($3::text[])[1 + s.i % 12] AS jurisdiction,
           36.0 + random() * 1.2 AS lat, 112.3 + random() * 1.2 AS lon, 5 + random() * 30 AS accuracy_m,
           timestamptz '2026-01-01 00:00:00+00' + (s.i % 150) * interval '1 day' + random() * interval '1 day'
               AS observed_at,
           timestamptz '2026-06-01 00:00:00+00' - s.i * interval '1 second' AS updated_at,
           CASE WHEN k.kind = 'hazard' THEN CASE WHEN s.i % 10 = 0 THEN 'major' ELSE 'general' END END AS grade,
           CASE WHEN k.kind <> 'disaster' THEN '91350100M000100Y43' END AS credit_code,
           CASE WHEN k.kind = 'disaster' THEN gen_random_uuid() END AS incident_id,
           CASE WHEN k.kind = 'disaster' THEN 'initial' END AS stage,
           CASE WHEN k.kind = 'hazard' THEN (ARRAY['submitted','submitted','verified','rectifying','rectifying',
                    'rectified','closed','closed'])[1 + s.i % 8]
                ELSE (ARRAY['submitted','verified'])[1 + s.i % 2] END AS status,
           timestamptz '2026-05-01 00:00:00+00' + (s.i % 60) * interval '1 day' AS deadline
    FROM generate_series(1, $1::int) AS s(i)
    CROSS JOIN LATERAL (SELECT (ARRAY['hazard','hazard','hazard','disaster','accident'])[1 + s.i % 5] AS kind) k
) AS g
"""

MEDIA_SQL = """
INSERT INTO report_media (report_id, position, sha256, role, attached_by)
SELECT r.id, p.position, encode(sha256((r.id::text || p.position)::bytea), 'hex'), 'photo', r.author_id
FROM (SELECT id, author_id FROM reports ORDER BY id LIMIT $1) r CROSS JOIN generate_series(0, 1) AS p(position)
"""


def vm_rss(pid: int) -> int:
    """The process's resident set size in bytes, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Sampler(threading.Thread):
    """Samples a process's VmRSS every ``interval_s`` until stopped; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.peak = vm_rss(pid)
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.peak = max(self.peak, vm_rss(self.pid))
            self.samples += 1
            time.sleep(self.interval_s)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


async def load(data_dir: Path, *, reports: int, author: str) -> float:
    """Insert ``reports`` reports set-based over the embedded cluster's unix socket; seconds taken."""
    cluster = embedded.start(data_dir)
    try:
        conn = await asyncpg.connect(cluster.dsn)
        try:
            started = time.perf_counter()
            author_id = await conn.fetchval("SELECT id FROM users WHERE username = $1", author)
            await conn.execute("SELECT setseed(0.42)")
            await conn.execute(LOAD_SQL, reports, author_id, COUNTIES)
            await conn.execute(MEDIA_SQL, reports // 10)
            await conn.execute("ANALYZE reports; ANALYZE report_media")
            return time.perf_counter() - started
        finally:
            await conn.close()
    finally:
        cluster.stop()


class Run:
    def __init__(self, name: str, *, baseline: int, peak: int, rows: int, wire_bytes: int, body_bytes: int,
                 seconds: float, samples: int) -> None:
        self.name, self.baseline, self.peak, self.rows = name, baseline, peak, rows
        self.wire_bytes, self.body_bytes, self.seconds, self.samples = wire_bytes, body_bytes, seconds, samples

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def row(self) -> str:
        return (f"| {self.name} | {self.baseline / MB:.1f} | {self.peak / MB:.1f} | {self.growth / MB:.1f} | "
                f"{self.rows:,} | {self.body_bytes / MB:.1f} | {self.wire_bytes / MB:.1f} | {self.seconds:.1f} | "
                f"{self.rows / self.seconds:,.0f} |")


def stream(server: Server, token: str, name: str, *, fmt: str, gzip: bool, stall_s: float = 0.0) -> Run:
    pid = server.process.pid  # type: ignore[union-attr]
    baseline = vm_rss(pid)
    sampler = Sampler(pid)
    sampler.start()
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip" if gzip else "identity"}
    rows = body_bytes = 0
    marker = b"\r\n" if fmt == "csv" else b'{"type":"Feature"'
    started = time.perf_counter()
    tail = b""
    with httpx.Client(timeout=600) as client, client.stream(
        "GET", f"{server.base_url}/v1/export", params={"format": fmt}, headers=headers
    ) as response:
        response.raise_for_status()
        first = True
        for chunk in response.iter_bytes():
            body_bytes += len(chunk)
            joined = tail + chunk  # a marker may straddle two chunks
            rows += joined.count(marker) - tail.count(marker)
            tail = joined[-(len(marker) - 1):]
            if first and stall_s:
                time.sleep(stall_s)  # the server must block on the socket, not buffer the rest
            first = False
        wire_bytes = response.num_bytes_downloaded
    seconds = time.perf_counter() - started
    peak = sampler.stop()
    if fmt == "csv":
        rows -= 1  # the header row
    return Run(name, baseline=baseline, peak=peak, rows=rows, wire_bytes=wire_bytes, body_bytes=body_bytes,
               seconds=seconds, samples=sampler.samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the data directory (and print its path)")
    args = parser.parse_args(argv)

    import asyncio

    root = Path(tempfile.mkdtemp(prefix="fieldsync-bench-export-", dir="/tmp"))
    data_dir = root / "data"
    data_dir.mkdir()
    server = Server(data_dir)
    runs: list[Run] = []
    try:
        server.start()
        token = server.cli("user", "add", "bench-admin", "--role", "admin", "--jurisdiction", "140000",
                           "--token").strip().splitlines()[-1]
        server.cli("user", "add", "bench-inspector", "--role", "inspector", "--jurisdiction", "140400", "--token")
        load_s = asyncio.run(load(data_dir, reports=args.reports, author="bench-inspector"))
        print(f"loaded {args.reports:,} reports in {load_s:.1f} s", flush=True)

        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=60) as client:
            assert client.get("/v1/reports", params={"limit": 100}).status_code == 200
            assert client.get("/v1/export", params={"q": "第1号"}).status_code == 200
            assert client.get("/v1/export", params={"q": "第1号", "format": "geojson"}).status_code == 200
        time.sleep(1)

        runs.append(stream(server, token, "CSV, gzip", fmt="csv", gzip=True))
        runs.append(stream(server, token, "CSV, identity", fmt="csv", gzip=False))
        runs.append(stream(server, token, "GeoJSON, gzip", fmt="geojson", gzip=True))
        runs.append(stream(server, token, "CSV, client stalls 5 s", fmt="csv", gzip=False, stall_s=5.0))
    finally:
        shutdown = server.stop()
        print(f"server stopped: {shutdown}", file=sys.stderr)
        if args.keep:
            print(f"data kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    header = ("| run | baseline RSS (MB) | peak RSS (MB) | growth (MB) | rows | body (MB) | on the wire (MB) | "
              "seconds | rows/s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print()
    load1, load5, _ = os.getloadavg()
    print(f"{args.reports:,} reports; {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {load1:.1f} / {load5:.1f} (1 / 5 min) at the end")
    print(header)
    for run in runs:
        print(run.row())
    ok = all(run.rows == args.reports for run in runs)
    worst = max(run.growth for run in runs) / MB
    verdict = "PASS" if worst <= TARGET_GROWTH_MB else "FAIL"
    print(f"\nrow counts {'match' if ok else 'DO NOT match'} the {args.reports:,} loaded reports; "
          f"worst growth {worst:.1f} MB (target ≤ {TARGET_GROWTH_MB} MB): {verdict}")
    return 0 if ok and worst <= TARGET_GROWTH_MB else 1


if __name__ == "__main__":
    sys.exit(main())
