"""Deadlines and a limit on every HTTP connection, at the transport, under the ASGI app.

uvicorn closes a keep-alive connection that stays silent between requests, but nothing else: a
client that sends its headers one byte at a time, stops in the middle of a body, or stops
reading a response keeps its connection (and whatever its request holds: a pooled database
connection, an upload's lock, an export's transaction) for as long as it likes. This protocol
adds, per connection:

- a header deadline: a request's headers must be complete ``header_timeout_s`` after its first
  byte (or after the connection opened), and at most ``MAX_HEADER_BYTES`` long (431 otherwise);
- a body idle limit: no more than ``idle_timeout_s`` of silence while the app waits for body
  bytes (silence while the app itself is not reading does not count);
- a write stall limit: a response the client stops reading is cut off after ``idle_timeout_s``;
- an exchange deadline: the whole body in and the whole response out within
  ``request_timeout_s`` of the headers (a client that reads an export a trickle at a time, just
  often enough never to stall, would otherwise hold its transaction for as long as it likes);
- a connection limit: beyond ``max_connections`` open connections, a new one is answered 503
  ``server.busy`` with Retry-After and closed.

Closing the transport is enough to release what the request holds: uvicorn then answers the
app's ``receive()`` with ``http.disconnect``, so a streaming body read ends (an upload keeps what
arrived and gives back its lock) and Litestar cancels a streaming response (the export rolls
back and returns its connection).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fieldsync import errors

MAX_HEADER_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_s: float
    idle_timeout_s: float
    request_timeout_s: float
    max_connections: int


def _problem(status: int, reason: str, code: str, title: str, headers: dict[str, str]) -> bytes:
    body = json.dumps({"type": f"https://fieldsync.dev/problems/{code}", "title": title, "status": status,
                       "code": code}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/problem+json", "connection: close",
             f"content-length: {len(body)}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines above (``limits`` is set by ``guarded``)."""

    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = "headers"
        self._header_bytes = 0
        self._timers: dict[str, asyncio.TimerHandle] = {}

    # --- timers ----------------------------------------------------------------------------------

    def _arm(self, name: str, delay_s: float) -> None:
        self._disarm(name)
        self._timers[name] = self.loop.call_later(delay_s, self._expired, name)

    def _disarm(self, *names: str) -> None:
        for name in names or tuple(self._timers):
            timer = self._timers.pop(name, None)
            if timer is not None:
                timer.cancel()

    def _expired(self, name: str) -> None:
        self._timers.pop(name, None)
        if name == "body_idle" and self._app_behind():
            self._arm("body_idle", self.limits.idle_timeout_s)  # the app is not reading: not the client's silence
            return
        if self.transport is not None:
            self.logger.info("closing a connection: %s limit reached", name)
            self.transport.abort()  # close() would wait to flush what a stalled client never reads

    def _app_behind(self) -> bool:
        """Body bytes wait that the app has not taken yet (a busy server, a slow lease), or reading
        is paused because too many wait: silence then is the server's, and cutting the client off
        would throw away what it sent."""
        if self.flow is not None and self.flow.read_paused:
            return True
        return self.cycle is not None and bool(self.cycle.body)

    def _refuse(self, status: int, reason: str, code: str, title: str, **headers: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_problem(status, reason, code, title, headers))
            self.transport.close()

    # --- connection and parser callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(503, "Service Unavailable", errors.ServerBusy.code, "The server has too many open connections",
                         **{"retry-after": str(errors.ServerBusy.RETRY_AFTER_S)})
            return
        self._arm("headers", self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "body":
            self._arm("body_idle", self.limits.idle_timeout_s)
        super().data_received(data)
        if self._phase == "headers":  # no end of headers yet: a client streaming endless headers is cut off
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse(431, "Request Header Fields Too Large", errors.HeadersTooLarge.code,
                             errors.HeadersTooLarge.title)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase, self._header_bytes = "headers", 0
        self._arm("headers", self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > MAX_HEADER_BYTES:
            self._refuse(431, "Request Header Fields Too Large", errors.HeadersTooLarge.code,
                         errors.HeadersTooLarge.title)
            return
        super().on_headers_complete()
        self._phase = "body"
        self._disarm("headers")
        self._arm("body_idle", self.limits.idle_timeout_s)
        self._arm("exchange", self.limits.request_timeout_s)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = "done"
        self._disarm("body_idle")

    def on_response_complete(self) -> None:
        self._disarm("exchange", "write_stall")
        super().on_response_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._arm("write_stall", self.limits.idle_timeout_s)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm("write_stall")


def guarded(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class to hand uvicorn as ``http=``, bound to these limits."""
    return type("FieldsyncHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
