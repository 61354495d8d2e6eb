"""Webhook subscriptions for other systems (admins only, SPEC §9): create (the secret is in this
one answer), list, delete, and each subscription's deliveries with a retry for any of them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import asyncpg
from litestar import Controller, delete, get, post
from litestar.params import Parameter

from fieldsync.api.problems import problem_responses
from fieldsync.api.runtime import Runtime
from fieldsync.api.schemas.common import Limit
from fieldsync.api.schemas.webhooks import (
    AttemptRead,
    DeliveryPage,
    DeliveryRead,
    DeliveryState,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookRead,
)
from fieldsync.db.constraints import transaction
from fieldsync.domain.principals import Principal
from fieldsync.services import webhooks

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def _webhook(row: asyncpg.Record) -> WebhookRead:
    return WebhookRead(
        id=row["id"], url=row["url"], events=list(row["events"]), jurisdiction=row["jurisdiction"],
        created_at=row["created_at"], disabled_at=row["disabled_at"], disabled_reason=row["disabled_reason"],
    )


def _delivery(row: asyncpg.Record, attempts: list[asyncpg.Record]) -> DeliveryRead:
    return DeliveryRead(
        id=row["id"], event_id=row["event_id"], type=row["type"], report_id=row["report_id"], state=row["state"],
        attempts=row["attempts"], next_attempt_at=row["next_attempt_at"] if row["state"] == "pending" else None,
        in_flight=row["leased"], last_status=row["last_status"], last_error=row["last_error"],
        created_at=row["created_at"], delivered_at=row["delivered_at"], dead_at=row["dead_at"],
        attempt_log=[
            AttemptRead(attempt=a["attempt"], started_at=a["started_at"], latency_ms=a["latency_ms"],
                        status_code=a["status_code"], error=a["error"])
            for a in attempts
        ],
    )


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    security = SECURITY

    @post(
        "/",
        summary="Subscribe a receiver to report events; the answer carries its signing secret, once",
        responses=problem_responses(400, 401, 403),
    )
    async def create_webhook(
        self, data: WebhookCreate, principal: Principal, conn: asyncpg.Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> WebhookCreated:
        await webhooks.check_target(principal, data.url, allow_private=runtime.settings.webhook_allow_private)
        async with transaction(conn):
            row, secret = await webhooks.create_subscription(
                conn, principal, url=data.url, events=list(data.events), jurisdiction=data.jurisdiction, now=now
            )
        return WebhookCreated(
            id=row["id"], url=row["url"], events=list(row["events"]), jurisdiction=row["jurisdiction"],
            secret=secret, created_at=row["created_at"],
        )

    @get("/", summary="Every webhook subscription (without secrets)", responses=problem_responses(401, 403))
    async def list_webhooks(self, principal: Principal, conn: asyncpg.Connection) -> WebhookList:
        return WebhookList(items=[_webhook(row) for row in await webhooks.list_subscriptions(conn, principal)])

    @delete(
        "/{webhook_id:uuid}",
        status_code=200,
        summary="Delete a subscription with its deliveries; nothing more is sent to it",
        responses=problem_responses(401, 403, 404),
    )
    async def delete_webhook(self, webhook_id: uuid.UUID, principal: Principal, conn: asyncpg.Connection) -> WebhookRead:
        async with transaction(conn):
            row = await webhooks.delete_subscription(conn, principal, webhook_id)
        return _webhook(row)

    @get(
        "/{webhook_id:uuid}/deliveries",
        summary="A subscription's deliveries, newest event first, each with every attempt",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def list_deliveries(
        self,
        webhook_id: uuid.UUID,
        principal: Principal,
        conn: asyncpg.Connection,
        delivery_state: Annotated[
            DeliveryState | None, Parameter(query="state", description="only deliveries in this state")
        ] = None,
        limit: Limit = 50,
        cursor: Annotated[str | None, Parameter(pattern=r"^[1-9][0-9]{0,17}$", description="next_cursor of the page before")] = None,
    ) -> DeliveryPage:
        page = await webhooks.list_deliveries(
            conn, principal, webhook_id, state=delivery_state, before=int(cursor) if cursor else None, limit=limit
        )
        return DeliveryPage(
            items=[_delivery(row, page.attempts[row["id"]]) for row in page.rows],
            next_cursor=str(page.next_before) if page.next_before is not None else None,
        )

    @post(
        "/{webhook_id:uuid}/deliveries/{delivery_id:uuid}/retry",
        status_code=202,
        summary="Send a delivery again now (same webhook-id), with a fresh retry schedule",
        responses=problem_responses(401, 403, 404),
    )
    async def retry_delivery(
        self, webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: Principal, conn: asyncpg.Connection,
        now: dt.datetime,
    ) -> DeliveryRead:
        async with transaction(conn):
            row, attempts = await webhooks.retry_delivery(conn, principal, webhook_id, delivery_id, now=now)
        return _delivery(row, attempts)
