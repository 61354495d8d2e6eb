"""Webhook rules that need no I/O: event types, secrets and Standard Webhooks signatures, the
CloudEvents 1.0 body, which targets may be called, what an answer means, and the retry schedule.

Signatures follow Standard Webhooks: ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``"{webhook-id}.{webhook-timestamp}.{body}"`` with the key that is the base64 after ``whsec_``.
The ``webhook-id`` is the CloudEvent ``id``: a redelivery sends the same id (and a fresh timestamp
and signature), so a receiver drops repeats by id.

Answers (Standard Webhooks' conventions): any 2xx is delivered; 410 Gone disables the
subscription; everything else (3xx included: redirects are not followed, the target is pinned to
the address that was checked) is a failure retried on the schedule, no earlier than a
``Retry-After`` the receiver sent.

The default schedule waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after successive failures
(the first retry within a minute, the last attempt more than 24 h after the first), each wait
stretched by up to ``jitter`` (never shortened, so the 24 h hold) so that receivers coming back
from an outage are not hit by every replica at the same instant.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import email.utils
import hashlib
import hmac
import ipaddress
import json
import random
import secrets
import uuid
from typing import Any, Literal
from urllib.parse import urlsplit

from fieldsync import errors

EVENT_TYPES: tuple[str, ...] = (
    "report.created",
    "report.updated",
    "report.status_changed",
    "report.merged",
    "incident.report_added",
    "incident.deadline_missed",
    "hazard.overdue",
)
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
CLOUDEVENT_SOURCE = "/v1/reports"
CONTENT_TYPE = "application/cloudevents+json"
MAX_URL_LENGTH = 2048
MAX_RETRY_AFTER_S = 24 * 3600

Verdict = Literal["delivered", "retry", "gone"]


def new_secret() -> str:
    """A fresh signing secret as shown to the admin once: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the base64 after the prefix, decoded)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, *, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header of one delivery attempt."""
    return {
        "content-type": CONTENT_TYPE,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id=message_id, timestamp=timestamp, body=body),
    }


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def visible_data(data: dict[str, Any], subscription_path: str | None) -> dict[str, Any]:
    """The event's data as one subscription receives it: private ``_`` keys dropped, and the
    survivor of a merge named only when it lies in the subscription's subtree too."""
    shown = {key: value for key, value in data.items() if not key.startswith("_")}
    into_path = data.get("_into_path")
    if subscription_path is not None and isinstance(into_path, str) and not into_path.startswith(subscription_path):
        shown["into"] = None
    return shown


def cloud_event(
    *, event_id: uuid.UUID, event_type: str, report_id: uuid.UUID, occurred_at: dt.datetime, data: dict[str, Any]
) -> bytes:
    """The CloudEvents 1.0 structured-mode JSON body (the same bytes on every attempt)."""
    envelope = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": CLOUDEVENT_SOURCE,
        "type": event_type,
        "time": rfc3339(occurred_at),
        "subject": str(report_id),
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


# --- targets ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL taken apart: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # lower case; IDNA-encoded for names, bare for IP literals
    port: int
    path: str  # path and query, never empty

    @property
    def ip_literal(self) -> bool:
        return _is_ip(self.host)

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return shown if self.port == default else f"{shown}:{self.port}"


def _invalid(detail: str) -> errors.WebhookUrlInvalid:
    return errors.WebhookUrlInvalid(detail, field="url")


def parse_target(url: str) -> Target:
    """Check a webhook URL's form: http(s), a host, no credentials or fragment."""
    if len(url) > MAX_URL_LENGTH or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise _invalid(f"the URL must be at most {MAX_URL_LENGTH} characters without spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname or ""
    except ValueError as exc:
        raise _invalid(f"the URL cannot be parsed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise _invalid("the URL must start with http:// or https://")
    if not host:
        raise _invalid("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise _invalid("credentials in the URL are not accepted: receivers verify the signature instead")
    if parts.fragment or url.endswith("#"):
        raise _invalid("the URL must not have a fragment")
    if not _is_ip(host):
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _invalid("the URL's host is not a valid domain name") from None
        labels = host.rstrip(".").split(".")
        if not all(0 < len(label) <= 63 and label.replace("-", "").isalnum() for label in labels):
            raise _invalid("the URL's host is not a valid domain name")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=url, scheme=parts.scheme, host=host, port=port or (443 if parts.scheme == "https" else 80),
                  path=path)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


LOCAL_NAMES = ("localhost", "localhost.", "localhost.localdomain")


def name_is_local(host: str) -> bool:
    """Names that mean this machine whatever DNS says."""
    lowered = host.lower()
    return lowered in LOCAL_NAMES or lowered.rstrip(".").endswith(".localhost")


def address_allowed(address: str) -> bool:
    """Only globally routable unicast addresses: loopback, private, link-local, shared (CGN),
    documentation, reserved and multicast ranges are refused (IPv4-mapped IPv6 as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def refused_target(detail: str) -> errors.WebhookTargetForbidden:
    return errors.WebhookTargetForbidden(detail, field="url")


# --- answers and the schedule -------------------------------------------------------------------


def verdict(status_code: int) -> Verdict:
    if 200 <= status_code < 300:
        return "delivered"
    if status_code == 410:
        return "gone"
    return "retry"


def parse_retry_after(value: str | None, *, now: dt.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), capped at 24 h."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER_S))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return min(max((when - now).total_seconds(), 0.0), float(MAX_RETRY_AFTER_S))


DEFAULT_DELAYS_S: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Waits after the 1st, 2nd, … failed attempt; after the last one the delivery is dead."""

    delays_s: tuple[float, ...] = DEFAULT_DELAYS_S
    jitter: float = 0.2

    @property
    def max_attempts(self) -> int:
        return len(self.delays_s) + 1

    def next_delay(self, attempt: int, *, retry_after_s: float | None = None, rng: random.Random | None = None) -> float | None:
        """Seconds until the attempt after failed ``attempt`` (1-based), or None: dead-letter it."""
        if attempt >= self.max_attempts:
            return None
        base = self.delays_s[attempt - 1] * (1 + self.jitter * (rng or random).random())
        return max(base, retry_after_s or 0.0)


# --- read models ----------------------------------------------------------------------------------

DeliveryState = Literal["pending", "delivered", "dead"]


@dataclasses.dataclass(frozen=True, slots=True)
class SubscriptionView:
    id: uuid.UUID
    url: str
    events: tuple[str, ...]
    jurisdiction: str | None
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    disabled_reason: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptView:
    attempt: int
    started_at: dt.datetime
    latency_ms: int
    status_code: int | None
    error: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryView:
    id: uuid.UUID
    event_id: uuid.UUID
    type: str
    report_id: uuid.UUID
    state: DeliveryState
    attempts: int
    next_attempt_at: dt.datetime | None  # pending only; while in flight, the end of the lease
    in_flight: bool
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    dead_at: dt.datetime | None
    attempt_log: tuple[AttemptView, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryPageView:
    items: tuple[DeliveryView, ...]
    next_before: int | None  # the cursor of the next (older) page
