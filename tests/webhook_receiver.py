"""A real webhook receiver on 127.0.0.1 for the webhook tests: a threaded HTTP/1.1 server that
checks every request with the ``standardwebhooks`` package (signature and timestamp tolerance)
and answers as the test scripted it: a status (with headers), or a hang until released.

Scripted answers are used in order, one per request; once they run out every request gets
``default``. ``on_request`` runs in the handler thread before the answer is written and
``after_reply`` once it has been sent (the crash test freezes the server in the first and kills it
in the second, so that the answer is on the wire and the server cannot have recorded it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    hang: bool = False


HANG = Reply(hang=True)


@dataclasses.dataclass(frozen=True)
class Received:
    webhook_id: str
    timestamp: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    verify_error: str | None
    answered: int | None
    at: float  # time.monotonic()

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of parallel deliveries would see SYNs
    # dropped and retried a second later, which is the receiver's fault, not the sender's
    request_queue_size = 128
    # closing must not wait for handler threads: one may sit on an idle keep-alive connection that
    # the sender (still running) has no reason to close
    block_on_close = False
    daemon_threads = True


class Receiver:
    def __init__(self, default: Reply = Reply()) -> None:
        self.secret: str | None = None
        self.default = default
        self.script: list[Reply] = []
        self.received: list[Received] = []
        self.on_request: Callable[[Received], None] | None = None
        self.after_reply: Callable[[Received], None] | None = None
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="webhook-receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/fieldsync"

    def answer(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ids(self) -> list[str]:
        with self._lock:
            return [r.webhook_id for r in self.received]

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.event for r in self.received]

    async def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Wait (without blocking the event loop) until ``count`` requests have arrived."""
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} webhook requests, got {len(self.received)}: {self.ids()}")
            await asyncio.sleep(0.02)
        with self._lock:
            return list(self.received)

    def wait_for_sync(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} webhook requests, got {len(self.received)}: {self.ids()}")
            time.sleep(0.05)
        with self._lock:
            return list(self.received)

    def _next_reply(self) -> Reply:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[bool, str | None]:
        if self.secret is None:
            return False, "no secret given to the receiver"
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            return False, str(exc)
        return True, None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length", "0"))
        body = handler.rfile.read(length)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        verified, error = self._verify(body, headers)
        reply = self._next_reply()
        record = Received(
            webhook_id=headers.get("webhook-id", ""), timestamp=headers.get("webhook-timestamp", ""),
            headers=headers, body=body, verified=verified, verify_error=error,
            answered=None if reply.hang else reply.status, at=time.monotonic(),
        )
        with self._lock:
            self.received.append(record)
        if self.on_request is not None:
            self.on_request(record)
        if reply.hang:
            self.release.wait(timeout=60)
            return
        payload = b"ok" if reply.status < 300 else b"scripted failure"
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()
        if self.after_reply is not None:
            self.after_reply(record)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # an idle keep-alive connection is dropped after this many seconds

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                return

        return Handler
