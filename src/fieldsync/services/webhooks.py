"""Webhook subscriptions and their deliveries, as admins manage them (SPEC §9).

Only admins subscribe other systems: a subscription receives events about reports anywhere in
its jurisdiction's subtree (every report when it names none), whoever the admin is. The secret is
generated here, returned once by ``create_subscription`` and never again; it is stored as is
because the server signs with it (a hash could not sign).

A target must not be this machine or the bureau's internal network (SSRF): its URL is refused
when the host is a loopback, private, link-local or otherwise non-global address, or a name that
resolves to one, unless ``FIELDSYNC_WEBHOOK_ALLOW_PRIVATE=true``. A name that does not resolve
(yet) is accepted: the delivery worker resolves it again before every call and refuses it then
if it has come to point inside (DNS rebinding), so this check is an early answer, not the guard.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from fieldsync import errors
from fieldsync.db import reference
from fieldsync.db import webhooks as q
from fieldsync.domain import webhooks as rules
from fieldsync.domain.principals import Principal, Role, require_role
from fieldsync.outbound import resolve

REGISTRATION_RESOLVE_TIMEOUT_S = 2.0


def _subscription(row: asyncpg.Record) -> rules.SubscriptionView:
    return rules.SubscriptionView(
        id=row["id"], url=row["url"], events=tuple(row["events"]), jurisdiction=row["jurisdiction"],
        created_at=row["created_at"], disabled_at=row["disabled_at"], disabled_reason=row["disabled_reason"],
    )


def _delivery(row: asyncpg.Record, attempts: list[asyncpg.Record]) -> rules.DeliveryView:
    return rules.DeliveryView(
        id=row["id"], event_id=row["event_id"], type=row["type"], report_id=row["report_id"], state=row["state"],
        attempts=row["attempts"], next_attempt_at=row["next_attempt_at"] if row["state"] == "pending" else None,
        in_flight=row["leased"], last_status=row["last_status"], last_error=row["last_error"],
        created_at=row["created_at"], delivered_at=row["delivered_at"], dead_at=row["dead_at"],
        attempt_log=tuple(
            rules.AttemptView(attempt=a["attempt"], started_at=a["started_at"], latency_ms=a["latency_ms"],
                              status_code=a["status_code"], error=a["error"])
            for a in attempts
        ),
    )


async def check_target(actor: Principal, url: str, *, allow_private: bool) -> rules.Target:
    """The parsed URL, or why this server will not call it. It may ask DNS (up to 2 s): call it
    before opening the transaction that creates the subscription."""
    require_role(actor, Role.ADMIN)
    target = rules.parse_target(url)
    if allow_private:
        return target
    if rules.name_is_local(target.host):
        raise rules.refused_target(f"{target.host} is this machine")
    if target.ip_literal:
        addresses = [target.host]
    else:
        try:
            addresses = await resolve(target.host, target.port, timeout_s=REGISTRATION_RESOLVE_TIMEOUT_S)
        except errors.WebhookTargetUnresolved:
            return target
    refused = [address for address in addresses if not rules.address_allowed(address)]
    if refused:
        raise rules.refused_target(
            f"{target.host} is {refused[0]}, a loopback, private or link-local address "
            "(FIELDSYNC_WEBHOOK_ALLOW_PRIVATE=true allows it)"
        )
    return target


async def create_subscription(
    conn: asyncpg.Connection,
    actor: Principal,
    *,
    url: str,
    events: list[str],
    jurisdiction: str | None,
    now: dt.datetime,
) -> tuple[rules.SubscriptionView, str]:
    """The new subscription and its secret (shown this once); ``url`` passed ``check_target``."""
    require_role(actor, Role.ADMIN)
    rules.parse_target(url)
    path: str | None = None
    if jurisdiction is not None:
        place = await reference.get_jurisdiction(conn, jurisdiction)
        if place is None:
            raise errors.JurisdictionUnknown(f"no jurisdiction with code {jurisdiction}", field="jurisdiction")
        path = place["path"]
    secret = rules.new_secret()
    row = await q.insert_subscription(
        conn, url=url, events=list(dict.fromkeys(events)), jurisdiction=jurisdiction, jurisdiction_path=path,
        secret=secret, created_by=actor.user_id, now=now,
    )
    return _subscription(row), secret


async def list_subscriptions(conn: asyncpg.Connection, actor: Principal) -> list[rules.SubscriptionView]:
    require_role(actor, Role.ADMIN)
    return [_subscription(row) for row in await q.list_subscriptions(conn)]


async def delete_subscription(
    conn: asyncpg.Connection, actor: Principal, subscription_id: uuid.UUID
) -> rules.SubscriptionView:
    """Stop and forget a subscription, its deliveries and their attempts."""
    require_role(actor, Role.ADMIN)
    row = await q.delete_subscription(conn, subscription_id)
    if row is None:
        raise errors.WebhookNotFound()
    return _subscription(row)


async def list_deliveries(
    conn: asyncpg.Connection,
    actor: Principal,
    subscription_id: uuid.UUID,
    *,
    state: str | None,
    before: int | None,
    limit: int,
) -> rules.DeliveryPageView:
    """A page of the subscription's deliveries, newest event first, each with its attempts."""
    require_role(actor, Role.ADMIN)
    if await q.get_subscription(conn, subscription_id) is None:
        raise errors.WebhookNotFound()
    rows = await q.list_deliveries(conn, subscription_id, state=state, before_seq=before, limit=limit + 1)
    page = rows[:limit]
    attempts = await q.list_attempts(conn, [row["id"] for row in page])
    return rules.DeliveryPageView(
        items=tuple(_delivery(row, attempts[row["id"]]) for row in page),
        next_before=page[-1]["seq"] if len(rows) > limit else None,
    )


async def retry_delivery(
    conn: asyncpg.Connection, actor: Principal, subscription_id: uuid.UUID, delivery_id: uuid.UUID, *, now: dt.datetime
) -> rules.DeliveryView:
    """Send a delivery again, due now with a fresh schedule and the same ``webhook-id``: a dead
    letter, or a delivered event a receiver lost. Re-enables a subscription a 410 disabled."""
    require_role(actor, Role.ADMIN)
    if await q.get_subscription(conn, subscription_id) is None:
        raise errors.WebhookNotFound()
    row = await q.rearm_delivery(conn, subscription_id, delivery_id, now=now)
    if row is None:
        raise errors.WebhookDeliveryNotFound()
    await q.wake_workers(conn)
    attempts = await q.list_attempts(conn, [row["id"]])
    return _delivery(row, attempts[row["id"]])
