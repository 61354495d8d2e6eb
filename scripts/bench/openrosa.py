"""OpenRosa vs JSON API benchmark: the same report with one ~200 KB photo, sent the way ODK Collect
sends it and the way the JSON API's field app sends it, on one server in one run.

    .venv/bin/python scripts/bench/openrosa.py [--quick] [--markdown PATH]

Issue 13, "Performance": an OpenRosa submission may cost at most 1.3x the server + PostgreSQL
CPU of ``PUT /v1/media/{sha256}`` + ``PUT /v1/reports/{id}`` for the same content.

0. A fresh data directory under /tmp; ``fieldsync serve`` there (embedded PostgreSQL) with
   ``FIELDSYNC_DERIVATIVE_WORKERS=0``, so that preview rendering (the same work for both sides,
   done later in the background) stays out of the request CPU being compared; a supervisor and an
   inspector added with ``fieldsync user add``; a Collect device enrolled through
   ``POST /v1/devices/collect`` and a JSON device through an enrollment code.
1. Rounds, interleaved so both sides see the same machine state: a batch of OpenRosa submissions
   (``POST {base}/submission``, multipart: the instance XML and the photo, as Collect builds it),
   then a batch of JSON submissions (``PUT /v1/media/{sha256}`` then ``PUT /v1/reports/{id}``).
   Every submission is a distinct hazard report with a distinct photo (a unique JPEG comment in
   a ~200 KB noisy JPEG), so no request is a replay. Collect's HEAD check is sent once per
   upload session, not per instance, and is timed apart. Bodies are prepared before the clock.
2. CPU seconds of the server process and of PostgreSQL (postmaster and backends) are read from
   /proc (psutil) around each batch; the result is CPU per submission per side, their ratio, and
   the median wall time per submission.

The client (httpx) runs on the same 2 cores; its CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from photos import noisy_jpeg  # noqa: E402 - scripts/bench is sys.path[0]
from server import Server  # noqa: E402
from sync import Cpu, credit_code, variant  # noqa: E402

from tests.e2e.server import cli  # noqa: E402
from tests.openrosa.collect import headers as collect_headers  # noqa: E402
from tests.openrosa.collect import multipart_body  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Plan:
    name: str
    rounds: int
    batch: int


FULL = Plan("full", rounds=8, batch=15)
QUICK = Plan("quick", rounds=2, batch=5)
TARGET = 1.3


def report(rng: random.Random, n: int, sha256: str) -> dict[str, Any]:
    observed = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))) + dt.timedelta(minutes=n)
    return {
        "kind": "hazard", "category": "coal_mine", "title": f"皮带机保护装置失效 {n}",
        "description": "现场未停机", "jurisdiction": "140431",
        "location": {"lat": round(36.4 + rng.random() / 5, 6), "lon": round(112.2 + rng.random() / 5, 6),
                     "accuracy_m": 5.0},
        "observed_at": observed.isoformat(), "media": [{"sha256": sha256, "role": "before", "caption": None}],
        "enterprise": {"name": f"沁源县第{n}煤业有限公司", "credit_code": credit_code(rng)}, "grade": "general",
    }


def instance_xml(body: dict[str, Any], instance_id: uuid.UUID, filename: str) -> bytes:
    loc = body["location"]
    return (
        "<?xml version='1.0' ?><data id=\"fieldsync_hazard\" version=\"bench\">"
        f"<category>{body['category']}</category><title>{body['title']}</title>"
        f"<description>{body['description']}</description><jurisdiction>{body['jurisdiction']}</jurisdiction>"
        f"<location>{loc['lat']} {loc['lon']} 0.0 {loc['accuracy_m']}</location><address/>"
        f"<observed_at>{body['observed_at']}</observed_at><severity/>"
        f"<enterprise><name>{body['enterprise']['name']}</name>"
        f"<credit_code>{body['enterprise']['credit_code']}</credit_code><industry/></enterprise>"
        f"<grade>{body['grade']}</grade><photos><photo>{filename}</photo><caption/></photos>"
        f"<meta><instanceID>uuid:{instance_id}</instanceID><instanceName>{body['title']}</instanceName></meta></data>"
    ).encode()


@dataclasses.dataclass
class Side:
    label: str
    cpu: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    wall: list[float] = dataclasses.field(default_factory=list)

    def cpu_ms(self, count: int) -> tuple[float, float]:
        server = sum(c[0] for c in self.cpu) * 1000 / count
        pg = sum(c[1] for c in self.cpu) * 1000 / count
        return server, pg


async def openrosa_batch(client: httpx.AsyncClient, base: str, items: list[tuple[bytes, str]], side: Side) -> None:
    for body, content_type in items:
        started = time.perf_counter()
        response = await client.post(f"{base}/submission", content=body,
                                     headers={**collect_headers(), "Content-Type": content_type})
        assert response.status_code == 201, response.text
        side.wall.append(time.perf_counter() - started)


async def json_batch(client: httpx.AsyncClient, token: str, items: list[tuple[bytes, dict[str, Any]]], side: Side) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for photo, body in items:
        started = time.perf_counter()
        sha = body["media"][0]["sha256"]
        uploaded = await client.put(f"/v1/media/{sha}", content=photo, headers={**auth, "Content-Type": "image/jpeg"})
        assert uploaded.status_code == 201, uploaded.text
        put = await client.put(f"/v1/reports/{uuid.uuid4()}", json=body, headers=auth)
        assert put.status_code == 201, put.text
        side.wall.append(time.perf_counter() - started)


def prepare(plan: Plan, photo: bytes, rng: random.Random) -> tuple[list[Any], list[Any]]:
    import hashlib

    collect, api = [], []
    for n in range(plan.rounds * plan.batch * 2):
        data = variant(photo, f"bench-{n}")
        body = report(rng, n, hashlib.sha256(data).hexdigest())
        if n % 2 == 0:
            name = f"1780{n:05d}.jpg"
            collect.append(multipart_body("instance.xml", instance_xml(body, uuid.uuid4(), name), [(name, data)],
                                          incomplete=False))
        else:
            api.append((data, body))
    return collect, api


async def measure(plan: Plan, server: Server, collect_base: str, json_token: str) -> tuple[Side, Side, float]:
    rng = random.Random(13)
    photo, _ = noisy_jpeg(200_000)
    collect_items, api_items = prepare(plan, photo, rng)
    cpu = Cpu(server)
    sides = Side("OpenRosa POST {base}/submission"), Side("PUT /v1/media + PUT /v1/reports")
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        head_started = time.perf_counter()
        head = await client.head(f"{collect_base}/submission", headers=collect_headers())
        head_ms = (time.perf_counter() - head_started) * 1000
        assert head.status_code == 204
        await openrosa_batch(client, collect_base, collect_items[:2], Side("warm-up"))  # warm-up, not counted
        await json_batch(client, json_token, api_items[:2], Side("warm-up"))
        for r in range(plan.rounds):
            chunk = slice(2 + r * plan.batch, 2 + (r + 1) * plan.batch)
            with cpu.span(sides[0].cpu):
                await openrosa_batch(client, collect_base, collect_items[chunk], sides[0])
            with cpu.span(sides[1].cpu):
                await json_batch(client, json_token, api_items[chunk], sides[1])
    return sides[0], sides[1], head_ms


def markdown(plan: Plan, started: dt.datetime, load: tuple[float, ...], sides: tuple[Side, Side], head_ms: float,
             shutdown: str, photo_bytes: int) -> str:
    count = plan.rounds * plan.batch
    rows, totals = [], []
    for side in sides:
        server_ms, pg_ms = side.cpu_ms(count)
        totals.append(server_ms + pg_ms)
        rows.append(f"| {side.label} | {server_ms:.1f} | {pg_ms:.1f} | {server_ms + pg_ms:.1f} | "
                    f"{statistics.median(side.wall) * 1000:.1f} |")
    ratio = totals[0] / totals[1]
    verdict = "met" if ratio <= TARGET else "**missed**"
    command = ".venv/bin/python scripts/bench/openrosa.py" + (" --quick" if plan.name == "quick" else "")
    return "\n".join([
        f"### OpenRosa submission vs JSON API, one ~{photo_bytes // 1000} KB photo ({plan.name}, "
        f"{started:%Y-%m-%d %H:%M} UTC)",
        "",
        f"`{command}` on {os.cpu_count()} cores (load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}); {count} distinct "
        f"submissions per side in {plan.rounds} interleaved batches of {plan.batch}, after 2 warm-ups each; "
        "derivative workers off (FIELDSYNC_DERIVATIVE_WORKERS=0) on both sides.",
        "",
        "| per submission | server CPU ms | PostgreSQL CPU ms | total CPU ms | median wall ms |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"- ratio OpenRosa / JSON API: {totals[0]:.1f} / {totals[1]:.1f} = **{ratio:.2f}×** "
        f"(target ≤ {TARGET}×: {verdict}).",
        f"- Collect's HEAD check (once per upload session): {head_ms:.1f} ms wall.",
        f"- shutdown: {shutdown}",
        "",
    ])


async def run(plan: Plan, work: Path) -> tuple[str, bool]:
    started, load = dt.datetime.now(dt.UTC), os.getloadavg()
    data_dir = work / "data"
    data_dir.mkdir()
    server = Server(data_dir)
    server.env["FIELDSYNC_DERIVATIVE_WORKERS"] = "0"
    shutdown = "not started"
    try:
        server.start()
        extra = {"PYTHONPATH": server.env["PYTHONPATH"]}

        def add(name: str, role: str, jurisdiction: str) -> str:
            out = cli(data_dir, "user", "add", name, "--role", role, "--jurisdiction", jurisdiction, "--token", **extra)
            return out.stdout.strip().splitlines()[-1]

        supervisor = add("bench-supervisor", "supervisor", "140400")
        add("bench-inspector", "inspector", "140431")
        auth = {"Authorization": f"Bearer {supervisor}"}
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            enrolled = (await client.post("/v1/devices/collect", json={"username": "bench-inspector"}, headers=auth)).json()
            code = (await client.post("/v1/enrollments", json={"username": "bench-inspector"}, headers=auth)).json()
            device = (await client.post("/v1/devices/enroll", json={"code": code["code"], "label": "bench"})).json()
        sides = await measure(plan, server, enrolled["server_url"], device["token"])
    finally:
        shutdown = server.stop()
    text = markdown(plan, started, load, sides[:2], sides[2], shutdown, 200_000)
    return text, "LEFT BEHIND" not in shutdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 5: checks the benchmark works")
    parser.add_argument("--markdown", type=Path, help="also write the Markdown section to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    work = Path(tempfile.mkdtemp(prefix="fieldsync-bench-openrosa-"))
    try:
        text, clean = asyncio.run(run(plan, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
