"""Ingest at batch cost (issue 12): the cost of one acknowledged submission, split server /
PostgreSQL, with the background work it causes drained and counted.

    .venv/bin/python scripts/bench/ingest.py [--quick] [--markdown PATH] [--only PHASE] [--statements]
        [--pg-set NAME=VALUE] [--processes N]

One ``fieldsync serve`` on its embedded PostgreSQL in a fresh data directory (default settings:
one background worker), 32 inspectors logged in through the API, one keep-alive connection per
client task on loopback, through a lean HTTP/1.1 client (``rawhttp``: httpx would take about a
millisecond of the two cores per request from the server it measures). For each shape of data and each concurrency (1, 8, 32):

- **metadata**: ``PUT /v1/reports/{id}`` of a new hazard report;
- **photo**: ``PUT /v1/media/{sha256}`` of a ~200 KB 1280×960 JPEG, then ``PUT /v1/reports/{id}``
  naming it (preview, thumbnail and fingerprints included, wherever the server makes them);
- **push**: ``POST /v1/sync/push`` of 1000-report batches (JSON), by one inspector (one batch
  after another) and by four at once.

Shapes: **distinct** (every report a different enterprise, place and photo pixels) and **one
firm** (every report the same enterprise, nearly the same place, and photos with the same pixels:
several inspectors at one big mine). A phase's CPU is read from /proc (server process, postmaster
and backends) from its first request until the job queue is empty again, so near-duplicate
detection and anything else queued is counted. "Answered" is submissions over the time until the
last answer; "sustained" adds the drain (a server that answers fast and leaves renders queued is
not keeping up). The client runs on the same cores; its CPU is not counted. The machine's load is
printed at the start and the end, and each phase names the autovacuum runs and checkpoints
PostgreSQL made during it ("maintenance seen"): their CPU is in the phase's. Before the first
phase the server is warmed up with ``WARM_UP`` metadata PUTs at c=32 (not counted): its pool
grows and each connection makes its one-off type lookups and plans, as in a server that has been
up for a while.

``--statements`` restarts the cluster with ``pg_stat_statements`` loaded and prints, after each
phase, the statements that took the most time per submission, executing and planning (nested ones included:
foreign-key checks show as their own lines). Loading it costs PostgreSQL CPU, so its CPU columns
are not comparable with a run without it.

``--pg-set NAME=VALUE`` (repeatable) sets a PostgreSQL setting with ``ALTER SYSTEM`` after the
warm-up, for an A/B of the cluster's configuration (e.g. ``wal_writer_delay=200ms``, the default
before docs/decisions/0054).

``--processes N`` runs the server with ``FIELDSYNC_PROCESSES=N`` (decisions/0056); the server CPU
column then sums its supervisor and its worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from rawhttp import Connection  # noqa: E402 - scripts/bench is sys.path[0]
from server import HOST, SRC, Server  # noqa: E402
from sync import Cpu, credit_code, variant  # noqa: E402

from fieldsync.db import embedded  # noqa: E402
from fieldsync.db.pool import connect  # noqa: E402
from tests import images  # noqa: E402
from tests.e2e.server import cli  # noqa: E402

PASSWORD = "bench password 2026"
TITLES = ("主斜井皮带机保护装置失效", "井下瓦斯监测探头超期未校验", "危化品仓库消防通道堵塞", "尾矿库排洪设施淤堵",
          "配电室未设置挡鼠板", "有限空间作业未审批", "厂房疏散指示标志损坏", "液氨储罐压力表失灵")
ONE_FIRM = "91140431MA0K2B3C49"


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    per_phase: dict[int, int]  # concurrency -> submissions per phase
    push_batches: dict[int, int]  # concurrent pushers -> 1000-report batches in all


FULL = Plan("full", {1: 200, 8: 600, 32: 800}, push_batches={1: 6, 4: 8})
QUICK = Plan("quick", {1: 40, 8: 120, 32: 160}, push_batches={1: 2, 4: 4})


@dataclasses.dataclass
class Result:
    shape: str
    kind: str
    concurrency: int
    count: int
    load_s: float = 0.0
    drain_s: float = 0.0
    server_cpu_s: float = 0.0
    pg_cpu_s: float = 0.0
    latencies: list[float] = dataclasses.field(default_factory=list)
    maintenance: frozenset[str] = frozenset()
    check: tuple[float, float] = (0.0, 0.0)  # machine_check() right before the phase

    @property
    def rate(self) -> float:
        return self.count / self.load_s

    @property
    def rate_drained(self) -> float:
        """Submissions over the time until the last answer and the queued work it caused are done:
        what a server can keep up with, not what it can acknowledge while a backlog grows."""
        return self.count / (self.load_s + self.drain_s)

    def cpu_ms(self) -> tuple[float, float]:
        return 1000 * self.server_cpu_s / self.count, 1000 * self.pg_cpu_s / self.count

    @property
    def p50_ms(self) -> float:
        return 1000 * statistics.median(self.latencies)


# --- data ---------------------------------------------------------------------------------------------


def photo(seed: int, *, pixels_seed: int) -> bytes:
    """A ~200 KB 1280×960 JPEG of a synthetic scene with sensor-like noise; ``pixels_seed`` decides
    the pixels (one firm: the same for all), ``seed`` makes the bytes distinct (a comment)."""
    scene = np.asarray(images.scene(pixels_seed, 1280, 960), dtype=np.int16)
    noise = np.random.default_rng(pixels_seed).normal(0, 7, scene.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(scene + noise, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=85)
    return variant(out.getvalue(), str(seed))


@functools.cache
def _check_photo() -> bytes:
    return photo(1, pixels_seed=7)


def machine_check(rounds: int = 3) -> tuple[float, float]:
    """How fast this machine runs fixed work right now, in CPU ms of this thread (best of
    ``rounds``): a million steps of a Python loop, and twenty decodes of the bench's photo. The
    machine's speed moves by a third from one day to the next, and within a run too; runs and
    phases compare through these."""
    data = _check_photo()

    def loop() -> None:
        total = 0
        for step in range(1_000_000):
            total += step * step

    def decode() -> None:
        for _ in range(20):
            with Image.open(io.BytesIO(data)) as image:
                image.load()

    def timed(work: Callable[[], None]) -> float:
        started = time.thread_time()
        work()
        return (time.thread_time() - started) * 1000

    python_ms, decode_ms = (min(timed(work) for _ in range(rounds)) for work in (loop, decode))
    return python_ms, decode_ms


def report(rng: random.Random, shape: str, n: int, sha: str | None) -> dict[str, Any]:
    if shape == "one_firm":
        lat, lon, code, title = 36.5 + rng.uniform(-2e-4, 2e-4), 112.3 + rng.uniform(-2e-4, 2e-4), ONE_FIRM, TITLES[0]
    else:
        lat, lon, code, title = 36.0 + rng.uniform(0, 1.2), 112.0 + rng.uniform(0, 1.2), credit_code(rng), TITLES[n % 8]
    observed = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC) - dt.timedelta(minutes=rng.randint(0, 60 * 24 * 60))
    return {
        "kind": "hazard", "category": "coal_mine", "title": f"{title} {n}", "description": "现场检查发现, 需整改",
        "jurisdiction": "140431", "location": {"lat": lat, "lon": lon, "accuracy_m": 8.0},
        "observed_at": observed.isoformat(), "media": [{"sha256": sha, "role": "photo"}] if sha else [],
        "enterprise": {"name": f"沁源县煤业{code[-4:]}", "credit_code": code}, "grade": "general",
    }


# --- load ----------------------------------------------------------------------------------------------


async def submit(client: Connection, token: str, body: bytes, data: bytes | None) -> float:
    """One submission: the photo's PUT (if any), then the report's PUT naming it; its latency."""
    auth = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    if data is not None:
        sha = hashlib.sha256(data).hexdigest()
        status, answer = await client.request("PUT", f"/v1/media/{sha}", data, {**auth, "Content-Type": "image/jpeg"})
        if status not in (200, 201):
            raise RuntimeError(f"PUT media {status}: {answer[:300]!r}")
    status, answer = await client.request("PUT", f"/v1/reports/{uuid.uuid4()}", body,
                                          {**auth, "Content-Type": "application/json"})
    if status != 201:
        raise RuntimeError(f"PUT report {status}: {answer[:300]!r}")
    return time.perf_counter() - started


class Maintenance:
    """What PostgreSQL's own maintenance did during a phase, sampled every ``every_s`` on a
    connection of its own: the autovacuum and autoanalyze runs seen (``vacuum reports``) and any
    checkpoint. Their CPU is in the phase's PostgreSQL CPU, and a short phase that meets one is
    slower: the column says which runs to read with that in mind."""

    def __init__(self, dsn: str, every_s: float = 0.1) -> None:
        self.dsn, self.every_s = dsn, every_s
        self.seen: set[str] = set()

    @staticmethod
    async def _checkpoints(conn: Any) -> int:
        return int(await conn.fetchval("SELECT num_timed + num_requested FROM pg_stat_checkpointer"))

    async def _sample(self) -> None:
        while True:
            for row in await self.conn.fetch(
                "SELECT query FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND query <> ''"
            ):
                words = row["query"].removeprefix("autovacuum: ").split()
                self.seen.add(f"{words[0].lower()} {words[-1].split('.')[-1]}")
            await asyncio.sleep(self.every_s)

    async def __aenter__(self) -> Maintenance:
        self.conn = await connect(self.dsn)
        self.checkpoints = await self._checkpoints(self.conn)
        self.sampler = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.sampler
        try:
            if await self._checkpoints(self.conn) > self.checkpoints:
                self.seen.add("checkpoint")
        finally:
            await self.conn.close()


async def drain(conn: Any, timeout_s: float = 300) -> float:
    started = time.perf_counter()
    while await conn.fetchval("SELECT count(*) FROM jobs") and time.perf_counter() - started < timeout_s:
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


WARM_UP = 256  # metadata PUTs at c=32 before the first phase, not counted


async def warm_up(server: Server, conn: Any, dsn: str, tokens: list[str]) -> None:
    """A server that has been up for a while: its pool has grown to its working size, and every
    connection has looked up its types and planned its statements (a few milliseconds each, once).
    Without this a 600-report phase counts that one-off cost as a third of a millisecond per
    report. Distinct reports of their own seed; the job queue is drained before the phases."""
    await phase(server, conn, dsn, tokens, "distinct", "metadata", 32, WARM_UP, seed=0)


async def phase(server: Server, conn: Any, dsn: str, tokens: list[str], shape: str, kind: str, concurrency: int,
                count: int, seed: int) -> Result:
    rng = random.Random(seed)
    work = []
    for n in range(count):
        data = photo(seed * 100_000 + n, pixels_seed=7 if shape == "one_firm" else seed * 100_000 + n) \
            if kind == "photo" else None
        sha = hashlib.sha256(data).hexdigest() if data else None
        work.append((json.dumps(report(rng, shape, n, sha), ensure_ascii=False).encode(), data))
    queue: asyncio.Queue[tuple[bytes, bytes | None]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    latencies: list[float] = []

    async def client_task(index: int) -> None:
        async with Connection(HOST, server.port) as client:
            while not queue.empty():
                body, data = queue.get_nowait()
                latencies.append(await submit(client, tokens[index % len(tokens)], body, data))

    return await measured(Result(shape, kind, concurrency, count, latencies=latencies), server, conn, dsn,
                          [client_task(i) for i in range(concurrency)])


async def push_phase(server: Server, conn: Any, dsn: str, tokens: list[str], concurrency: int,
                     batches: int) -> Result:
    """``batches`` pushes of 1000 new reports, ``concurrency`` inspectors pushing at once (each its
    own connection, one batch after another)."""
    rng = random.Random(98 + concurrency)
    bodies = []
    for b in range(batches):
        mutations = [{"mutation_id": str(uuid.uuid4()), "op": "upsert_report",
                      "report": {**report(rng, "distinct", b * 1000 + n, None), "id": str(uuid.uuid4())}}
                     for n in range(1000)]
        bodies.append({"mutations": mutations})
    latencies: list[float] = []

    async def pusher(token: str, mine: list[dict[str, Any]]) -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=300) as client:
            for body in mine:
                t0 = time.perf_counter()
                answer = await client.post("/v1/sync/push", json=body, headers={"Authorization": f"Bearer {token}"})
                if answer.status_code != 200:
                    raise RuntimeError(f"push {answer.status_code}: {answer.text[:300]}")
                latencies.append(time.perf_counter() - t0)

    return await measured(Result("distinct", "push", concurrency, 1000 * batches, latencies=latencies), server,
                          conn, dsn, [pusher(tokens[i], bodies[i::concurrency]) for i in range(concurrency)])


async def measured(result: Result, server: Server, conn: Any, dsn: str, clients: list[Coroutine[Any, Any, None]]
                   ) -> Result:
    """``result`` filled in by running ``clients`` at once: the time to the last answer, the drain
    of the queued work they caused, the CPU of both (server, PostgreSQL) and the maintenance seen."""
    spans: list[tuple[float, float]] = []
    result.check = machine_check(rounds=1)  # the machine alone: the server is idle between phases
    async with Maintenance(dsn) as maintenance:
        with Cpu(server).span(spans):
            started = time.perf_counter()
            await asyncio.gather(*clients)
            result.load_s = time.perf_counter() - started
            result.drain_s = await drain(conn)
    (result.server_cpu_s, result.pg_cpu_s), = spans
    result.maintenance = frozenset(maintenance.seen)
    return result


# --- report ----------------------------------------------------------------------------------------------


def line(result: Result) -> str:
    server_ms, pg_ms = result.cpu_ms()
    return (f"| {result.kind} | {result.shape.replace('_', ' ')} | {result.concurrency} | {result.count} | "
            f"{result.rate:,.0f}/s | {result.rate_drained:,.0f}/s | {result.p50_ms:.1f} | {server_ms:.2f} | {pg_ms:.2f} | {server_ms + pg_ms:.2f} | "
            f"{result.drain_s:.1f} s | {', '.join(sorted(result.maintenance)) or '—'} | "
            f"{result.check[0]:.0f}/{result.check[1]:.0f} |")


def markdown(plan: Plan, results: list[Result], loads: list[tuple[str, tuple[float, float, float]]],
             checks: list[tuple[str, tuple[float, float]]], started: dt.datetime, took_s: float, src: Path,
             statements: bool = False,
             only: frozenset[str] = frozenset(), pg_set: tuple[str, ...] = (), processes: int = 1) -> str:
    command = ".venv/bin/python scripts/bench/ingest.py" + (" --quick" if plan.name == "quick" else "")
    command += "".join(f" --only {phase}" for phase in sorted(only))
    command += " --statements" if statements else ""
    command += "".join(f" --pg-set {setting}" for setting in pg_set)
    command += f" --processes {processes}" if processes != 1 else ""
    if src != SRC:
        command += f" --server-src {src}"
    rows = "\n".join(line(result) for result in results)
    load_text = "; ".join(f"{label} {a:.1f}/{b:.1f}/{c:.1f}" for label, (a, b, c) in loads)
    check_text = "; ".join(f"{label} {python_ms:.0f}/{decode_ms:.0f}" for label, (python_ms, decode_ms) in checks)
    return f"""### Ingest cost per submission ({plan.name}, {started:%Y-%m-%d %H:%M} UTC)

`{command}` — {took_s / 60:.1f} min; nproc {os.cpu_count()}. Load average (1/5/15 min): {load_text}.
Machine check (CPU ms of a 1 M-step Python loop / 20 decodes of the bench photo; best of 3 here, one before each phase in the last column): {check_text}.

| workload | shape | c | n | answered | sustained (drained) | p50 ms | server CPU ms | PostgreSQL CPU ms | total CPU ms | drain | maintenance seen | machine check ms |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
{rows}
"""


async def prepare(server: Server, data_dir: Path) -> list[str]:
    """32 inspectors of 沁源县, each logged in through the API."""
    admin = cli(data_dir, "user", "add", "bench-admin", "--role", "admin", "--jurisdiction", "140000", "--token",
                PYTHONPATH=server.env["PYTHONPATH"]).stdout.strip().splitlines()[-1]
    tokens = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        for n in range(32):
            name = f"bench-insp-{n}"
            made = await client.post("/v1/users", json={"username": name, "role": "inspector",
                                                         "jurisdiction": "140431", "password": PASSWORD},
                                      headers={"Authorization": f"Bearer {admin}"})
            assert made.status_code == 201, made.text
            login = await client.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
            assert login.status_code == 200, login.text
            tokens.append(login.json()["token"])
    return tokens


async def load_statements(server: Server, data_dir: Path, src: Path) -> Server:
    """Restart the server's cluster with pg_stat_statements loaded; the new server, same port."""
    async with embedded.database_url("", data_dir) as dsn:
        conn = await connect(dsn)
        try:
            await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            await conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
        finally:
            await conn.close()
    server.stop()
    restarted = Server(data_dir, server.port, src=src, processes=server.processes_wanted)
    restarted.start()
    async with embedded.database_url("", data_dir) as dsn:
        conn = await connect(dsn)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.execute("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()
    return restarted


async def top_statements(conn: Any, count: int, limit: int = 16) -> str:
    """The statements with the most time (executing and planning) since the last reset, per submission."""
    rows = await conn.fetch(
        r"""SELECT total_exec_time, total_plan_time, calls, rows,
                  left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query
           FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'
           ORDER BY total_exec_time + total_plan_time DESC LIMIT $1""", limit)
    total = await conn.fetchrow(
        "SELECT sum(total_exec_time) AS run, sum(total_plan_time) AS plan FROM pg_stat_statements")
    lines = [f"    per submission: executing {1000 * total['run'] / count:.1f} µs, planning {1000 * total['plan'] / count:.1f} µs"]
    lines += [f"    {1000 * r['total_exec_time'] / count:7.1f} µs + plan {1000 * r['total_plan_time'] / count:5.1f} µs"
              f" {r['calls'] / count:6.2f} calls {r['rows'] / count:6.2f} rows  {r['query']}" for r in rows]
    await conn.execute("SELECT pg_stat_statements_reset()")
    return "\n".join(lines)


async def run(plan: Plan, work: Path, *, only: set[str], profile: Path | None, src: Path,
              statements: bool = False, pg_set: tuple[str, ...] = (), processes: int = 1) -> str:
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    data_dir = work / "data"
    data_dir.mkdir()
    checks = [("start", machine_check())]  # before the server, and after it stopped: the machine alone
    server = Server(data_dir, src=src, processes=processes)
    server.start()
    results: list[Result] = []
    loads = [("start", os.getloadavg())]
    spy = None
    try:
        tokens = await prepare(server, data_dir)
        if statements:
            server = await load_statements(server, data_dir, src)
        async with embedded.database_url("", data_dir) as dsn:
            conn = await connect(dsn)
            try:
                await warm_up(server, conn, dsn, tokens)
                await embedded.apply_settings(conn, dict(setting.split("=", 1) for setting in pg_set))
                if profile is not None:  # after the warm-up, whose connection set-up is not the phases' cost
                    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                                            str(server.pid), "--subprocesses", "--output", str(profile), "--format", "speedscope",
                                            "--rate", "500", "--nonblocking"])
                if statements:
                    await conn.execute("SELECT pg_stat_statements_reset()")
                seed = 1
                for kind in ("metadata", "photo"):
                    for shape in ("distinct", "one_firm"):
                        for concurrency, count in plan.per_phase.items():
                            seed += 1
                            if only and f"{kind}:{shape}:{concurrency}" not in only:
                                continue
                            result = await phase(server, conn, dsn, tokens, shape, kind, concurrency, count, seed)
                            results.append(result)
                            print(line(result), flush=True)
                            if statements:
                                print(await top_statements(conn, result.count), flush=True)
                for concurrency, batches in plan.push_batches.items():
                    if only and "push" not in only and f"push:{concurrency}" not in only:
                        continue
                    results.append(await push_phase(server, conn, dsn, tokens, concurrency, batches))
                    print(line(results[-1]), flush=True)
                    if statements:
                        print(await top_statements(conn, results[-1].count), flush=True)
                loads.append(("end", os.getloadavg()))
            finally:
                await conn.close()
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        print(f"shutdown: {server.stop()}", flush=True)
    checks.append(("end", machine_check()))
    return markdown(plan, results, loads, checks, started, time.perf_counter() - t0, src, statements,
                    frozenset(only), pg_set, processes)


def _setting(text: str) -> str:
    name, _, value = text.partition("=")
    if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name) or not value or "'" in value:
        raise argparse.ArgumentTypeError(f"not NAME=VALUE: {text!r}")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", type=Path, help="also write the results table here")
    parser.add_argument("--only", action="append", default=[],
                        help="run only these phases, e.g. photo:distinct:8, push:4 or push (both) (repeatable)")
    parser.add_argument("--profile", type=Path, help="record the server with py-spy into this speedscope file")
    parser.add_argument("--server-src", type=Path, default=SRC,
                        help="the src directory the server runs (another checkout's, for a baseline)")
    parser.add_argument("--statements", action="store_true",
                        help="load pg_stat_statements and print each phase's costliest statements")
    parser.add_argument("--pg-set", action="append", default=[], type=_setting, metavar="NAME=VALUE",
                        help="set this PostgreSQL setting after the warm-up (repeatable)")
    parser.add_argument("--processes", type=int, default=1, help="FIELDSYNC_PROCESSES of the server")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fieldsync-bench-ingest-", dir="/tmp"))
    try:
        text = asyncio.run(run(QUICK if args.quick else FULL, work, only=set(args.only), profile=args.profile,
                               src=args.server_src.resolve(), statements=args.statements,
                               pg_set=tuple(args.pg_set), processes=args.processes))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
