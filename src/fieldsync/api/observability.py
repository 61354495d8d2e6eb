"""Per-request observability: a request id (echoed in ``X-Request-ID``), one JSON log line, and
Prometheus request counts and latencies labelled by route template, method and status."""

from __future__ import annotations

import os
import re
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

REQUEST_ID_HEADER = "x-request-id"
_PATH_KEY = re.compile(r"(/openrosa/key/)[^/]*", re.IGNORECASE)
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
log = structlog.get_logger("fieldsync.access")


class Metrics:
    """The app's own registry, so that several apps in one process (tests) do not collide.

    Under ``serve`` with several processes, ``prometheus_client`` keeps every process's values in
    files under ``PROMETHEUS_MULTIPROC_DIR`` (``fieldsync.serving``), and a scrape reads them all:
    counts and histograms are summed, a job gauge is the value its latest scrape read."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fieldsync_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fieldsync_http_request_duration_seconds",
            "HTTP request latency by route and method",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.jobs_pending = Gauge(
            "fieldsync_jobs_pending",
            "Background jobs queued, by kind (read from the database at each scrape)",
            ["kind"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.jobs_oldest_due_s = Gauge(
            "fieldsync_jobs_oldest_due_seconds",
            "How long the longest-waiting due job of each kind has been due (0 when none is due)",
            ["kind"],
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )

    def exposition(self) -> bytes:
        """A scrape's text: this registry's, or with several serve processes, all of theirs."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        multiprocess.MultiProcessCollector(everyone)
        return generate_latest(everyone)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def redact_path(path: str) -> str:
    """The path with an OpenRosa device token (the one token allowed in a URL) replaced by ``***``."""
    return _PATH_KEY.sub(r"\1***", path)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.fullmatch(candidate) else None
    return None


def observability_middleware_factory(metrics: Metrics) -> Any:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            request_id = _incoming_request_id(scope) or uuid.uuid4().hex
            scope.setdefault("state", {})["request_id"] = request_id
            started = time.perf_counter()
            status_holder = {"status": 500}

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status_holder["status"] = message["status"]
                    headers = list(message.get("headers", []))
                    headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            with structlog.contextvars.bound_contextvars(request_id=request_id):
                try:
                    await app(scope, receive, send_with_id)
                finally:
                    elapsed = time.perf_counter() - started
                    route = scope.get("path_template") or "unmatched"
                    method = scope.get("method", "")
                    method = method if method in KNOWN_METHODS else "OTHER"  # a label set a client cannot grow
                    status = status_holder["status"]
                    metrics.requests.labels(route, method, str(status)).inc()
                    metrics.latency.labels(route, method).observe(elapsed)
                    principal = scope.get("state", {}).get("principal")
                    log.info(
                        "request",
                        method=method,
                        path=redact_path(str(scope.get("path", ""))),
                        route=route,
                        status=status,
                        duration_ms=round(elapsed * 1000, 2),
                        principal=principal.username if principal else None,
                        device_id=str(principal.device_id) if principal and principal.device_id else None,
                    )

        return wrapped

    return middleware
