"""The soak: steady mixed load on one ``fieldsync serve`` for N minutes, watching for leaks.

Devices loop, each iteration a fresh queue sent the way the fleet sends (``tests/faults/fleet``:
report PUT or push, photo PUT or tus, resent until answered) followed by the reads a phone makes
(its pull feed from its cursor, one report's detail, one thumbnail); a supervisor reads the
report list, the statistics and a CSV export. Every request and answer goes into one history.

Every ``sample_s`` the server is measured: RSS, open file descriptors, and the connections its
pool holds in PostgreSQL (``pg_stat_activity``, ``application_name = 'fieldsync'``). After the
warm-up (the first quarter), the mean of each metric over the last third of the samples must be
within 10 % of its mean over the first third after warm-up (connections, being few, may also
differ by one): flat, not growing. The error rate must be 0: no 5xx, no request without an
answer, no refusal of what a device sent. At the end the history checker runs over everything
acknowledged.

``scripts/soak`` is the command line; ``tests/faults/test_soak.py`` runs ``scripts/soak --quick``
(2 minutes) so CI does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import statistics
import time
from typing import Any

import asyncpg
import httpx

from tests.faults.fleet import Call, Device, History, Policy, make_photo, make_report

GROWTH = 0.10


@dataclasses.dataclass
class Sample:
    at: float
    rss: int
    fds: int
    connections: int


@dataclasses.dataclass
class Verdict:
    minutes: float
    requests: int
    errors: list[str]
    growth: dict[str, float]
    flat: dict[str, bool]
    samples: list[Sample]
    statuses: dict[str, int]
    p50_ms: float
    p99_ms: float
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(self.flat.values()) and not self.problems

    def summary(self) -> str:
        lines = [f"soak: {self.minutes:g} min, {self.requests} requests ({self.requests / (self.minutes * 60):.1f}/s), "
                 f"statuses {self.statuses}, p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms",
                 f"errors: {len(self.errors)}" + (f" e.g. {self.errors[:3]}" if self.errors else "")]
        for name in ("rss", "fds", "connections"):
            lines.append(f"{name}: growth after warm-up {self.growth[name] * 100:+.1f} % "
                         f"({'flat' if self.flat[name] else 'GROWING'})")
        lines.append(f"history checker: {len(self.problems)} problems" + (f" e.g. {self.problems[:3]}"
                                                                          if self.problems else ""))
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "ok": self.ok}, indent=1)


def judge(samples: list[Sample], warmup_s: float) -> tuple[dict[str, float], dict[str, bool]]:
    """Growth of each metric: last third of the post-warm-up samples against the first third."""
    start = samples[0].at + warmup_s
    after = [s for s in samples if s.at >= start]
    third = max(1, len(after) // 3)
    growth, flat = {}, {}
    for name, slack in (("rss", 0.0), ("fds", 0.0), ("connections", 1.0)):
        first = statistics.mean(getattr(s, name) for s in after[:third])
        last = statistics.mean(getattr(s, name) for s in after[-third:])
        growth[name] = (last - first) / first if first else 0.0
        flat[name] = last <= first * (1 + GROWTH) + slack
    return growth, flat


class Soak:
    """``run()`` the load for ``minutes`` against ``server`` (a ``tests.faults.harness.Server``)."""

    def __init__(self, server: Any, *, admin_token: str, devices: list[tuple[str, str, str]],
                 minutes: float, sample_s: float = 5.0, pace_s: float = 1.0, seed: int = 19) -> None:
        self.server = server
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.enrolled = devices
        self.minutes = minutes
        self.sample_s = sample_s
        self.pace_s = pace_s
        self.rng = random.Random(seed)
        self.history = History()
        self.devices: list[Device] = []
        self.samples: list[Sample] = []
        self.until = 0.0

    async def run(self) -> Verdict:
        self.until = time.monotonic() + self.minutes * 60
        sampler = asyncio.create_task(self.sample())
        tasks = [self.device_loop(index, entry) for index, entry in enumerate(self.enrolled)]
        await asyncio.gather(*tasks, self.supervisor_loop())
        sampler.cancel()
        try:
            await sampler
        except asyncio.CancelledError:
            pass
        return self.verdict()

    # --- load -----------------------------------------------------------------------------------

    async def device_loop(self, index: int, entry: tuple[str, str, str]) -> None:
        name, user, token = entry
        policy = Policy(max_backoff_s=1.0, deadline_s=60, chunk_bytes=8192)
        cursor: str | None = None
        iteration = 0
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=60) as client:
            while time.monotonic() < self.until:
                photos = [make_photo(self.rng, width=96, height=72)]
                queue = [make_report(self.rng, jurisdiction="140431", photos=photos, device=name),
                         make_report(self.rng, jurisdiction="140431", photos=[], device=name)]
                device = Device(name, token, user=user, reports=queue,
                                report_mode=("put", "push")[(index + iteration) % 2],
                                photo_mode=("put", "tus")[(index // 2 + iteration) % 2],
                                photos_first=iteration % 3 != 2, seed=self.rng.getrandbits(32))
                self.devices.append(device)
                await device.run(client, self.history, policy)
                cursor = await self.reads(client, device, cursor, photos[0].sha256, queue[0].id)
                iteration += 1
                await asyncio.sleep(self.pace_s * (0.5 + self.rng.random()))

    async def reads(self, client: httpx.AsyncClient, device: Device, cursor: str | None, sha256: str,
                    report_id: Any) -> str | None:
        """A phone's reads after sending: its pull feed from its cursor, a detail, a thumbnail."""
        auth = device.auth
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = await self.call(client, device.name, "pull", "GET", "/v1/sync/pull", params=params, headers=auth)
            if page is None or page.status_code != 200:
                return cursor
            body = page.json()
            cursor = body["next_cursor"]
            if not body["has_more"]:
                break
        await self.call(client, device.name, "report.get", "GET", f"/v1/reports/{report_id}", headers=auth)
        await self.call(client, device.name, "thumbnail", "GET", f"/v1/media/{sha256}/thumbnail", headers=auth,
                        expect=(200, 404))
        return cursor

    async def supervisor_loop(self) -> None:
        reads = [("list", "/v1/reports", {"limit": 100}), ("stats", "/v1/stats", {"group_by": "category"}),
                 ("export", "/v1/export", {"format": "csv", "jurisdiction": "140431"})]
        async with httpx.AsyncClient(base_url=self.server.base_url, timeout=60) as client:
            while time.monotonic() < self.until:
                for op, path, params in reads:
                    await self.call(client, "supervisor", op, "GET", path, params=params, headers=self.admin)
                await asyncio.sleep(self.pace_s * 2)

    async def call(self, client: httpx.AsyncClient, who: str, op: str, method: str, path: str,
                   expect: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response | None:
        started = time.monotonic()
        record = Call(who, op, path, started, started)
        response = None
        try:
            response = await client.request(method, path, **kwargs)
            record.status = response.status_code
            if response.status_code not in expect:
                record.answer = response.text[:300]
                self.history.failures.append(f"{who} {op} {path}: {response.status_code} {response.text[:200]}")
        except httpx.TransportError as exc:
            record.error = exc.__class__.__name__
        record.ended = time.monotonic()
        self.history.calls.append(record)
        return response

    # --- measuring ------------------------------------------------------------------------------

    async def sample(self) -> None:
        conn = await asyncpg.connect(self.server.database_url())
        try:
            while True:
                pooled = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fieldsync'")
                self.samples.append(Sample(time.monotonic(), self.server.rss_bytes(), self.server.open_files(),
                                           int(pooled)))
                await asyncio.sleep(self.sample_s)
        finally:
            await conn.close()

    def verdict(self) -> Verdict:
        history = self.history
        errors = [f"{c.device} {c.op} {c.key[:60]}: {c.status or c.error}" for c in history.calls
                  if c.status is None or c.status >= 500]
        errors += history.failures
        growth, flat = judge(self.samples, warmup_s=self.minutes * 60 / 4)
        return Verdict(
            minutes=self.minutes, requests=len(history.calls), errors=errors, growth=growth, flat=flat,
            samples=self.samples, statuses={str(k): v for k, v in sorted(history.statuses().items(), key=str)},
            p50_ms=history.percentile(0.5) * 1000, p99_ms=history.percentile(0.99) * 1000,
        )
