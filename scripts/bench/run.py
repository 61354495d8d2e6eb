"""fieldsync end-to-end benchmark: one run, a real ``fieldsync serve``, its ceilings side by side.

    .venv/bin/python scripts/bench/run.py [--quick] [--markdown PATH] [--keep]

What it does, in order (loopback only, every phase bounded in count or time, stops by itself):

0. Creates a fresh data directory under /tmp, starts ``fieldsync serve`` there with no database
   URL (embedded PostgreSQL) and ``FIELDSYNC_LOG_LEVEL=warning``, adds an admin with
   ``fieldsync user add --token`` against the same data directory, then creates one inspector
   per 长治市 county and enrolls up to 128 devices for them through the API (the simulated
   devices: each has its own device token and its own keep-alive connection).
1. For each concurrency 1, 8, 32, 128, back to back so the three see the same machine state:
   (b) ``GET /healthz`` on the same stack (HTTP ceiling); (a) ``PUT /v1/reports/{new uuid}``,
   each a distinct hazard report (own enterprise, place, time) referencing two photos, one
   device per connection; (b) a raw asyncpg loop in this process doing the same inserts
   (reports, report_versions, report_media; one transaction per report, a pool configured like
   the server's) against the same cluster (database ceiling).
2. (c) Photo upload: ``PUT /v1/media/{sha256}`` of distinct 12 MP JPEGs of a few MB, against a
   raw stream-hash-and-write-and-fsync of the same bytes in this process, at the same concurrency.
3. (d) Derivatives: ``render_derivatives`` on a 12 MP JPEG, with and without draft decoding,
   timed with the helpers of ``scripts/bench/derivatives.py``.
4. (e) Memory: 50 devices each upload a distinct ~20 MiB JPEG at once; the server's RSS
   (``/proc/<pid>/status`` VmRSS via psutil) is sampled every 20 ms from before the first byte
   until the last derivative job of those uploads is done.
5. Stops the server with SIGINT and checks that no postgres process is left for its data dir.

It measures the source tree it belongs to: the server and the CLI run with ``PYTHONPATH`` set to
this checkout's ``src`` (so a copy made with ``git archive`` measures that commit, whatever the
editable install points at).

The load generator (``loadgen.py``) runs in this process on the same 2 cores as the server and
PostgreSQL, so every rate here is "with the client on the same machine". Next to each rate the
report gives CPU time per request of the server and of PostgreSQL: on a shared machine those
move much less than the rates do. Between photo phases
the script waits until the server's derivative queue is empty, so one phase's background work
does not leak into the next. Output: a table on stdout and a Markdown report (``--markdown``)
for docs/BENCHMARKS.md. ``--quick`` shortens every phase (about a minute) and is meant to check
that the benchmark works, not to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import uvloop

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SRC = REPO / "src"
# Measure the source tree this script belongs to (the server gets the same PYTHONPATH), and use
# its tests.support for the canonical hazard report body.
sys.path[:0] = [str(SRC), str(REPO)]

from derivatives import synthetic_photo, timed  # noqa: E402 - scripts/bench is sys.path[0]
from loadgen import Connection, HTTPError, LoadResult, bearer, closed_loop  # noqa: E402
from photos import noisy_jpeg  # noqa: E402 - scripts/bench is sys.path[0]
from server import Server, free_port  # noqa: E402

from fieldsync.db import embedded  # noqa: E402
from fieldsync.db.pool import create_pool  # noqa: E402
from fieldsync.domain.reports import credit_code_check_char  # noqa: E402
from fieldsync.imaging import probe, render_derivatives  # noqa: E402
from tests.support import hazard_report  # noqa: E402

HOST = "127.0.0.1"
FIELDSYNC = Path(sys.executable).with_name("fieldsync")  # the console script of this venv
COUNTIES = ("140403", "140404", "140405", "140406", "140423", "140425",
            "140426", "140427", "140428", "140429", "140430", "140431")
MiB = 1024 * 1024

TARGET_INGEST = 0.50
TARGET_UPLOAD = 0.60
TARGET_RSS_MB = 150
TARGET_DERIVATIVE_MS = 150


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    levels: tuple[int, ...] = (1, 8, 32, 128)
    http_warmup_s: float = 1.0
    http_s: float = 5.0
    put_warmup_s: float = 2.0
    put_s: float = 8.0
    db_warmup_s: float = 1.0
    db_s: float = 6.0
    photos: int = 40
    upload_levels: tuple[int, ...] = (1, 4)
    big_clients: int = 50
    big_bytes: int = 20 * MiB
    derivative_runs: int = 9
    drain_timeout_s: float = 120.0


FULL = Plan("full")
QUICK = Plan(
    "quick", http_warmup_s=0.5, http_s=1.5, put_warmup_s=0.5, put_s=2.0, db_warmup_s=0.5, db_s=1.5,
    photos=8, big_clients=16, derivative_runs=3, drain_timeout_s=40.0,
)


# --- the server process -------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds used by the server, by PostgreSQL (postmaster and backends) and by this process."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.me = psutil.Process()

    def _postgres(self) -> list[psutil.Process]:
        pidfile = self.server.pgdata / "postmaster.pid"
        try:
            master = psutil.Process(int(pidfile.read_text().split()[0]))
            return [master, *master.children()]
        except (OSError, ValueError, psutil.NoSuchProcess):
            return []

    @staticmethod
    def _cpu(procs: Sequence[psutil.Process]) -> dict[int, float]:
        out = {}
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                out[proc.pid] = t.user + t.system
        return out

    def snapshot(self) -> tuple[float, dict[int, float], dict[int, float], float]:
        me = self.me.cpu_times()
        return (time.perf_counter(), self._cpu(self.server.processes()), self._cpu(self._postgres()),
                me.user + me.system)

    @staticmethod
    def usage(start: tuple[float, dict[int, float], dict[int, float], float],
              end: tuple[float, dict[int, float], dict[int, float], float]) -> tuple[float, float, float]:
        """(server, postgres, client) CPU in cores (1.0 = one core busy) between two snapshots."""
        wall = end[0] - start[0]

        def delta(a: dict[int, float], b: dict[int, float]) -> float:
            return sum(v - a.get(pid, 0.0) for pid, v in b.items())

        return delta(start[1], end[1]) / wall, delta(start[2], end[2]) / wall, (end[3] - start[3]) / wall


# --- results --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Level:
    """One concurrency level of phase 1."""

    concurrency: int
    http: LoadResult
    http_cpu: tuple[float, float, float]
    put: LoadResult
    put_cpu: tuple[float, float, float]
    db: LoadResult
    db_cpu: tuple[float, float, float]

    def ms_per_request(self, which: str) -> tuple[float, float]:
        """(server, PostgreSQL) CPU milliseconds per request of one of the three runs."""
        result, cpu = {"http": (self.http, self.http_cpu), "put": (self.put, self.put_cpu),
                       "db": (self.db, self.db_cpu)}[which]
        return (cpu[0] / result.rate * 1000, cpu[1] / result.rate * 1000) if result.rate else (0.0, 0.0)

    @property
    def ceiling(self) -> float:
        return min(self.http.rate, self.db.rate)

    @property
    def ratio(self) -> float:
        return self.put.rate / self.ceiling if self.ceiling else float("nan")


@dataclasses.dataclass
class Upload:
    concurrency: int
    photos: int
    total_bytes: int
    http_s: float
    raw_s: float
    http_p50_ms: float
    http_cpu: tuple[float, float, float]

    @property
    def http_mbps(self) -> float:
        return self.total_bytes / MiB / self.http_s

    @property
    def raw_mbps(self) -> float:
        return self.total_bytes / MiB / self.raw_s

    @property
    def ratio(self) -> float:
        return self.http_mbps / self.raw_mbps

    @property
    def server_ms_per_photo(self) -> float:
        return self.http_cpu[0] * self.http_s / self.photos * 1000


@dataclasses.dataclass
class Memory:
    clients: int
    photo_bytes: int
    baseline: int
    peak_upload: int
    peak_total: int
    after: int
    upload_s: float
    drain_s: float
    statuses: dict[str, int]
    first_failure: str | None

    @property
    def growth_upload(self) -> int:
        return self.peak_upload - self.baseline

    @property
    def growth_total(self) -> int:
        return self.peak_total - self.baseline


@dataclasses.dataclass
class Derivatives:
    """Wall milliseconds per photo (``timed``) and the CPU milliseconds of the same runs."""

    size: str
    jpeg_bytes: int
    probe_ms: list[float]
    draft_ms: list[float]
    nodraft_ms: list[float]
    probe_cpu_ms: list[float]
    draft_cpu_ms: list[float]
    nodraft_cpu_ms: list[float]


@dataclasses.dataclass
class Device:
    token: str
    device_id: uuid.UUID
    user_id: uuid.UUID
    jurisdiction: str
    conn: Connection | None = None


# --- setup ----------------------------------------------------------------------------------------


async def call(conn: Connection, method: str, path: str, token: str | None, payload: Any, expect: int) -> Any:
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = bearer(token, "application/json") if token else b"Content-Type: application/json\r\n"
    status, data = await conn.request(method, path, headers=headers, body=body)
    if status != expect:
        raise HTTPError(f"{method} {path} -> {status}: {data[:300]!r}")
    return json.loads(data) if data else None


async def enroll_devices(server: Server, admin_token: str, count: int) -> list[Device]:
    """One inspector per county and ``count`` devices spread over them, all through the API."""
    conn = await Connection.open(HOST, server.port)
    try:
        inspectors = {}
        for code in COUNTIES:
            user = await call(conn, "POST", "/v1/users", admin_token,
                              {"username": f"bench-{code}", "role": "inspector", "jurisdiction": code}, 201)
            inspectors[code] = user
        devices = []
        for i in range(count):
            code = COUNTIES[i % len(COUNTIES)]
            issued = await call(conn, "POST", "/v1/enrollments", admin_token, {"username": f"bench-{code}"}, 201)
            enrolled = await call(conn, "POST", "/v1/devices/enroll", None,
                                  {"code": issued["code"], "label": f"bench phone {i}", "platform": "android"}, 201)
            devices.append(Device(enrolled["token"], uuid.UUID(enrolled["device_id"]),
                                  uuid.UUID(inspectors[code]["id"]), code))
        return devices
    finally:
        conn.close()


HAZARD_CATEGORIES = ("coal_mine", "metal_nonmetal_mine", "tailings_pond", "hazardous_chemicals", "fireworks",
                     "metallurgy", "industry_trade", "fire_safety", "gas", "construction", "road_transport", "other")
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


class Reports:
    """Distinct, valid hazard reports as a device would send them: the test suite's hazard report
    with its own enterprise (a checksum-valid credit code), place in 长治市, time in the last 30
    days, category and title, referencing two photos the server does not hold yet.

    Distinct on purpose: identical reports are all near-duplicates of each other, which measures
    duplicate detection at its worst instead of ingest.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.serial = 0
        self.now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))

    def credit_code(self) -> str:
        first17 = "91" + "1404" + "".join(self.rng.choice("0123456789") for _ in range(2)) + "".join(
            self.rng.choice(CREDIT_ALPHABET) for _ in range(9))
        check = credit_code_check_char(first17)
        assert check is not None
        return first17 + check

    def body(self, device: Device) -> dict[str, Any]:
        rng = self.rng
        self.serial += 1
        category = rng.choice(HAZARD_CATEGORIES)
        photos = [hashlib.sha256(rng.randbytes(16)).hexdigest() for _ in range(2)]
        observed = self.now - dt.timedelta(seconds=rng.uniform(600, 30 * 86400))
        return hazard_report(
            category=category,
            title=f"{category} 隐患 {device.jurisdiction}-{self.serial}",
            description=f"现场检查发现 {category} 隐患, 编号 {self.serial}, 已要求企业整改",
            jurisdiction=device.jurisdiction,
            location={"lat": round(rng.uniform(35.8, 37.1), 6), "lon": round(rng.uniform(111.9, 113.7), 6),
                      "accuracy_m": round(rng.uniform(3, 30), 1)},
            observed_at=observed.isoformat(timespec="seconds"),
            media=[{"sha256": photos[0], "role": "photo"}, {"sha256": photos[1], "role": "before", "caption": "现场"}],
            enterprise={"name": f"长治市某企业{self.serial}", "credit_code": self.credit_code(), "industry": category},
            grade="major" if rng.random() < 0.1 else "general",
        )


# --- phase 1: reports vs ceilings ------------------------------------------------------------------

INSERT_REPORT = """
INSERT INTO reports (id, kind, category, title, description, jurisdiction, lat, lon,
                     accuracy_m, observed_at, severity, grade, credit_code, incident_id,
                     stage, body, content_hash, author_id, device_id, received_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $20)
ON CONFLICT ON CONSTRAINT reports_pkey DO NOTHING
RETURNING true
"""
INSERT_VERSION = """
INSERT INTO report_versions (report_id, version, body, content_hash, author_id, device_id, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""
INSERT_MEDIA = """
INSERT INTO report_media (report_id, position, sha256, role, caption, attached_by)
SELECT $1, m.position, m.sha256, m.role, m.caption, $5
FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS m(sha256, role, caption, position)
"""


async def http_level(server: Server, concurrency: int, plan: Plan) -> LoadResult:
    conns = [await Connection.open(HOST, server.port) for _ in range(concurrency)]

    async def work(i: int) -> int:
        status, body = await conns[i].request("GET", "/healthz")
        if status != 200:
            raise HTTPError(f"/healthz -> {status}: {body[:200]!r}")
        return status

    try:
        return await closed_loop(work, concurrency=concurrency, warmup_s=plan.http_warmup_s,
                                 duration_s=plan.http_s, ok=lambda s: s == 200)
    finally:
        for c in conns:
            c.close()


async def put_level(devices: list[Device], concurrency: int, plan: Plan, reports: Reports,
                    counter: list[int]) -> LoadResult:
    active = devices[:concurrency]
    headers = {d.device_id: bearer(d.token, "application/json") for d in active}

    async def work(i: int) -> int:
        device = active[i]
        assert device.conn is not None
        payload = json.dumps(reports.body(device), ensure_ascii=False).encode()
        status, body = await device.conn.request(
            "PUT", f"/v1/reports/{uuid.uuid4()}", headers=headers[device.device_id], body=payload
        )
        if status != 201:
            raise HTTPError(f"PUT report -> {status}: {body[:300]!r}")
        counter[0] += 1
        return status

    return await closed_loop(work, concurrency=concurrency, warmup_s=plan.put_warmup_s,
                             duration_s=plan.put_s, ok=lambda s: s == 201)


async def db_level(pool: asyncpg.Pool, devices: list[Device], concurrency: int, plan: Plan, reports: Reports,
                   counter: list[int]) -> LoadResult:
    """The three inserts the server makes for a new report (same kind of rows), one transaction each."""
    active = devices[:concurrency]

    async def work(i: int) -> int:
        device = active[i]
        (kind, category, title, description, jurisdiction, lat, lon, accuracy_m, observed_at, grade,
         credit_code, body, content_hash, media) = raw_row(reports.body(device))
        report_id = uuid.uuid4()
        now = dt.datetime.now(dt.UTC)
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetchval(
                INSERT_REPORT, report_id, kind, category, title, description, jurisdiction, lat, lon,
                accuracy_m, observed_at, None, grade, credit_code, None, None, body, content_hash,
                device.user_id, device.device_id, now,
            )
            await conn.execute(INSERT_VERSION, report_id, 1, body, content_hash, device.user_id,
                               device.device_id, now)
            await conn.execute(INSERT_MEDIA, report_id, *media, device.user_id)
        counter[0] += 1
        return 201

    return await closed_loop(work, concurrency=concurrency, warmup_s=plan.db_warmup_s,
                             duration_s=plan.db_s, ok=lambda s: s == 201)


def raw_row(body: dict[str, Any]) -> tuple[Any, ...]:
    content = {k: v for k, v in body.items() if k not in ("id", "base_version")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    media = ([m["sha256"] for m in body["media"]], [m["role"] for m in body["media"]],
             [m.get("caption") for m in body["media"]])
    return (
        body["kind"], body["category"], body["title"], body["description"], body["jurisdiction"],
        body["location"]["lat"], body["location"]["lon"], body["location"]["accuracy_m"],
        dt.datetime.fromisoformat(body["observed_at"]), body["grade"], body["enterprise"]["credit_code"],
        content, hashlib.sha256(canonical.encode()).digest(), media,
    )


# --- photos ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Photo:
    """A JPEG as parts that share one big buffer: a unique comment segment makes a unique sha256."""

    parts: tuple[bytes, memoryview]
    sha256: str

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts)


def jpeg_variants(jpeg: bytes, count: int, tag: str) -> list[Photo]:
    """``count`` distinct valid JPEGs: SOI, a COM segment naming the variant, then the original."""
    assert jpeg[:2] == b"\xff\xd8"
    rest = memoryview(jpeg)[2:]

    def make(i: int) -> Photo:
        text = f"fieldsync bench {tag} {i} {uuid.uuid4()}".encode()
        head = b"\xff\xd8\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
        digest = hashlib.sha256(head)
        digest.update(rest)
        return Photo((head, rest), digest.hexdigest())

    with ThreadPoolExecutor(max_workers=2) as pool:  # hashlib releases the GIL
        return list(pool.map(make, range(count)))


def twelve_mp_jpeg() -> bytes:
    out = io.BytesIO()
    synthetic_photo(4000, 3000).save(out, "JPEG", quality=90)
    return out.getvalue()


async def upload(conn: Connection, token: str, photo: Photo) -> int:
    status, body = await conn.request(
        "PUT", f"/v1/media/{photo.sha256}", headers=bearer(token, "image/jpeg"), body=photo.parts, timeout=300
    )
    if status not in (200, 201):
        raise HTTPError(f"PUT media -> {status}: {body[:300]!r}")
    return status


def raw_write(directory: Path, photo: Photo) -> None:
    """The baseline: stream the bytes through SHA-256 into a new file, 1 MiB at a time, fsync."""
    digest = hashlib.sha256()
    path = directory / f"{photo.sha256}.raw"
    with open(path, "xb") as handle:
        for part in photo.parts:
            view = memoryview(part)
            for start in range(0, len(view), MiB):
                chunk = view[start : start + MiB]
                digest.update(chunk)
                handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    if digest.hexdigest() != photo.sha256:
        raise AssertionError("raw baseline hashed different bytes")


async def pending_jobs(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM jobs"))


async def drain(pool: asyncpg.Pool, timeout_s: float) -> float:
    """Wait until the server's derivative queue is empty; the seconds it took (bounded)."""
    started = time.perf_counter()
    while await pending_jobs(pool):
        if time.perf_counter() - started > timeout_s:
            print(f"  ! derivative queue not empty after {timeout_s:.0f} s; going on", flush=True)
            break
        await asyncio.sleep(0.1)
    return time.perf_counter() - started


async def upload_phase(server: Server, pool: asyncpg.Pool, devices: list[Device], plan: Plan, work_dir: Path,
                       meter: CpuMeter) -> list[Upload]:
    base = await asyncio.to_thread(twelve_mp_jpeg)
    raw_dir = work_dir / "raw"
    raw_dir.mkdir()
    results = []
    for concurrency in plan.upload_levels:
        photos = await asyncio.to_thread(jpeg_variants, base, plan.photos, f"c{concurrency}")
        total = sum(p.size for p in photos)
        await drain(pool, plan.drain_timeout_s)

        # raw baseline, same bytes, same concurrency (threads)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as executor:
            list(executor.map(lambda p: raw_write(raw_dir, p), photos))
        raw_s = time.perf_counter() - started
        await asyncio.to_thread(shutil.rmtree, raw_dir)
        raw_dir.mkdir()

        # the server, over HTTP
        queue = list(reversed(photos))
        latencies: list[float] = []
        conns = [await Connection.open(HOST, server.port) for _ in range(concurrency)]

        async def worker(i: int) -> None:
            while queue:
                photo = queue.pop()
                t0 = time.perf_counter()
                status = await upload(conns[i], devices[i].token, photo)
                if status != 201:
                    raise HTTPError(f"photo {photo.sha256} was already known ({status})")
                latencies.append(time.perf_counter() - t0)

        before = meter.snapshot()
        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        http_s = time.perf_counter() - started
        cpu = CpuMeter.usage(before, meter.snapshot())
        for c in conns:
            c.close()
        results.append(Upload(concurrency, len(photos), total, http_s, raw_s, statistics.median(latencies) * 1000, cpu))
        print(f"  upload c={concurrency}: {results[-1].http_mbps:6.1f} MiB/s over HTTP, "
              f"{results[-1].raw_mbps:6.1f} MiB/s raw ({len(photos)} × {total / len(photos) / 1e6:.1f} MB)", flush=True)
    return results


async def memory_phase(server: Server, pool: asyncpg.Pool, devices: list[Device], plan: Plan) -> Memory:
    data, (width, height) = await asyncio.to_thread(noisy_jpeg, plan.big_bytes)
    photos = await asyncio.to_thread(jpeg_variants, data, plan.big_clients, "big")
    print(f"  {plan.big_clients} × {photos[0].size / MiB:.1f} MiB noisy JPEG {width}x{height}", flush=True)
    await drain(pool, plan.drain_timeout_s)
    conns = [await Connection.open(HOST, server.port) for _ in range(plan.big_clients)]

    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), server.rss()))
            time.sleep(0.02)

    thread = threading.Thread(target=sampler, daemon=True)
    baseline = statistics.median([server.rss() for _ in range(10)])
    thread.start()
    started = time.perf_counter()
    statuses = await asyncio.gather(
        *(upload(conns[i], devices[i % len(devices)].token, photos[i]) for i in range(plan.big_clients)),
        return_exceptions=True,
    )
    uploaded = time.perf_counter()
    drain_s = await drain(pool, plan.drain_timeout_s)
    stop.set()
    thread.join()
    for c in conns:
        c.close()
    failures = [s for s in statuses if isinstance(s, BaseException)]
    counts: dict[str, int] = {}
    for s in statuses:
        key = "failed" if isinstance(s, BaseException) else str(s)
        counts[key] = counts.get(key, 0) + 1
    during = [rss for t, rss in samples if t <= uploaded]
    return Memory(
        clients=plan.big_clients, photo_bytes=photos[0].size, baseline=int(baseline),
        peak_upload=max(during), peak_total=max(rss for _, rss in samples), after=server.rss(),
        upload_s=uploaded - started, drain_s=drain_s, statuses=counts,
        first_failure=repr(failures[0])[:300] if failures else None,
    )


def derivative_phase(plan: Plan, work_dir: Path) -> Derivatives:
    path = work_dir / "twelve-mp.jpg"
    synthetic_photo(4000, 3000).save(path, "JPEG", quality=90)
    runs = plan.derivative_runs

    def measured(work: Callable[[], object]) -> tuple[list[float], list[float]]:
        """``timed``'s wall samples, and this thread's CPU time for the same runs (which a busy
        machine does not inflate: time spent waiting for a core is not counted)."""
        cpu: list[float] = []

        def with_cpu() -> None:
            started = time.thread_time()
            work()
            cpu.append((time.thread_time() - started) * 1000)

        wall = timed(runs, with_cpu)
        return wall, cpu[1:]  # timed runs one warm-up first

    probe_ms, probe_cpu = measured(lambda: probe(path, max_pixels=64_000_000))
    draft_ms, draft_cpu = measured(lambda: render_derivatives(path))
    nodraft_ms, nodraft_cpu = measured(lambda: render_derivatives(path, draft=False))
    return Derivatives("4000x3000", path.stat().st_size, probe_ms, draft_ms, nodraft_ms, probe_cpu, draft_cpu,
                       nodraft_cpu)


# --- output ----------------------------------------------------------------------------------------


def machine_facts(load_at_start: tuple[float, float, float]) -> list[tuple[str, str]]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown (not a git checkout)"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True,
                           text=True, check=False).stdout.strip()
    version = importlib.metadata.version
    return [
        ("nproc", str(os.cpu_count())),
        ("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load_at_start)),
        ("CPU", cpu),
        ("memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("versions", ", ".join(f"{name} {version(name)}" for name in
                               ("uvicorn", "uvloop", "httptools", "litestar", "asyncpg", "msgspec", "pillow"))),
        ("server", "`fieldsync serve`: one uvicorn process (uvloop, httptools), pool of 20 connections, "
                   "1 derivative worker"),
        ("source", f"{SRC} at commit {commit}{' + uncommitted changes under src/' if dirty else ''}"),
        ("invoked as", "`" + " ".join([sys.executable, *sys.argv]) + "`"),
    ]


def pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def cores(cpu: tuple[float, float, float]) -> str:
    return f"{cpu[0]:.2f} / {cpu[1]:.2f} / {cpu[2]:.2f}"


def render(plan: Plan, command: str, started_at: dt.datetime, facts: list[tuple[str, str]], pg_version: str,
           levels: list[Level], uploads: list[Upload], memory: Memory, derivs: Derivatives,
           sanity: list[str], shutdown: str, elapsed_s: float) -> str:
    out: list[str] = []
    w = out.append
    w(f"### Run of {started_at:%Y-%m-%d %H:%M} UTC ({plan.name})")
    w("")
    w(f"Command: `{command}` (took {elapsed_s:.0f} s)")
    w("")
    w("| machine | |")
    w("|---|---|")
    for k, v in facts:
        w(f"| {k} | {v} |")
    w(f"| PostgreSQL | {pg_version} (embedded, unix socket, defaults) |")
    w("")
    w("#### (a)+(b) Report ingest against its two ceilings")
    w("")
    w("`PUT /v1/reports/{new id}` (each a distinct hazard report referencing two photos; one device token and "
      "one keep-alive connection per simulated device) · `GET /healthz` on the same server (HTTP ceiling) · raw asyncpg in the "
      "benchmark process doing the same three inserts per report in one transaction, pool of 20 like the "
      "server's (database ceiling). Each row's three runs follow each other directly.")
    w("")
    w("| concurrency | PUT req/s | PUT p50 / p99 ms | healthz req/s | healthz p50 / p99 ms | raw DB reports/s "
      "| raw DB p50 / p99 ms | PUT ÷ lower ceiling |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lv in levels:
        w(f"| {lv.concurrency} | {lv.put.rate:,.0f} | {lv.put.p50_ms:.1f} / {lv.put.p99_ms:.1f} | {lv.http.rate:,.0f} "
          f"| {lv.http.p50_ms:.2f} / {lv.http.p99_ms:.2f} | {lv.db.rate:,.0f} | {lv.db.p50_ms:.1f} / {lv.db.p99_ms:.1f} "
          f"| {pct(lv.ratio)} |")
    w("")
    w("Where the CPU went (CPU time of each process ÷ requests; cores = CPU time ÷ wall time). The machine has "
      "2 cores shared by server, PostgreSQL, load generator and whatever else runs.")
    w("")
    w("| concurrency | PUT: server / PG ms per req | healthz: server ms per req | raw DB: PG / client ms per report "
      "| cores busy during PUT (server / PG / client) | during healthz | during raw DB |")
    w("|---:|---:|---:|---:|---:|---:|---:|")
    for lv in levels:
        put_srv, put_pg = lv.ms_per_request("put")
        http_srv, _ = lv.ms_per_request("http")
        _, db_pg = lv.ms_per_request("db")
        db_client = lv.db_cpu[2] / lv.db.rate * 1000 if lv.db.rate else 0.0
        w(f"| {lv.concurrency} | {put_srv:.2f} / {put_pg:.2f} | {http_srv:.3f} | {db_pg:.2f} / {db_client:.2f} "
          f"| {cores(lv.put_cpu)} | {cores(lv.http_cpu)} | {cores(lv.db_cpu)} |")
    w("")
    w("#### (c) Photo upload against a raw stream-hash-and-write")
    w("")
    w("Distinct 12 MP JPEGs (synthetic photo, q90). Server: `PUT /v1/media/{sha256}` → spool (hash + write) → "
      "decode check (`probe`) → store (hard link + fsync + rename + dir fsync) → row. Raw: SHA-256 and write "
      "1 MiB at a time into a new file in the same filesystem, then fsync; same bytes, same concurrency (threads). "
      "Each server photo also queues a derivative job, which runs during the measurement as it would in production.")
    w("")
    w("| concurrency | photos | MB each | server MiB/s | upload p50 ms | raw MiB/s | server ÷ raw "
      "| server CPU ms per photo | cores busy (server / PG / client) |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for up in uploads:
        w(f"| {up.concurrency} | {up.photos} | {up.total_bytes / up.photos / 1e6:.2f} | {up.http_mbps:.1f} "
          f"| {up.http_p50_ms:.0f} | {up.raw_mbps:.1f} | {pct(up.ratio)} | {up.server_ms_per_photo:.0f} "
          f"| {cores(up.http_cpu)} |")
    w("")
    w("#### (d) Derivatives per 12 MP photo (single thread, in the benchmark process)")
    w("")
    w(f"{derivs.size} JPEG q90, {derivs.jpeg_bytes / 1e6:.1f} MB, {len(derivs.draft_ms)} runs after one warm-up "
      "(`scripts/bench/derivatives.py` helpers).")
    w("")
    w("| step | median ms (wall) | min–max ms (wall) | median ms of CPU |")
    w("|---|---:|---:|---:|")
    for label, samples, cpu in (
        ("probe (upload check: identify, 1/8-scale decode, EXIF)", derivs.probe_ms, derivs.probe_cpu_ms),
        ("render_derivatives, draft decoding (what the server runs)", derivs.draft_ms, derivs.draft_cpu_ms),
        ("render_derivatives without draft (for comparison)", derivs.nodraft_ms, derivs.nodraft_cpu_ms),
    ):
        w(f"| {label} | {statistics.median(samples):.0f} | {min(samples):.0f}–{max(samples):.0f} "
          f"| {statistics.median(cpu):.0f} |")
    w("")
    w("#### (e) Server memory while many devices upload big photos at once")
    w("")
    w(f"{memory.clients} connections each `PUT` a distinct {memory.photo_bytes / MiB:.1f} MiB noisy JPEG at the same "
      f"moment; RSS of the server process sampled every 20 ms. Uploads took {memory.upload_s:.1f} s "
      f"(statuses {memory.statuses}); the derivative jobs they queued took {memory.drain_s:.1f} s more.")
    if memory.first_failure:
        w("")
        w(f"**Some uploads failed.** First failure: `{memory.first_failure}`")
    w("")
    w("| RSS | MiB |")
    w("|---|---:|")
    w(f"| baseline (idle, before) | {memory.baseline / MiB:.0f} |")
    w(f"| peak while uploading | {memory.peak_upload / MiB:.0f} |")
    w(f"| peak including the derivative jobs | {memory.peak_total / MiB:.0f} |")
    w(f"| after | {memory.after / MiB:.0f} |")
    w(f"| **growth** (peak − baseline) | **{memory.growth_total / MiB:.0f}** |")
    w("")
    at32 = next((lv for lv in levels if lv.concurrency == 32), levels[-1])
    draft = statistics.median(derivs.draft_ms)
    draft_cpu = statistics.median(derivs.draft_cpu_ms)
    w("#### Against the targets (measured in this run)")
    w("")
    w("| target | measured | |")
    w("|---|---|---|")
    w(f"| report ingest ≥ 50 % of the lower ceiling at concurrency {at32.concurrency} | {at32.put.rate:,.0f} req/s ÷ "
      f"min({at32.http.rate:,.0f} HTTP, {at32.db.rate:,.0f} DB) = {pct(at32.ratio)} | {verdict(at32.ratio >= TARGET_INGEST)} |")
    for up in uploads:
        w(f"| photo upload ≥ 60 % of raw write (concurrency {up.concurrency}) | {up.http_mbps:.1f} ÷ {up.raw_mbps:.1f} "
          f"MiB/s = {pct(up.ratio)} | {verdict(up.ratio >= TARGET_UPLOAD)} |")
    w(f"| RSS growth < {TARGET_RSS_MB} MB under {memory.clients} × {memory.photo_bytes / MiB:.0f} MiB uploads "
      f"| {memory.growth_total / 1e6:.0f} MB ({memory.growth_total / MiB:.0f} MiB) "
      f"| {verdict(memory.growth_total / 1e6 < TARGET_RSS_MB and not memory.first_failure)}"
      f"{' (some uploads failed)' if memory.first_failure else ''} |")
    w(f"| derivatives ≤ {TARGET_DERIVATIVE_MS} ms per 12 MP photo with draft | {draft:.0f} ms median wall "
      f"({draft_cpu:.0f} ms of CPU) | {verdict(draft <= TARGET_DERIVATIVE_MS)}"
      f"{' in wall time; met in CPU time' if draft > TARGET_DERIVATIVE_MS >= draft_cpu else ''} |")
    w("")
    w("Checks: " + "; ".join(sanity) + f". Shutdown: {shutdown}.")
    return "\n".join(out)


def print_level(lv: Level) -> None:
    print(f"  c={lv.concurrency:<4} PUT {lv.put.rate:7,.0f}/s p50 {lv.put.p50_ms:6.1f} p99 {lv.put.p99_ms:6.1f} ms | "
          f"healthz {lv.http.rate:7,.0f}/s | raw DB {lv.db.rate:7,.0f}/s | PUT/lower ceiling {pct(lv.ratio):>5} | "
          f"cpu srv/pg/cli {cores(lv.put_cpu)}", flush=True)
    for name, r in (("healthz", lv.http), ("PUT", lv.put), ("raw DB", lv.db)):
        if r.errors:
            print(f"    ! {name}: {r.errors} errors, first {r.first_error}", flush=True)


# --- main --------------------------------------------------------------------------------------------


async def run(plan: Plan, work_dir: Path, command: str) -> str:
    load_at_start = os.getloadavg()
    started_at = dt.datetime.now(dt.UTC)
    t_start = time.perf_counter()
    facts = machine_facts(load_at_start)
    print(f"fieldsync benchmark ({plan.name}) in {work_dir}; load average {load_at_start[0]:.2f}", flush=True)
    if load_at_start[0] > (os.cpu_count() or 1) / 2:
        print(f"  ! the machine is busy (load {load_at_start[0]:.2f} on {os.cpu_count()} cores): expect noisy rates; "
              "the CPU-per-request figures are the steadier ones", flush=True)

    data_dir = work_dir / "data"
    data_dir.mkdir()
    server = Server(data_dir, free_port(), command=[str(FIELDSYNC)])
    shutdown = "not started"
    try:
        server.start()
        print(f"  server pid {server.process.pid if server.process else '?'} on port {server.port}, "
              f"RSS {server.rss() / MiB:.0f} MiB", flush=True)
        admin_token = server.cli("user", "add", "bench-admin", "--role", "admin", "--jurisdiction", "140400",
                                 "--token").strip().splitlines()[-1]
        max_level = max(plan.levels)
        devices = await enroll_devices(server, admin_token, max(max_level, plan.big_clients))
        print(f"  enrolled {len(devices)} devices for {len(COUNTIES)} inspectors", flush=True)

        reports = Reports(seed=2026)

        meter = CpuMeter(server)
        async with embedded.database_url("", data_dir) as dsn:
            pool = await create_pool(dsn)
            try:
                pg_version = str(await pool.fetchval("SHOW server_version"))
                levels: list[Level] = []
                put_count, db_count = [0], [0]
                for concurrency in plan.levels:
                    for d in devices[:concurrency]:
                        if d.conn is None:
                            d.conn = await Connection.open(HOST, server.port)
                    s0 = meter.snapshot()
                    http = await http_level(server, concurrency, plan)
                    s1 = meter.snapshot()
                    put = await put_level(devices, concurrency, plan, reports, put_count)
                    s2 = meter.snapshot()
                    db = await db_level(pool, devices, concurrency, plan, reports, db_count)
                    s3 = meter.snapshot()
                    level = Level(concurrency, http, CpuMeter.usage(s0, s1), put, CpuMeter.usage(s1, s2), db,
                                  CpuMeter.usage(s2, s3))
                    levels.append(level)
                    print_level(level)
                for d in devices:
                    if d.conn is not None:
                        d.conn.close()
                        d.conn = None
                stored = await pool.fetchval(
                    "SELECT count(*) FROM reports WHERE device_id = ANY($1::uuid[])", [d.device_id for d in devices]
                )
                sanity = [f"{put_count[0] + db_count[0]:,} reports acknowledged (201 or committed), "
                          f"{stored:,} rows in `reports`"]
                if stored != put_count[0] + db_count[0]:
                    sanity.append("**MISMATCH**")
                for lv in levels:
                    for name, result in (("healthz", lv.http), ("PUT", lv.put), ("raw DB", lv.db)):
                        if result.errors:
                            sanity.append(f"**{result.errors} failed {name} requests at concurrency {lv.concurrency}**"
                                          f" (first: {result.first_error})")

                print("photo upload (c)", flush=True)
                uploads = await upload_phase(server, pool, devices, plan, work_dir, meter)
                await drain(pool, plan.drain_timeout_s)
                print("derivatives (d)", flush=True)
                derivs = await asyncio.to_thread(derivative_phase, plan, work_dir)
                print(f"  draft {statistics.median(derivs.draft_ms):.0f} ms ({statistics.median(derivs.draft_cpu_ms):.0f} "
                      f"of CPU), without {statistics.median(derivs.nodraft_ms):.0f} ms, "
                      f"probe {statistics.median(derivs.probe_ms):.0f} ms per 12 MP photo", flush=True)
                print("memory under big concurrent uploads (e)", flush=True)
                memory = await memory_phase(server, pool, devices, plan)
                print(f"  RSS baseline {memory.baseline / MiB:.0f} MiB, peak {memory.peak_total / MiB:.0f} MiB "
                      f"(uploading {memory.peak_upload / MiB:.0f}), growth {memory.growth_total / MiB:.0f} MiB", flush=True)
                media_rows = await pool.fetchval("SELECT count(*) FROM media")
                expected_media = sum(u.photos for u in uploads) + memory.clients
                sanity.append(f"{media_rows} rows in `media` for {expected_media} photos uploaded")
            finally:
                await pool.close()
    finally:
        if server.process is not None:
            shutdown = server.stop()
            print(f"  {shutdown}", flush=True)
    if "LEFT BEHIND" in shutdown:
        raise RuntimeError(shutdown)
    return render(plan, command, started_at, facts, pg_version, levels, uploads, memory, derivs, sanity, shutdown,
                  time.perf_counter() - t_start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases (about a minute): checks it works")
    parser.add_argument("--markdown", type=Path, default=Path(tempfile.gettempdir()) / "fieldsync-bench.md",
                        help="where to write the Markdown report (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory under /tmp afterwards")
    parser.add_argument("--timeout", type=float, default=900, help="abort the whole run after this many seconds")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    command = ".venv/bin/python scripts/bench/run.py" + (" --quick" if args.quick else "")
    work_dir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-", dir="/tmp"))
    try:
        markdown = uvloop.run(asyncio.wait_for(run(plan, work_dir, command), args.timeout))
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    args.markdown.write_text(markdown + "\n", encoding="utf-8")
    print()
    print(markdown)
    print(f"\nMarkdown written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
