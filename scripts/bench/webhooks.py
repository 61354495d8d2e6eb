"""Webhook benchmark: what the outbox costs a report PUT, and how fast events reach a receiver.

    .venv/bin/python scripts/bench/webhooks.py [--quick] [--markdown PATH]

Everything on 127.0.0.1, a real ``fieldsync serve`` (embedded PostgreSQL) in a fresh /tmp data
dir, with ``FIELDSYNC_WEBHOOK_ALLOW_PRIVATE=true`` so it may call the local receiver. The receiver
is a minimal HTTP/1.1 keep-alive sink in this process (``httptools``, answers 204 at once): the
fast receiver the rates are about. Phases, back to back:

1. Server A with ``FIELDSYNC_WEBHOOK_CONCURRENCY=0`` (no delivery worker). (a) PUT new hazard
   reports in a closed loop (8 devices) with no subscription; (b) the same with one subscription
   to every event type; (a) and (b) alternate ``rounds`` times (the subscription deleted between). The difference of server + PostgreSQL CPU per PUT is what writing the
   outbox (event row, delivery row, NOTIFY) costs; the deliveries pile up undelivered.
2. More backlog through ``POST /v1/sync/push`` (1000 reports a batch), then server A stops.
3. Server B on the same data with delivery on (defaults: 16 in flight, 8 per subscription): the
   backlog drains to the receiver; events per second from its first to its last request, and the
   server + PostgreSQL CPU per delivered event.
4. On server B, after a VACUUM ANALYZE (the drain's updates would otherwise bring autovacuum into
   the next run): (c) the PUT loop with no subscription and (d) with one subscription and delivery
   running, alternated: CPU per PUT including its delivery, and the latency from a PUT's 201 to
   its event reaching the receiver.

CPU is read with psutil from the server process and from the cluster's postmaster and backends
(the ``CpuMeter`` of run.py); the client and the receiver run in this process and are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httptools
import uvloop

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from loadgen import Connection, HTTPError, LoadResult, bearer, closed_loop  # noqa: E402
from run import COUNTIES, FIELDSYNC, HOST, CpuMeter, Device, Reports, call, enroll_devices  # noqa: E402
from server import Server, free_port  # noqa: E402

from fieldsync.db import embedded  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    devices: int = 8
    put_warmup_s: float = 2.0
    put_s: float = 10.0
    backlog_batches: int = 6
    rounds: int = 2
    drain_timeout_s: float = 300.0


FULL = Plan("full")
QUICK = Plan("quick", put_warmup_s=0.5, put_s=3.0, backlog_batches=1, rounds=1, drain_timeout_s=120.0)


class Sink(asyncio.Protocol):
    """One receiver connection: parse requests, answer 204, note when each event arrived."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        event = json.loads(b"".join(self.body))
        self.body = []
        self.receiver.arrived(event)
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.created_at: dict[str, float] = {}
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    def arrived(self, event: dict[str, Any]) -> None:
        now = time.perf_counter()
        self.count += 1
        self.first = self.first or now
        self.last = now
        if event["type"] == "report.created":
            self.created_at[event["subject"]] = now

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Sink(self), HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hooks/fieldsync"

    async def wait_for(self, count: int, timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while self.count < count:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"receiver got {self.count} of {count} events in {timeout_s:.0f} s")
            await asyncio.sleep(0.05)


@dataclasses.dataclass
class PutRun:
    name: str
    result: LoadResult
    cpu: tuple[float, float, float]
    acked_at: dict[str, float]

    def ms(self) -> tuple[float, float]:
        rate = self.result.rate
        return (self.cpu[0] / rate * 1000, self.cpu[1] / rate * 1000) if rate else (0.0, 0.0)


async def put_run(name: str, server: Server, devices: list[Device], plan: Plan, reports: Reports) -> PutRun:
    meter = CpuMeter(server)
    conns = [await Connection.open(HOST, server.port) for _ in devices]
    acked: dict[str, float] = {}

    async def work(i: int) -> int:
        device, report_id = devices[i], str(uuid.uuid4())
        payload = json.dumps(reports.body(device), ensure_ascii=False).encode()
        status, body = await conns[i].request("PUT", f"/v1/reports/{report_id}",
                                              headers=bearer(device.token, "application/json"), body=payload)
        if status != 201:
            raise HTTPError(f"PUT report -> {status}: {body[:300]!r}")
        acked[report_id] = time.perf_counter()
        return status

    try:
        before = meter.snapshot()
        result = await closed_loop(work, concurrency=len(devices), warmup_s=plan.put_warmup_s, duration_s=plan.put_s,
                                   ok=lambda s: s == 201)
        cpu = CpuMeter.usage(before, meter.snapshot())
    finally:
        for conn in conns:
            conn.close()
    run = PutRun(name, result, cpu, acked)
    server_ms, pg_ms = run.ms()
    print(f"  {name}: {result.rate:.0f} PUT/s, p50 {result.p50_ms:.1f} ms, server {server_ms:.2f} + "
          f"PostgreSQL {pg_ms:.2f} CPU ms per PUT, errors {result.errors}", flush=True)
    return run


EVENTS = ["report.created", "report.updated", "report.status_changed", "report.merged", "incident.report_added",
          "incident.deadline_missed", "hazard.overdue"]


def merged(runs: list[PutRun]) -> PutRun:
    """Several runs of one condition as one: requests and CPU seconds added up."""
    if len(runs) == 1:
        return runs[0]
    window = sum(r.result.window_s for r in runs)
    cpu = tuple(sum(r.cpu[i] * r.result.window_s for r in runs) / window for i in range(3))
    result = LoadResult(runs[0].result.concurrency, window, [x for r in runs for x in r.result.latencies_s],
                        {}, sum(r.result.errors for r in runs))
    return PutRun(runs[0].name, result, cpu, {k: v for r in runs for k, v in r.acked_at.items()})  # type: ignore[arg-type]


PUSH_BATCH = 1000


async def push_backlog(server: Server, device: Device, reports: Reports, batches: int) -> int:
    conn = await Connection.open(HOST, server.port)
    try:
        for _ in range(batches * 1000 // PUSH_BATCH):
            mutations = [{"mutation_id": str(uuid.uuid4()), "op": "upsert_report",
                          "report": {**reports.body(device), "id": str(uuid.uuid4())}} for _ in range(PUSH_BATCH)]
            status, body = await conn.request("POST", "/v1/sync/push", headers=bearer(device.token, "application/json"),
                                              body=json.dumps({"mutations": mutations}, ensure_ascii=False).encode())
            if status != 200 or b'"rejected"' in body:
                raise HTTPError(f"push -> {status}: {body[:300]!r}")
    finally:
        conn.close()
    return batches * 1000 // PUSH_BATCH * PUSH_BATCH


def start_server(data_dir: Path, **env: str) -> Server:
    server = Server(data_dir, free_port(), command=[str(FIELDSYNC)])
    server.env.update(FIELDSYNC_WEBHOOK_ALLOW_PRIVATE="true", **env)
    server.start()
    return server


@dataclasses.dataclass
class Drain:
    events: int
    seconds: float  # the receiver's first to last request
    metered_events: int  # delivered while the CPU meter ran (the worker starts before /readyz answers)
    cpu_s: tuple[float, float]  # server, PostgreSQL CPU seconds while the meter ran

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def ms_per_event(self) -> tuple[float, float]:
        n = max(self.metered_events, 1)
        return self.cpu_s[0] / n * 1000, self.cpu_s[1] / n * 1000


async def drain_backlog(server: Server, receiver: Receiver, total: int, plan: Plan) -> Drain:
    meter = CpuMeter(server)
    before, already = meter.snapshot(), receiver.count
    await receiver.wait_for(total, plan.drain_timeout_s)
    after = meter.snapshot()
    server_cores, pg_cores, _ = CpuMeter.usage(before, after)
    wall = after[0] - before[0]
    seconds = receiver.last - receiver.first
    print(f"  drained {total:,} events in {seconds:.1f} s: {total / seconds:.0f} events/s", flush=True)
    return Drain(total, seconds, total - already, (server_cores * wall, pg_cores * wall))


def latencies(run: PutRun, receiver: Receiver) -> list[float]:
    return sorted((receiver.created_at[rid] - at) * 1000 for rid, at in run.acked_at.items() if rid in receiver.created_at)


def render(plan: Plan, command: str, started: dt.datetime, load: tuple[float, float, float],
           pairs: list[tuple[str, PutRun, PutRun]], drain: Drain, lat: list[float], elapsed_s: float) -> str:
    lines = [
        "## Webhooks: outbox cost per PUT and delivery throughput (issue 15)",
        "",
        f"`{command}` — {started:%Y-%m-%d %H:%M} UTC, plan `{plan.name}`, `nproc` = {os.cpu_count()}, load average "
        f"before the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, run took {elapsed_s:.0f} s. One `fieldsync "
        "serve` (embedded PostgreSQL) on 127.0.0.1; the load generator (8 devices, closed loop, new hazard reports) "
        "and the receiver (a minimal HTTP/1.1 sink answering 204) run in the benchmark process on the same 2 cores "
        f"and are not counted in the CPU columns. Each pair alternates {plan.rounds}× on one server.",
        "",
        "| server | run | PUT/s | p50 ms | server CPU ms / PUT | PostgreSQL CPU ms / PUT | CPU vs its baseline |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for server, base, other in pairs:
        for run in (base, other):
            server_ms, pg_ms = run.ms()
            lines.append(f"| {server} | {run.name} | {run.result.rate:.0f} | {run.result.p50_ms:.1f} | {server_ms:.2f} | "
                         f"{pg_ms:.2f} | {sum(run.ms()) / sum(base.ms()):.2f}× |")
    (_, base_a, bare), (_, base_b, live) = pairs
    server_ms, pg_ms = drain.ms_per_event()
    lines += [
        "",
        f"- Writing the outbox (event row, delivery row, NOTIFY, in the PUT's transaction), delivery off: "
        f"{sum(bare.ms()) - sum(base_a.ms()):+.2f} CPU ms per PUT ({(sum(bare.ms()) / sum(base_a.ms()) - 1) * 100:+.0f} %).",
        f"- Writing it and delivering each event as it comes: {sum(live.ms()) - sum(base_b.ms()):+.2f} CPU ms per PUT "
        f"({(sum(live.ms()) / sum(base_b.ms()) - 1) * 100:+.0f} %).",
        f"- Delivery throughput to a fast local receiver: **{drain.rate:,.0f} events/s** ({drain.events:,} backlogged "
        "`report.created` events, one subscription, defaults: 16 in flight per process, 8 per subscription); "
        f"server {server_ms:.2f} + PostgreSQL {pg_ms:.2f} CPU ms per delivered event.",
    ]
    if lat:
        lines.append(f"- PUT 201 → event at the receiver, with delivery running: p50 {statistics.median(lat):.0f} ms, "
                     f"p99 {lat[min(len(lat) - 1, int(len(lat) * 0.99))]:.0f} ms ({len(lat):,} events).")
    return "\n".join(lines) + "\n"


async def alternate(server: Server, admin: str, receiver: Receiver, devices: list[Device], plan: Plan,
                    reports: Reports, name: str, *, delivering: bool) -> tuple[PutRun, PutRun]:
    """Rounds of (no subscription, one subscription) PUT runs; the subscription is left in place."""
    conn = await Connection.open(HOST, server.port)
    bases, subscribed = [], []
    try:
        hooks = await call(conn, "GET", "/v1/webhooks", admin, None, 200)
        for hook in hooks["items"]:
            await call(conn, "DELETE", f"/v1/webhooks/{hook['id']}", admin, None, 200)
        for round_no in range(plan.rounds):  # alternated, so that a change in the machine's load hits both
            bases.append(await put_run("no subscription", server, devices, plan, reports))
            hook = await call(conn, "POST", "/v1/webhooks", admin, {"url": receiver.url, "events": EVENTS}, 201)
            before = receiver.count
            subscribed.append(await put_run(name, server, devices, plan, reports))
            if delivering:
                await receiver.wait_for(before + len(subscribed[-1].acked_at), plan.drain_timeout_s)
            if round_no < plan.rounds - 1:
                await call(conn, "DELETE", f"/v1/webhooks/{hook['id']}", admin, None, 200)
    finally:
        conn.close()
    return merged(bases), merged(subscribed)


async def settle(data_dir: Path) -> None:
    """VACUUM ANALYZE, so that the autovacuum the drain's updates call for does not land in a run."""
    async with embedded.database_url("", data_dir) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()


async def run(plan: Plan, work_dir: Path, command: str) -> str:
    load, started, t0 = os.getloadavg(), dt.datetime.now(dt.UTC), time.perf_counter()
    data_dir = work_dir / "data"
    data_dir.mkdir()
    receiver = Receiver()
    await receiver.start()
    reports = Reports(seed=15)
    first = start_server(data_dir, FIELDSYNC_WEBHOOK_CONCURRENCY="0")
    try:
        admin = first.cli("user", "add", "bench-admin", "--role", "admin", "--jurisdiction", "140400",
                          "--token").strip().splitlines()[-1]
        devices = await enroll_devices(first, admin, plan.devices)
        print(f"server A (no delivery worker), {len(devices)} devices in {len(COUNTIES)} counties", flush=True)
        base_a, bare = await alternate(first, admin, receiver, devices, plan, reports,
                                       "one subscription, delivery off", delivering=False)
        last_round = len(bare.acked_at) // plan.rounds  # only the last round's subscription is kept
        pushed = await push_backlog(first, devices[0], reports, plan.backlog_batches)
        backlog = await pending(data_dir)
    finally:
        print(f"  {first.stop()}", flush=True)
    print(f"  backlog: {backlog:,} deliveries (~{last_round:,} from PUTs, {pushed:,} pushed)", flush=True)
    second = start_server(data_dir)
    try:
        print("server B (delivery on)", flush=True)
        drain = await drain_backlog(second, receiver, backlog, plan)
        await settle(data_dir)
        base_b, live = await alternate(second, admin, receiver, devices, plan, reports,
                                       "one subscription, delivery on", delivering=True)
    finally:
        print(f"  {second.stop()}", flush=True)
    lat = latencies(live, receiver)
    pairs = [("A: no delivery worker", base_a, bare), ("B: delivery on", base_b, live)]
    return render(plan, command, started, load, pairs, drain, lat, time.perf_counter() - t0)


async def pending(data_dir: Path) -> int:
    async with embedded.database_url("", data_dir) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'"))
        finally:
            await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases: checks that the benchmark works")
    parser.add_argument("--markdown", type=Path, default=Path(tempfile.gettempdir()) / "fieldsync-bench-webhooks.md")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    command = ".venv/bin/python scripts/bench/webhooks.py" + (" --quick" if args.quick else "")
    work_dir = Path(tempfile.mkdtemp(prefix="fieldsync-bench-webhooks-", dir="/tmp"))
    try:
        markdown = uvloop.run(asyncio.wait_for(run(plan, work_dir, command), 1200))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    args.markdown.write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
