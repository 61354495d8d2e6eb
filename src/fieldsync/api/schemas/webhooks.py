"""Wire types for webhook subscriptions and their deliveries (SPEC §9)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from fieldsync.api.schemas.common import JurisdictionCode

EventType = Literal[
    "report.created",
    "report.updated",
    "report.status_changed",
    "report.merged",
    "incident.report_added",
    "incident.deadline_missed",
    "hazard.overdue",
]
DeliveryState = Literal["pending", "delivered", "dead"]

WebhookUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=2048,
        pattern=r"^https?://[^\x00-\x20\x7f]+$",
        description="http(s) URL of the receiver; loopback, private and link-local hosts are refused",
        examples=["https://command.example.gov.cn/hooks/fieldsync"],
    ),
]


class WebhookCreate(msgspec.Struct):
    url: WebhookUrl
    events: Annotated[list[EventType], msgspec.Meta(min_length=1, max_length=7)]
    jurisdiction: JurisdictionCode | None = None


class WebhookRead(msgspec.Struct):
    id: uuid.UUID
    url: str
    events: list[EventType]
    jurisdiction: str | None
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    disabled_reason: str | None


class WebhookCreated(msgspec.Struct):
    """The new subscription with its signing secret: shown this once, never again."""

    id: uuid.UUID
    url: str
    events: list[EventType]
    jurisdiction: str | None
    secret: str
    created_at: dt.datetime


class WebhookList(msgspec.Struct):
    items: list[WebhookRead]


class AttemptRead(msgspec.Struct):
    attempt: int
    started_at: dt.datetime
    latency_ms: int
    status_code: int | None
    error: str | None


class DeliveryRead(msgspec.Struct):
    id: uuid.UUID
    event_id: uuid.UUID
    type: EventType
    report_id: uuid.UUID
    state: DeliveryState
    attempts: int
    next_attempt_at: dt.datetime | None
    in_flight: bool
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    dead_at: dt.datetime | None
    attempt_log: list[AttemptRead]


class DeliveryPage(msgspec.Struct):
    items: list[DeliveryRead]
    next_cursor: str | None
