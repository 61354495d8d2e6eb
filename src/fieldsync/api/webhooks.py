"""Webhook subscriptions for other systems (admins only, SPEC §9): create (the secret is in this
one answer), list, delete, and each subscription's deliveries with a retry for any of them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import Parameter

from fieldsync.api.deps import Connection
from fieldsync.api.problems import problem_responses
from fieldsync.api.runtime import Runtime
from fieldsync.api.schemas.common import Limit
from fieldsync.api.schemas.webhooks import (
    AttemptRead,
    DeliveryPage,
    DeliveryRead,
    DeliveryState,
    EventType,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookRead,
)
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal
from fieldsync.domain.webhooks import DeliveryView, SubscriptionView
from fieldsync.services import webhooks

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]


def _events(view: SubscriptionView) -> list[EventType]:
    return list(view.events)  # type: ignore[arg-type]  # the table's check keeps them to EventType


def _webhook(view: SubscriptionView) -> WebhookRead:
    return WebhookRead(
        id=view.id, url=view.url, events=_events(view), jurisdiction=view.jurisdiction, created_at=view.created_at,
        disabled_at=view.disabled_at, disabled_reason=view.disabled_reason,
    )


def _delivery(view: DeliveryView) -> DeliveryRead:
    return DeliveryRead(
        # view.type is a str from the table; its check constraint keeps it to the EventType names
        id=view.id, event_id=view.event_id, type=view.type, report_id=view.report_id,  # type: ignore[arg-type]
        state=view.state, attempts=view.attempts, next_attempt_at=view.next_attempt_at, in_flight=view.in_flight,
        last_status=view.last_status, last_error=view.last_error, created_at=view.created_at,
        delivered_at=view.delivered_at, dead_at=view.dead_at,
        attempt_log=[
            AttemptRead(attempt=a.attempt, started_at=a.started_at, latency_ms=a.latency_ms,
                        status_code=a.status_code, error=a.error)
            for a in view.attempt_log
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
        self, data: WebhookCreate, principal: Principal, conn: Connection, runtime: Runtime,
        now: dt.datetime,
    ) -> WebhookCreated:
        await webhooks.check_target(principal, data.url, allow_private=runtime.settings.webhook_allow_private)
        async with transaction(conn):
            view, secret = await webhooks.create_subscription(
                conn, principal, url=data.url, events=list(data.events), jurisdiction=data.jurisdiction, now=now
            )
        return WebhookCreated(
            id=view.id, url=view.url, events=_events(view), jurisdiction=view.jurisdiction, secret=secret,
            created_at=view.created_at,
        )

    @get("/", summary="Every webhook subscription (without secrets)", responses=problem_responses(401, 403))
    async def list_webhooks(self, principal: Principal, conn: Connection) -> WebhookList:
        return WebhookList(items=[_webhook(view) for view in await webhooks.list_subscriptions(conn, principal)])

    @delete(
        "/{webhook_id:uuid}",
        status_code=200,
        summary="Delete a subscription with its deliveries; nothing more is sent to it",
        responses=problem_responses(401, 403, 404),
    )
    async def delete_webhook(self, webhook_id: uuid.UUID, principal: Principal, conn: Connection) -> WebhookRead:
        async with transaction(conn):
            view = await webhooks.delete_subscription(conn, principal, webhook_id)
        return _webhook(view)

    @get(
        "/{webhook_id:uuid}/deliveries",
        summary="A subscription's deliveries, newest event first, each with every attempt",
        responses=problem_responses(400, 401, 403, 404),
    )
    async def list_deliveries(
        self,
        webhook_id: uuid.UUID,
        principal: Principal,
        conn: Connection,
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
            items=[_delivery(view) for view in page.items],
            next_cursor=str(page.next_before) if page.next_before is not None else None,
        )

    @post(
        "/{webhook_id:uuid}/deliveries/{delivery_id:uuid}/retry",
        status_code=202,
        summary="Send a delivery again now (same webhook-id), with a fresh retry schedule",
        responses=problem_responses(401, 403, 404),
    )
    async def retry_delivery(
        self, webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: Principal, conn: Connection,
        now: dt.datetime,
    ) -> DeliveryRead:
        async with transaction(conn):
            view = await webhooks.retry_delivery(conn, principal, webhook_id, delivery_id, now=now)
        return _delivery(view)
