"""Sync and resumable-upload benchmark: one run, a real ``fieldsync serve``, ceilings side by side.

    .venv/bin/python scripts/bench/sync.py [--quick] [--markdown PATH]

Issue 4, "Performance". Loopback only, every phase bounded in count (and the whole run by an
alarm), stops by itself. In order:

0. A fresh data directory under /tmp; ``fieldsync serve`` there with no database URL (embedded
   PostgreSQL) and ``FIELDSYNC_LOG_LEVEL=warning``; an inspector (140431), a city supervisor
   (140400) and a bulk author are added with ``fieldsync user add [--token]`` against the same
   data directory (``tests.e2e.server.cli``). This process joins the same cluster through
   ``fieldsync.db.embedded`` (unix socket) for the ceilings and the bulk load.
1. Push: batches of 1000 distinct hazard reports (no photos) through ``POST /v1/sync/push`` as
   JSON and as MessagePack, interleaved batch by batch with the ceiling: a raw asyncpg
   ``INSERT INTO reports (...) SELECT ... FROM unnest(...)`` of 1000 equivalent rows (same
   columns, body jsonb and content_hash computed by the same code as the server) into the same
   table. One warm-up round is not counted. The ceiling's rows are deleted afterwards.
2. Pull: the inspector's and the supervisor's incremental pull of a 500-change page: take a
   cursor (what a caught-up client holds: ``base`` = the current snapshot), push 500 new
   reports, then time ``GET /v1/sync/pull?cursor=...&limit=500``; median of several rounds. First
   with 10k reports in the database, then after a set-based bulk load (server-side
   ``generate_series``, ``change_xid`` from the column default ``pg_current_xact_id()``, version-1
   rows in report_versions too, then VACUUM ANALYZE) to 1M reports (``--quick``: 200k).
3. Upload: a 20 MB noisy JPEG (about 8 MP) as ``PUT /v1/media/{sha256}`` in one request and via
   tus (``POST /v1/uploads``, then 1 MiB ``PATCH`` chunks with ``Upload-Checksum: sha256``),
   alternating, each image distinct (a unique JPEG comment segment), waiting for the server's
   derivative queue to drain between uploads.
4. Stops the server with SIGINT and checks that no postgres process is left for its data dir.

The client (httpx) runs on the same 2 cores as the server and PostgreSQL. Request bodies and
chunk checksums are prepared before the clock starts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SRC = REPO / "src"
sys.path[:0] = [str(SRC), str(REPO)]

from photos import noisy_jpeg  # noqa: E402 - scripts/bench is sys.path[0]
from server import Server  # noqa: E402 - scripts/bench is sys.path[0]

from fieldsync.api.reports import to_submission  # noqa: E402
from fieldsync.api.schemas.reports import HazardReport  # noqa: E402
from fieldsync.db import embedded  # noqa: E402
from fieldsync.db.pool import connect  # noqa: E402
from fieldsync.domain.reports import credit_code_check_char  # noqa: E402
from fieldsync.services.sync import Cursor  # noqa: E402
from tests.e2e.server import cli  # noqa: E402
from tests.support import hazard_report  # noqa: E402

HOST = "127.0.0.1"
MiB = 1024 * 1024
BATCH = 1000
PAGE = 500
TARGET_PUSH_RATIO = 0.30
TARGET_PUSH_RATE = 10_000
TARGET_PULL_RATIO = 1.5
COUNTIES = ("140403", "140404", "140405", "140406", "140423", "140425",
            "140426", "140427", "140428", "140429", "140430", "140431")


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    push_rounds: int  # measured rounds (each: one JSON batch, one MessagePack batch, two ceiling batches)
    pull_rounds: int
    small: int
    big: int
    upload_rounds: int
    photo_bytes: int
    alarm_s: int


FULL = Plan("full", push_rounds=4, pull_rounds=7, small=10_000, big=1_000_000, upload_rounds=3,
            photo_bytes=20_000_000, alarm_s=600)
QUICK = Plan("quick", push_rounds=1, pull_rounds=3, small=10_000, big=200_000, upload_rounds=1,
             photo_bytes=20_000_000, alarm_s=180)


class Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Timeout("the benchmark ran past its time bound")


# --- the server -----------------------------------------------------------------------------------


class Cpu:
    """CPU seconds of the server process and of PostgreSQL (postmaster and backends) over a span."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def _read(self) -> tuple[float, float]:
        server_pids, pg_pids = self.server.cpu_pids()
        totals = []
        for pids in (server_pids, pg_pids):
            total = 0.0
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    t = psutil.Process(pid).cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
            totals.append(total)
        return totals[0], totals[1]

    @contextlib.contextmanager
    def span(self, into: list[tuple[float, float]]) -> Iterator[None]:
        a = self._read()
        yield
        b = self._read()
        into.append((b[0] - a[0], b[1] - a[1]))


# --- report bodies ----------------------------------------------------------------------------------

_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
TITLES = ("主斜井皮带机保护装置失效", "井下瓦斯监测探头超期未校验", "危化品仓库消防通道堵塞", "尾矿库排洪设施淤堵",
          "配电室未设置挡鼠板", "有限空间作业未审批", "厂房疏散指示标志损坏", "液氨储罐压力表失灵")


def credit_code(rng: random.Random) -> str:
    first = "91" + "140431" + "".join(rng.choice(_ALPHABET) for _ in range(9))
    return first + str(credit_code_check_char(first))


def make_reports(count: int, rng: random.Random, now: dt.datetime) -> list[dict[str, Any]]:
    """Distinct hazard reports spread over 沁源县 and the last 60 days (few near-duplicates)."""
    enterprises = [credit_code(rng) for _ in range(max(1, count // 3))]
    tz = dt.timezone(dt.timedelta(hours=8))
    bodies = []
    for _ in range(count):
        observed = (now - dt.timedelta(seconds=rng.randrange(3600, 60 * 86400))).astimezone(tz)
        body = hazard_report(
            title=rng.choice(TITLES),
            description=f"现场检查发现问题 {rng.randrange(10**6)}, 已责令整改",
            location={"lat": round(36.3 + rng.random() * 0.5, 6), "lon": round(112.0 + rng.random() * 0.6, 6),
                      "accuracy_m": 8.0},
            observed_at=observed.isoformat(timespec="seconds"),
            enterprise={"name": "沁源县某煤业有限公司", "credit_code": rng.choice(enterprises), "industry": "coal_mine"},
            grade=rng.choice(("general", "general", "general", "major")),
        )
        body["id"] = str(uuid.uuid4())
        bodies.append(body)
    return bodies


def push_body(reports: list[dict[str, Any]], *, msgpack: bool) -> bytes:
    mutations = [{"mutation_id": str(uuid.uuid4()), "op": "upsert_report", "report": r} for r in reports]
    return (msgspec.msgpack.encode if msgpack else msgspec.json.encode)({"mutations": mutations})


_ROW_COLUMNS = ("id", "kind", "category", "title", "description", "jurisdiction", "lat", "lon", "accuracy_m",
                "observed_at", "severity", "grade", "credit_code", "incident_id", "stage", "body", "content_hash")
_ROW_TYPES = ("uuid", "text", "text", "text", "text", "text", "float8", "float8", "float8", "timestamptz", "text",
              "text", "text", "uuid", "text", "jsonb", "bytea")
RAW_INSERT = f"""
    INSERT INTO reports ({", ".join(_ROW_COLUMNS)}, author_id, device_id, received_at, updated_at)
    SELECT v.*, $1::uuid, NULL::uuid, $2::timestamptz, $2::timestamptz
    FROM unnest({", ".join(f"${i + 3}::{t}[]" for i, t in enumerate(_ROW_TYPES))}) AS v({", ".join(_ROW_COLUMNS)})
"""


def raw_columns(reports: list[dict[str, Any]]) -> list[list[Any]]:
    """The same rows as the server would store: the submission built by the server's own code."""
    decoder = msgspec.json.Decoder(HazardReport)
    subs = []
    for r in reports:
        data = decoder.decode(msgspec.json.encode(r))
        subs.append(to_submission(data.id, data))  # type: ignore[arg-type]
    columns = []
    for name in _ROW_COLUMNS:
        columns.append([s.body if name == "body" else getattr(s, name) for s in subs])
    return columns


# --- phases -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PushResult:
    label: str
    seconds: list[float] = dataclasses.field(default_factory=list)
    cpu: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float:
        return BATCH * len(self.seconds) / sum(self.seconds)

    @property
    def median_rate(self) -> float:
        return BATCH / statistics.median(self.seconds)

    def cpu_ms(self) -> tuple[float, float]:
        n = len(self.cpu)
        return (1000 * sum(c[0] for c in self.cpu) / n, 1000 * sum(c[1] for c in self.cpu) / n)


async def push_once(client: httpx.AsyncClient, token: str, body: bytes, *, msgpack: bool) -> float:
    ctype = "application/msgpack" if msgpack else "application/json"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": ctype, "Accept": ctype}
    t0 = time.perf_counter()
    response = await client.post("/v1/sync/push", content=body, headers=headers)
    elapsed = time.perf_counter() - t0
    if response.status_code != 200:
        raise RuntimeError(f"push -> {response.status_code}: {response.text[:500]}")
    decoded = (msgspec.msgpack.decode if msgpack else msgspec.json.decode)(response.content)
    statuses = {r["status"] for r in decoded["results"]}
    if statuses != {"applied"} or len(decoded["results"]) != BATCH:
        bad = next(r for r in decoded["results"] if r["status"] != "applied")
        raise RuntimeError(f"push not all applied: {statuses}; e.g. {bad}")
    return elapsed


async def push_phase(plan: Plan, client: httpx.AsyncClient, conn: Any, server: Server, token: str,
                     author_id: uuid.UUID, rng: random.Random) -> tuple[list[PushResult], int]:
    now = dt.datetime.now(dt.UTC)
    cpu = Cpu(server)
    results = {k: PushResult(k) for k in ("push JSON", "push MessagePack", "raw unnest INSERT")}
    raw_ids: list[uuid.UUID] = []
    for round_no in range(plan.push_rounds + 1):
        counted = round_no > 0  # round 0 warms up the server, the plans and the caches
        # Each round: JSON push, ceiling, MessagePack push, ceiling — so both see the same machine.
        for label in ("push JSON", "raw unnest INSERT", "push MessagePack", "raw unnest INSERT"):
            reports = make_reports(BATCH, rng, now)
            target = results[label]
            spans: list[tuple[float, float]] = []
            if label.startswith("push"):
                msgpack = label.endswith("MessagePack")
                body = push_body(reports, msgpack=msgpack)
                with cpu.span(spans):
                    elapsed = await push_once(client, token, body, msgpack=msgpack)
            else:
                columns = raw_columns(reports)
                raw_ids.extend(columns[0])
                with cpu.span(spans):
                    t0 = time.perf_counter()
                    await conn.execute(RAW_INSERT, author_id, now, *columns)
                    elapsed = time.perf_counter() - t0
            if counted:
                target.seconds.append(elapsed)
                target.cpu.extend(spans)
            print(f"  round {round_no}{'' if counted else ' (warm-up)'} {label:<18} {BATCH / elapsed:>9,.0f} reports/s"
                  f"  ({elapsed * 1000:.0f} ms)", flush=True)
    # The ceiling's rows are not part of the data set the pull phase measures.
    await conn.execute("DELETE FROM report_duplicates WHERE report_id = ANY($1::uuid[]) OR candidate_id = ANY($1::uuid[])",
                       raw_ids)
    await conn.execute("DELETE FROM reports WHERE id = ANY($1::uuid[])", raw_ids)
    await conn.execute("VACUUM (ANALYZE) reports")
    return list(results.values()), len(raw_ids)


BULK_SQL = """
WITH ins AS (
    INSERT INTO reports (id, kind, category, title, description, jurisdiction, lat, lon, accuracy_m, observed_at,
                         grade, credit_code, body, content_hash, author_id, received_at, updated_at)
    SELECT b.id, 'hazard', 'coal_mine', b.title, b.description, b.jurisdiction, b.lat, b.lon, 8.0, b.observed_at,
           b.grade, b.credit_code, b.body, sha256(convert_to(b.body::text, 'UTF8')), $3::uuid, now(), now()
    FROM (
        SELECT a.*, jsonb_build_object(
            'kind', 'hazard', 'category', 'coal_mine', 'title', a.title, 'description', a.description,
            'jurisdiction', a.jurisdiction,
            'location', jsonb_build_object('lat', a.lat, 'lon', a.lon, 'accuracy_m', 8.0),
            'observed_at', to_char(a.observed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD"T"HH24:MI:SS"+08:00"'),
            'media', '[]'::jsonb, 'grade', a.grade,
            'enterprise', jsonb_build_object('name', '某煤业有限公司', 'credit_code', a.credit_code,
                                             'industry', 'coal_mine')) AS body
        FROM (
            SELECT gen_random_uuid() AS id,
                   ($4::text[])[1 + g % cardinality($4::text[])] AS title,
                   '现场检查发现问题 ' || g || ', 已责令整改' AS description,
                   ($5::text[])[1 + g % cardinality($5::text[])] AS jurisdiction,
                   35.5 + random() * 1.5 AS lat, 112.0 + random() * 1.2 AS lon,
                   now() - (random() * interval '730 days') - interval '1 hour' AS observed_at,
                   CASE WHEN g % 4 = 0 THEN 'major' ELSE 'general' END AS grade,
                   ($6::text[])[1 + g % cardinality($6::text[])] AS credit_code
            FROM generate_series($1::bigint, $2::bigint) AS g
        ) a
    ) b
    RETURNING id, body, content_hash, author_id, received_at
)
INSERT INTO report_versions (report_id, version, body, content_hash, author_id, created_at)
SELECT id, 1, body, content_hash, author_id, received_at FROM ins
"""


async def bulk_load(conn: Any, *, to: int, author_id: uuid.UUID, chunk: int = 100_000) -> tuple[int, float]:
    """Grow ``reports`` to ``to`` rows set-based; each chunk is its own transaction (its own xid,
    stamped by the column default, as any insert is). Returns (rows added, seconds incl. VACUUM ANALYZE)."""
    have = await conn.fetchval("SELECT count(*) FROM reports")
    if have >= to:
        return 0, 0.0
    rng = random.Random(7)
    codes = [credit_code(rng) for _ in range(500)]  # small: a subscript walks a text array
    t0 = time.perf_counter()
    start = have + 1
    added = 0
    # A large load drops the secondary indexes of reports and builds them again afterwards (the
    # usual bulk-load practice; the end state is the same indexes over the same rows). The primary
    # key and reports_change_idx, which the pull reads, are maintained row by row like any insert.
    rebuild: list[str] = []
    if to - have > 100_000:
        rebuild = [r["indexdef"] for r in await conn.fetch(
            """SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'reports'
                  AND indexname NOT IN ('reports_pkey', 'reports_change_idx')
                  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'reports'::regclass)""")]
        for definition in rebuild:
            name = definition.split(" INDEX ", 1)[1].split(" ON ", 1)[0].strip()
            await conn.execute(f"DROP INDEX {name}")
    while added < to - have:
        n = min(chunk, to - have - added)
        await conn.execute(BULK_SQL, start + added, start + added + n - 1, author_id, list(TITLES), list(COUNTIES),
                           codes)
        added += n
        print(f"    bulk: {have + added:,} reports ({time.perf_counter() - t0:.0f} s)", flush=True)
    if rebuild:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for definition in rebuild:
            await conn.execute(definition)
        await conn.execute("RESET maintenance_work_mem")
        print(f"    rebuilt {len(rebuild)} indexes ({time.perf_counter() - t0:.0f} s)", flush=True)
    await conn.execute("VACUUM (ANALYZE) reports, report_versions")
    return added, time.perf_counter() - t0


@dataclasses.dataclass
class PullResult:
    reports: int
    inspector_ms: list[float] = dataclasses.field(default_factory=list)
    supervisor_ms: list[float] = dataclasses.field(default_factory=list)

    @staticmethod
    def median(values: list[float]) -> float:
        return statistics.median(values)


async def caught_up_cursor(conn: Any) -> str:
    """The cursor a client holds after its last page: ``base`` = the snapshot where that pass ended."""
    return Cursor(base=await conn.fetchval("SELECT pg_current_snapshot()::text")).encode()


async def timed_pull(client: httpx.AsyncClient, token: str, cursor: str) -> tuple[float, int]:
    headers = {"Authorization": f"Bearer {token}"}
    t0 = time.perf_counter()
    response = await client.get("/v1/sync/pull", params={"cursor": cursor, "limit": PAGE}, headers=headers)
    elapsed = time.perf_counter() - t0
    if response.status_code != 200:
        raise RuntimeError(f"pull -> {response.status_code}: {response.text[:500]}")
    page = msgspec.json.decode(response.content)
    return elapsed, len(page["changes"])


async def pull_phase(plan: Plan, client: httpx.AsyncClient, conn: Any, inspector: str, supervisor: str,
                     rng: random.Random) -> PullResult:
    now = dt.datetime.now(dt.UTC)
    result = PullResult(await conn.fetchval("SELECT count(*) FROM reports"))
    for round_no in range(plan.pull_rounds + 1):
        cursor = await caught_up_cursor(conn)
        half = make_reports(PAGE, rng, now)
        await push_once_page(client, inspector, half)
        timings = []
        for token in (inspector, supervisor):
            elapsed, count = await timed_pull(client, token, cursor)
            if count != PAGE:
                raise RuntimeError(f"expected {PAGE} changes, pulled {count}")
            timings.append(elapsed * 1000)
        if round_no > 0:  # round 0 warms the statement plans
            result.inspector_ms.append(timings[0])
            result.supervisor_ms.append(timings[1])
        print(f"  round {round_no}{'' if round_no else ' (warm-up)'}: inspector {timings[0]:.0f} ms, "
              f"supervisor {timings[1]:.0f} ms", flush=True)
    return result


async def push_once_page(client: httpx.AsyncClient, token: str, reports: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/sync/push", content=push_body(reports, msgpack=False),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    if response.status_code != 200:
        raise RuntimeError(f"push -> {response.status_code}: {response.text[:300]}")


# --- photos ---------------------------------------------------------------------------------------------


def variant(jpeg: bytes, tag: str) -> bytes:
    """A distinct, equally valid JPEG: SOI, a comment segment naming the variant, then the original."""
    text = f"fieldsync bench {tag} {uuid.uuid4()}".encode()
    return b"\xff\xd8\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


async def drain_jobs(conn: Any, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while await conn.fetchval("SELECT count(*) FROM jobs"):
        if time.monotonic() > deadline:
            print(f"  ! derivative queue not empty after {timeout_s:.0f} s; going on", flush=True)
            return
        await asyncio.sleep(0.2)


async def put_photo(client: httpx.AsyncClient, token: str, data: bytes) -> float:
    sha = hashlib.sha256(data).hexdigest()
    t0 = time.perf_counter()
    response = await client.put(f"/v1/media/{sha}", content=data,
                                headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"})
    elapsed = time.perf_counter() - t0
    if response.status_code != 201:
        raise RuntimeError(f"PUT media -> {response.status_code}: {response.text[:300]}")
    return elapsed


async def tus_photo(client: httpx.AsyncClient, token: str, data: bytes, chunk: int = MiB) -> tuple[float, int]:
    sha = hashlib.sha256(data).hexdigest()
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in {"sha256": sha, "content_type": "image/jpeg", "filename": "big.jpg"}.items())
    view = memoryview(data)
    chunks = [(off, bytes(view[off:off + chunk])) for off in range(0, len(data), chunk)]
    sums = [f"sha256 {base64.b64encode(hashlib.sha256(c).digest()).decode()}" for _, c in chunks]
    auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    t0 = time.perf_counter()
    created = await client.post("/v1/uploads", headers={**auth, "Upload-Length": str(len(data)),
                                                        "Upload-Metadata": meta})
    if created.status_code != 201:
        raise RuntimeError(f"tus POST -> {created.status_code}: {created.text[:300]}")
    url = created.headers["location"]
    last: httpx.Response | None = None
    for (offset, body), checksum in zip(chunks, sums, strict=True):
        last = await client.patch(url, content=body, headers={
            **auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset),
            "Upload-Checksum": checksum})
        if last.status_code != 204:
            raise RuntimeError(f"tus PATCH at {offset} -> {last.status_code}: {last.text[:300]}")
    elapsed = time.perf_counter() - t0
    assert last is not None
    if last.headers.get("fieldsync-media-sha256") != sha:
        raise RuntimeError("tus upload did not become the media object")
    return elapsed, len(chunks) + 1


@dataclasses.dataclass
class UploadResult:
    size: int
    pixels: tuple[int, int]
    put_s: list[float] = dataclasses.field(default_factory=list)
    tus_s: list[float] = dataclasses.field(default_factory=list)
    tus_requests: int = 0

    def mbps(self, seconds: list[float]) -> float:
        return self.size / 1e6 / statistics.median(seconds)


async def upload_phase(plan: Plan, client: httpx.AsyncClient, conn: Any, token: str) -> UploadResult:
    base, pixels = await asyncio.to_thread(noisy_jpeg, plan.photo_bytes)
    result = UploadResult(len(base), pixels)
    print(f"  photo: {len(base) / 1e6:.1f} MB JPEG, {pixels[0]}x{pixels[1]} "
          f"({pixels[0] * pixels[1] / 1e6:.1f} MP)", flush=True)
    for round_no in range(plan.upload_rounds + 1):
        for how in ("PUT", "tus"):
            data = variant(base, f"{how}-{round_no}")
            await drain_jobs(conn)
            if how == "PUT":
                elapsed = await put_photo(client, token, data)
            else:
                elapsed, result.tus_requests = await tus_photo(client, token, data)
            if round_no > 0:
                (result.put_s if how == "PUT" else result.tus_s).append(elapsed)
            print(f"  round {round_no}{'' if round_no else ' (warm-up)'} {how:<4} {len(data) / 1e6 / elapsed:6.1f} MB/s"
                  f" ({elapsed * 1000:.0f} ms)", flush=True)
    await drain_jobs(conn)
    return result


# --- report --------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(plan: Plan, command: str, started: dt.datetime, load: tuple[float, float, float], push: list[PushResult],
             small: PullResult, big: PullResult, bulk: tuple[int, float], up: UploadResult, shutdown: str,
             elapsed_s: float) -> str:
    by = {p.label: p for p in push}
    ceiling = by["raw unnest INSERT"]
    lines = [
        "## Sync and resumable upload",
        "",
        f"`{command}` — {started:%Y-%m-%d %H:%M} UTC, plan `{plan.name}`, `nproc` = {os.cpu_count()}, load average "
        f"before the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min), Python "
        f"{platform.python_version()}, run took {elapsed_s:.0f} s. One `fieldsync serve` (1 worker, embedded "
        "PostgreSQL 18, `FIELDSYNC_LOG_LEVEL=warning`) on 127.0.0.1; the client (httpx) and the ceilings run in the "
        "benchmark process on the same 2 cores.",
        "",
        f"### Push: {BATCH}-report batches, no photos ({plan.push_rounds} counted rounds after 1 warm-up, "
        "interleaved: JSON, ceiling, MessagePack, ceiling)",
        "",
        "| path | reports/s (total) | reports/s (median batch) | ms per batch (median) | server CPU ms / batch "
        "| PostgreSQL CPU ms / batch | vs ceiling |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in push:
        s, pg = p.cpu_ms()
        ratio = p.rate / ceiling.rate
        lines.append(f"| {p.label} | {p.rate:,.0f} | {p.median_rate:,.0f} | {statistics.median(p.seconds) * 1000:.0f} "
                     f"| {s:.0f} | {pg:.0f} | {ratio:.0%} |")
    lines += [""]
    for p in push[:2]:
        ratio = p.rate / ceiling.rate
        lines.append(f"- {p.label}: {ratio:.0%} of the ceiling (target ≥ {TARGET_PUSH_RATIO:.0%}: "
                     f"{verdict(ratio >= TARGET_PUSH_RATIO)}); {p.rate:,.0f} reports/s (target ≥ "
                     f"{TARGET_PUSH_RATE:,}: {verdict(p.rate >= TARGET_PUSH_RATE)}).")
    big_label = f"{big.reports / 1e6:.1f}M" if big.reports >= 1e6 else f"{big.reports / 1e3:.0f}k"
    lines += [
        "",
        f"### Pull: a {PAGE}-change page (incremental: cursor taken, {PAGE} new reports pushed, then "
        f"`GET /v1/sync/pull?cursor=…&limit={PAGE}`), median of {plan.pull_rounds} rounds after 1 warm-up",
        "",
        "| reports in the database | inspector (own reports) ms | supervisor (city subtree) ms |",
        "|---|---|---|",
        f"| {small.reports:,} | {small.median(small.inspector_ms):.0f} (min {min(small.inspector_ms):.0f}, "
        f"max {max(small.inspector_ms):.0f}) | {small.median(small.supervisor_ms):.0f} "
        f"(min {min(small.supervisor_ms):.0f}, max {max(small.supervisor_ms):.0f}) |",
        f"| {big.reports:,} | {big.median(big.inspector_ms):.0f} (min {min(big.inspector_ms):.0f}, "
        f"max {max(big.inspector_ms):.0f}) | {big.median(big.supervisor_ms):.0f} "
        f"(min {min(big.supervisor_ms):.0f}, max {max(big.supervisor_ms):.0f}) |",
        "",
    ]
    for who, a, b in (("inspector", small.inspector_ms, big.inspector_ms),
                      ("supervisor", small.supervisor_ms, big.supervisor_ms)):
        ratio = statistics.median(b) / statistics.median(a)
        lines.append(f"- {who}: {big_label} / {small.reports / 1e3:.0f}k = {ratio:.2f}× (target ≤ "
                     f"{TARGET_PULL_RATIO}×: {verdict(ratio <= TARGET_PULL_RATIO)}).")
    if plan.name == "quick":
        lines.append(f"- `--quick`: the large case is {big.reports:,} reports, not 1M.")
    lines.append(f"- Bulk load to the large case: {bulk[0]:,} reports (+ their version-1 rows) set-based in "
                 f"{bulk[1]:.0f} s including VACUUM ANALYZE; `change_xid` from the column default.")
    put_mbps, tus_mbps = up.mbps(up.put_s), up.mbps(up.tus_s)
    lines += [
        "",
        f"### Upload: one {up.size / 1e6:.1f} MB JPEG ({up.pixels[0]}×{up.pixels[1]}, "
        f"{up.pixels[0] * up.pixels[1] / 1e6:.1f} MP), median of {plan.upload_rounds} after 1 warm-up, a new image "
        "every time, derivative queue drained before each",
        "",
        "| how | MB/s | seconds (median) | requests |",
        "|---|---|---|---|",
        f"| `PUT /v1/media/{{sha256}}` | {put_mbps:.1f} | {statistics.median(up.put_s):.2f} | 1 |",
        f"| tus: POST + 1 MiB PATCHes with `Upload-Checksum: sha256` | {tus_mbps:.1f} | "
        f"{statistics.median(up.tus_s):.2f} | {up.tus_requests} |",
        "",
        f"- tus / PUT = {tus_mbps / put_mbps:.0%} (no target in issue 4; for information).",
        "",
        f"Shutdown: {shutdown}.",
        "",
    ]
    return "\n".join(lines)


async def run(plan: Plan, work: Path) -> tuple[str, bool]:
    command = ".venv/bin/python scripts/bench/sync.py" + (" --quick" if plan.name == "quick" else "")
    started = dt.datetime.now(dt.UTC)
    t_start = time.perf_counter()
    load = os.getloadavg()
    print(f"fieldsync sync benchmark ({plan.name}) in {work}; nproc {os.cpu_count()}, load {load}", flush=True)
    data_dir = work / "data"
    data_dir.mkdir()
    server = Server(data_dir)
    shutdown = "not started"
    text = ""
    try:
        server.start()
        extra = {"PYTHONPATH": server.env["PYTHONPATH"]}

        def add(name: str, role: str, jurisdiction: str) -> str:
            out = cli(data_dir, "user", "add", name, "--role", role, "--jurisdiction", jurisdiction, "--token",
                      **extra).stdout
            return out.strip().splitlines()[-1]

        inspector = add("bench-inspector", "inspector", "140431")
        supervisor = add("bench-supervisor", "supervisor", "140400")
        add("bench-bulk", "inspector", "140400")
        rng = random.Random(2026)
        async with embedded.database_url("", data_dir) as dsn:
            conn = await connect(dsn)
            try:
                users = {r["username"]: r["id"] for r in await conn.fetch("SELECT username, id FROM users")}
                limits = httpx.Timeout(120.0)
                async with httpx.AsyncClient(base_url=server.base_url, timeout=limits) as client:
                    print("(1) push vs raw unnest INSERT", flush=True)
                    push, _ = await push_phase(plan, client, conn, server, inspector, users["bench-inspector"], rng)
                    for p in push:
                        s, pg = p.cpu_ms()
                        print(f"  {p.label:<18} {p.rate:>9,.0f} reports/s; CPU/batch server {s:.0f} ms, pg {pg:.0f} ms",
                              flush=True)
                    print(f"(2) pull at {plan.small:,} reports", flush=True)
                    await bulk_load(conn, to=plan.small, author_id=users["bench-bulk"])
                    small = await pull_phase(plan, client, conn, inspector, supervisor, rng)
                    print(f"(2) growing to {plan.big:,} reports", flush=True)
                    bulk = await bulk_load(conn, to=plan.big, author_id=users["bench-bulk"])
                    big = await pull_phase(plan, client, conn, inspector, supervisor, rng)
                    print("(3) 20 MB photo: PUT vs tus", flush=True)
                    up = await upload_phase(plan, client, conn, inspector)
            finally:
                await conn.close()
    finally:
        shutdown = server.stop()
        print(f"shutdown: {shutdown}", flush=True)
    text = markdown(plan, command, started, load, push, small, big, bulk, up, shutdown,
                    time.perf_counter() - t_start)
    return text, "LEFT BEHIND" not in shutdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about a minute; 10k vs 200k reports for the pull")
    parser.add_argument("--markdown", type=Path, help="also write the Markdown section to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(plan.alarm_s)
    work = Path(tempfile.mkdtemp(prefix="fieldsync-bench-sync-"))
    try:
        text, clean = asyncio.run(run(plan, work))
    finally:
        signal.alarm(0)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
