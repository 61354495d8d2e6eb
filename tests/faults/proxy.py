"""A fault-injecting TCP proxy on 127.0.0.1 (stdlib asyncio), run in a thread of its own.

Put it between devices and the server, or between the server and a dependency (the object
store), and switch its behaviour while traffic flows (Toxiproxy's vocabulary, scaled down):

    ``Mode.PASS``          forward both ways (the default)
    ``Mode.DROP_ANSWER``   forward the request; when the first byte of a connection's answer comes
                           back, reset the client's connection instead (with probability
                           ``drop_rate``). The server has processed the request; the client never
                           learns the result. Clients that open one connection per request (no
                           keep-alive) make this a decision per answer
    ``Mode.STALL``         accept connections and read what they send, but never forward or answer
                           (a store that hangs); the connections stay open until the mode changes
                           back or the proxy stops
    ``Mode.RESET_BODY``    forward the first ``reset_after`` bytes a client sends on a connection,
                           then reset both sides (a phone losing its signal mid-body)
    ``Mode.REFUSE``        reset every new connection at once (nothing listening behind)

Counters (``dropped``, ``reset``, ``stalled``, ``connections``) let a test prove that the fault it
wanted did happen; ``dropped_answers`` keeps the first bytes of every answer it withheld, so a
test can compare what the client was not told with what it was told when it asked again. Resets use ``SO_LINGER 0`` so the peer sees a real RST, not a clean close.
"""

from __future__ import annotations

import asyncio
import enum
import random
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Mode(enum.Enum):
    PASS = "pass"
    DROP_ANSWER = "drop_answer"
    STALL = "stall"
    RESET_BODY = "reset_body"
    REFUSE = "refuse"


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST: linger on, timeout zero."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class FaultProxy:
    """``start()`` returns the port it listens on; ``mode`` and its knobs may change at any time."""

    def __init__(self, upstream_host: str, upstream_port: int = 0, *, seed: int = 16) -> None:
        """Upstream is ``host, port``, or the path of a Unix socket (``port`` 0)."""
        self.upstream = (upstream_host, upstream_port)
        self.mode = Mode.PASS
        self.drop_rate = 1.0
        self.reset_after = 64 * 1024
        self.dropped = 0
        self.reset = 0
        self.stalled = 0
        self.connections = 0
        self.dropped_answers: list[bytes] = []
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.port = 0

    # --- control (any thread) -------------------------------------------------------------------

    def start(self) -> int:
        self._thread.start()
        self.port = self._call(self._listen)
        return self.port

    def set(self, mode: Mode, **knobs: Any) -> None:
        """Switch behaviour; leaving ``STALL`` or ``REFUSE`` also cuts the connections held so far."""
        for name, value in knobs.items():
            if not hasattr(self, name):
                raise AttributeError(name)
            setattr(self, name, value)
        previous, self.mode = self.mode, mode
        if previous in (Mode.STALL, Mode.REFUSE) and mode is not previous:
            self._call(self._cut_all)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _call(self, coroutine_function: Callable[[], Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine_function(), self._loop)
        return future.result(timeout=10)

    # --- the proxy (its own loop) ---------------------------------------------------------------

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _cut_all(self) -> None:
        for writer in list(self._open):
            _abort(writer)
        self._open.clear()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut_all()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(client_writer)
        try:
            if self.mode is Mode.REFUSE:
                self.reset += 1
                _abort(client_writer)
                return
            if self.mode is Mode.STALL:
                self.stalled += 1
                while await client_reader.read(65536):
                    pass
                return
            try:
                host, port = self.upstream
                upstream_reader, upstream_writer = await (
                    asyncio.open_connection(host, port) if port else asyncio.open_unix_connection(host))
            except OSError:
                _abort(client_writer)
                return
            self._open.add(upstream_writer)
            try:
                await asyncio.gather(
                    self._requests(client_reader, upstream_writer, client_writer),
                    self._answers(upstream_reader, client_writer, upstream_writer),
                )
            finally:
                self._open.discard(upstream_writer)
                upstream_writer.close()
        except (ConnectionError, OSError):
            pass
        finally:
            self._open.discard(client_writer)
            client_writer.close()

    async def _requests(
        self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter, client: asyncio.StreamWriter
    ) -> None:
        sent = 0
        try:
            while data := await reader.read(65536):
                if self.mode is Mode.STALL:
                    continue
                if self.mode is Mode.RESET_BODY and sent + len(data) >= self.reset_after:
                    self.reset += 1  # counted first: the client is cut off even if the server left already
                    try:
                        upstream.write(data[: max(self.reset_after - sent, 0)])
                        await upstream.drain()
                    finally:
                        _abort(upstream)
                        _abort(client)
                    return
                sent += len(data)
                upstream.write(data)
                await upstream.drain()
        except (ConnectionError, OSError):
            _abort(client)
            return
        if upstream.can_write_eof():
            upstream.write_eof()

    async def _answers(
        self, reader: asyncio.StreamReader, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> None:
        first = True
        try:
            while data := await reader.read(65536):
                if self.mode is Mode.STALL:
                    continue
                if first and self.mode is Mode.DROP_ANSWER and self._rng.random() < self.drop_rate:
                    self.dropped += 1
                    self.dropped_answers.append(data)
                    _abort(client)
                    _abort(upstream)
                    return
                first = False
                client.write(data)
                await client.drain()
        except (ConnectionError, OSError):
            _abort(upstream)
            return
        if client.can_write_eof():
            client.write_eof()
