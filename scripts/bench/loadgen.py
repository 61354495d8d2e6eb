"""The load generator: a lean HTTP/1.1 keep-alive client and a closed-loop runner.

Why not httpx or aiohttp? On a 2-core machine the client shares the CPU with the server and
PostgreSQL, so every microsecond the client spends per request is taken from the thing being
measured. This client is an ``asyncio.Protocol`` with the ``httptools`` C parser (already
installed with ``uvicorn[standard]``): about 20-40 µs of client CPU per small request, several
times less than httpx. It speaks only what the benchmark needs: one request at a time per
connection, ``Content-Length`` bodies (or chunked responses), keep-alive, and large request
bodies written in slices with flow control (the transport is paused by the kernel's socket
buffer, so a 20 MB upload never sits in the client's memory twice).

A "simulated device" is one ``Connection`` plus its own bearer token. ``closed_loop`` runs N of
them back to back for a fixed time and keeps only the requests that finished inside the
measured window (after the warm-up): throughput = those requests / window, and their latencies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence

import httptools

SLICE = 256 * 1024


class HTTPError(Exception):
    pass


class Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` may not be called concurrently on it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._done: asyncio.Future[tuple[int, bytes]] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed = False

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: cls(host, port), host, port)
        return conn

    # --- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment] - uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HTTPError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._writable.set()
        self._fail(HTTPError(f"connection lost: {exc!r}"))

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # --- httptools callbacks ------------------------------------------------------------------
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result((self._parser.get_status_code(), b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    # --- API ------------------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: bytes = b"",
        body: bytes | Sequence[bytes | memoryview] = b"",
        timeout: float = 120.0,
    ) -> tuple[int, bytes]:
        """Send one request (``headers`` as ready ``Name: value\\r\\n`` lines) and await the reply.

        ``body`` may be a list of parts, sent in order without joining them.
        """
        if self._closed or self._transport is None:
            raise HTTPError("connection is closed")
        parts = [body] if isinstance(body, (bytes, bytearray, memoryview)) else list(body)
        length = sum(len(p) for p in parts)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {length}\r\n"
        ).encode() + headers + b"\r\n"
        self._body = []
        self._done = asyncio.get_running_loop().create_future()
        transport = self._transport
        if length <= SLICE:
            transport.write(head + b"".join(parts))
        else:
            transport.write(head)
            for part in parts:
                view = memoryview(part)
                for start in range(0, len(view), SLICE):
                    if not self._writable.is_set():
                        await self._writable.wait()
                    if self._closed:
                        break
                    transport.write(view[start : start + SLICE])
        return await asyncio.wait_for(self._done, timeout)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def bearer(token: str, content_type: str | None = None) -> bytes:
    lines = f"Authorization: Bearer {token}\r\n"
    if content_type:
        lines += f"Content-Type: {content_type}\r\n"
    return lines.encode()


@dataclasses.dataclass
class LoadResult:
    """What a closed-loop run measured inside its window."""

    concurrency: int
    window_s: float
    latencies_s: list[float]
    statuses: dict[int, int]
    errors: int
    first_error: str | None = None
    bytes_sent: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def rate(self) -> float:
        return self.requests / self.window_s if self.window_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1000 if self.latencies_s else float("nan")

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)


Work = Callable[[int], Awaitable[int]]
"""One unit of work for worker ``i``: does one request, returns its status (or a pseudo-status)."""


async def closed_loop(
    work: Work, *, concurrency: int, warmup_s: float, duration_s: float, ok: Callable[[int], bool]
) -> LoadResult:
    """Run ``concurrency`` workers back to back; measure those that finish inside the window."""
    started = time.perf_counter()
    window_start = started + warmup_s
    window_end = window_start + duration_s
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures = 0
    first_error: list[str] = []

    async def worker(i: int) -> None:
        nonlocal failures
        while True:
            t0 = time.perf_counter()
            if t0 >= window_end:
                return
            try:
                status = await work(i)
            except Exception as exc:  # noqa: BLE001 - counted and reported, never hidden
                t1 = time.perf_counter()
                if window_start <= t1 <= window_end:
                    failures += 1
                if not first_error:
                    first_error.append(repr(exc))
                await asyncio.sleep(0.05)
                continue
            t1 = time.perf_counter()
            if window_start <= t1 <= window_end:
                statuses[status] = statuses.get(status, 0) + 1
                if ok(status):
                    latencies.append(t1 - t0)
                else:
                    failures += 1

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return LoadResult(concurrency, duration_s, latencies, statuses, failures, first_error[0] if first_error else None)
