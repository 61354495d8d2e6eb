"""SQL for webhooks: subscriptions, the event outbox, deliveries and their attempts.

``emit`` writes events and their deliveries in one statement inside the caller's transaction. An
event about a report change is written only when some enabled subscription wants it (an install
without subscriptions pays one cheap statement per change); a deadline event is always written,
because its row is also the mark that makes it happen once (``webhook_events_dedupe_key``).

``claim`` takes due deliveries for one worker in a short transaction of its own: per subscription
at most ``room`` (so one slow receiver cannot take every slot), never one whose report has an
earlier event still pending for the same subscription (per-report order: it walks the due index
in order and keeps a row only if it is its report's earliest pending one, a per-row index probe,
so a claim reads a few rows however long the backlog), each leased by moving
``next_attempt_at`` to the end of the lease under a fresh ``lease_token``. The outcome is written
only if the token still matches, so a worker whose lease ran out cannot overwrite the next one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, NamedTuple

import asyncpg

from fieldsync.db.rules import overdue_sql

# NOTIFY'd (at commit) by a transaction that created deliveries: workers wake at once.
CHANNEL = "fieldsync_webhooks"

_MATCHES = """
    s.disabled_at IS NULL AND {x}.type = ANY (s.events)
    AND (s.jurisdiction_path IS NULL OR starts_with({x}.path, s.jurisdiction_path))
"""

_UTC = """to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# What every event carries about its report, as the report is once the change is made.
_DATA = f"""
    jsonb_build_object(
        'report_id', r.id, 'kind', r.kind, 'category', r.category, 'title', r.title,
        'jurisdiction', r.jurisdiction, 'status', r.status, 'version', r.version,
        'severity', r.severity, 'grade', r.grade, 'incident_id', r.incident_id, 'stage', r.stage,
        'observed_at', r.body -> 'observed_at', 'updated_at', {_UTC.format(col="r.updated_at")},
        'location', jsonb_build_object('lat', r.lat, 'lon', r.lon)
    ) || v.extra || CASE WHEN v.extra ? 'into' THEN jsonb_build_object('_into_path', (
        SELECT sj.path FROM reports sr JOIN jurisdictions sj ON sj.code = sr.jurisdiction
        WHERE sr.id = (v.extra ->> 'into')::uuid)) ELSE '{{}}'::jsonb END
"""


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    report_id: uuid.UUID
    occurred_at: dt.datetime
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    dedupe_key: str | None = None
    id: uuid.UUID = dataclasses.field(default_factory=uuid.uuid4)


async def emit(conn: asyncpg.Connection, events: list[NewEvent], *, now: dt.datetime) -> int:
    """Write the events some subscription wants (or that carry a dedupe key) and one delivery per
    matching subscription, in input order; returns the number of deliveries created. Wakes the
    delivery workers (``NOTIFY``, sent when the transaction commits) if there are any."""
    if not events:
        return 0
    if all(e.dedupe_key is None for e in events) and not await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE disabled_at IS NULL)"
    ):
        return 0  # nothing wants them: the statement below would write nothing, after ~0.4 ms of planning
    created = await conn.fetchval(
        f"""
        WITH incoming AS (
            SELECT v.*, j.path, {_DATA} AS data
            FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::text[], $6::timestamptz[])
                WITH ORDINALITY AS v(id, type, report_id, extra, dedupe_key, occurred_at, n)
            JOIN reports r ON r.id = v.report_id
            JOIN jurisdictions j ON j.code = r.jurisdiction
        ), written AS (
            INSERT INTO webhook_events (id, type, report_id, jurisdiction_path, occurred_at, data, dedupe_key,
                                        created_at)
            SELECT i.id, i.type, i.report_id, i.path, i.occurred_at, i.data, i.dedupe_key, $7
            FROM incoming i
            WHERE i.dedupe_key IS NOT NULL
               OR EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE {_MATCHES.format(x="i")})
            ORDER BY i.n
            ON CONFLICT ON CONSTRAINT webhook_events_dedupe_key DO NOTHING
            RETURNING id, seq, type, report_id, jurisdiction_path AS path
        ), delivered AS (
            INSERT INTO webhook_deliveries (id, event_id, subscription_id, report_id, seq, next_attempt_at, created_at)
            SELECT gen_random_uuid(), w.id, s.id, w.report_id, w.seq, $7, $7
            FROM written w JOIN webhook_subscriptions s ON {_MATCHES.format(x="w")}
            FOR KEY SHARE OF s  -- a subscription deleted meanwhile is skipped, not a foreign key error
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM delivered)
             + 0 * (SELECT count(*) FROM (SELECT pg_notify('{CHANNEL}', '') FROM delivered LIMIT 1) AS woken)
        """,
        [e.id for e in events], [e.type for e in events], [e.report_id for e in events],
        [e.extra for e in events], [e.dedupe_key for e in events], [e.occurred_at for e in events], now,
    )
    return int(created or 0)


# --- deadline checks ----------------------------------------------------------------------------


async def overdue_hazards(conn: asyncpg.Connection, *, now: dt.datetime, limit: int) -> list[asyncpg.Record]:
    """Hazards rectifying past their deadline (the rule of ``domain.workflow.is_overdue``) with no
    hazard.overdue event for that deadline yet; locked so that the event orders after any change
    in flight (rows being changed right now are left for the next check)."""
    return await conn.fetch(
        f"""
        SELECT r.id, r.rectification_deadline AS deadline, r.listed_level,
               'hazard.overdue:' || r.id || ':' || {_UTC.format(col="r.rectification_deadline")} AS dedupe_key
        FROM reports r
        WHERE {overdue_sql('r', '$1')}
          AND NOT EXISTS (
              SELECT 1 FROM webhook_events e
              WHERE e.dedupe_key = 'hazard.overdue:' || r.id || ':' || {_UTC.format(col="r.rectification_deadline")})
        ORDER BY r.rectification_deadline
        LIMIT $2
        FOR UPDATE OF r SKIP LOCKED
        """,
        now, limit,
    )


async def missed_initial_reports(
    conn: asyncpg.Connection, *, now: dt.datetime, due: dt.timedelta, lookback: dt.timedelta, limit: int
) -> list[asyncpg.Record]:
    """Disaster chains observed within ``lookback`` whose initial report (初报) came late or not at
    all (the rule of ``services.incidents.get_chain``) with no incident.deadline_missed event yet.
    The subject is the initial report if there is one, else the chain's first observed report."""
    return await conn.fetch(
        """
        WITH recent AS (
            SELECT DISTINCT incident_id FROM reports
            WHERE incident_id IS NOT NULL AND observed_at > $1::timestamptz - $3::interval
        ), chains AS (
            SELECT r.incident_id, min(r.observed_at) + $2::interval AS due_at,
                   min(r.received_at) FILTER (WHERE r.stage = 'initial' AND r.status <> 'merged') AS met_at
            FROM reports r JOIN recent USING (incident_id)
            GROUP BY r.incident_id
        )
        SELECT c.incident_id, c.due_at, c.met_at,
               'incident.deadline_missed:' || c.incident_id || ':initial' AS dedupe_key,
               (SELECT r.id FROM reports r WHERE r.incident_id = c.incident_id
                ORDER BY (r.stage = 'initial' AND r.status <> 'merged') DESC, r.observed_at, r.id LIMIT 1) AS subject
        FROM chains c
        WHERE ((c.met_at IS NULL AND $1 > c.due_at) OR c.met_at > c.due_at)
          AND NOT EXISTS (
              SELECT 1 FROM webhook_events e
              WHERE e.dedupe_key = 'incident.deadline_missed:' || c.incident_id || ':initial')
        ORDER BY c.due_at
        LIMIT $4
        """,
        now, due, lookback, limit,
    )


# --- subscriptions ------------------------------------------------------------------------------

_SUBSCRIPTION = "id, url, events, jurisdiction, created_at, disabled_at, disabled_reason"


async def insert_subscription(
    conn: asyncpg.Connection,
    *,
    url: str,
    events: list[str],
    jurisdiction: str | None,
    jurisdiction_path: str | None,
    secret: str,
    created_by: uuid.UUID,
    now: dt.datetime,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""
        INSERT INTO webhook_subscriptions (id, url, events, jurisdiction, jurisdiction_path, secret, created_by,
                                           created_at)
        VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7)
        RETURNING {_SUBSCRIPTION}
        """,
        url, events, jurisdiction, jurisdiction_path, secret, created_by, now,
    )
    assert row is not None
    return row


async def list_subscriptions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_SUBSCRIPTION} FROM webhook_subscriptions ORDER BY created_at, id")


async def get_subscription(conn: asyncpg.Connection, subscription_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_SUBSCRIPTION} FROM webhook_subscriptions WHERE id = $1", subscription_id)


async def delete_subscription(conn: asyncpg.Connection, subscription_id: uuid.UUID) -> asyncpg.Record | None:
    """Remove the subscription with its deliveries and their attempts; the row as it was."""
    return await conn.fetchrow(
        f"DELETE FROM webhook_subscriptions WHERE id = $1 RETURNING {_SUBSCRIPTION}", subscription_id
    )


# --- deliveries ---------------------------------------------------------------------------------

_DELIVERY = """
    d.id, d.event_id, d.subscription_id, d.report_id, d.seq, d.state, d.attempts, d.next_attempt_at,
    d.lease_token IS NOT NULL AND d.state = 'pending' AS leased, d.last_status, d.last_error,
    d.created_at, d.delivered_at, d.dead_at, e.type
"""


async def list_deliveries(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, *, state: str | None, before_seq: int | None, limit: int
) -> list[asyncpg.Record]:
    """The subscription's deliveries, newest event first."""
    return await conn.fetch(
        f"""
        SELECT {_DELIVERY}
        FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
        WHERE d.subscription_id = $1 AND ($2::text IS NULL OR d.state = $2)
          AND ($3::bigint IS NULL OR d.seq < $3)
        ORDER BY d.seq DESC
        LIMIT $4
        """,
        subscription_id, state, before_seq, limit,
    )


async def list_attempts(conn: asyncpg.Connection, delivery_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[asyncpg.Record]]:
    rows = await conn.fetch(
        """
        SELECT delivery_id, attempt, started_at, latency_ms, status_code, error
        FROM webhook_attempts WHERE delivery_id = ANY ($1::uuid[])
        ORDER BY delivery_id, id
        """,
        delivery_ids,
    )
    found: dict[uuid.UUID, list[asyncpg.Record]] = {delivery_id: [] for delivery_id in delivery_ids}
    for row in rows:
        found[row["delivery_id"]].append(row)
    return found


async def rearm_delivery(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, delivery_id: uuid.UUID, *, now: dt.datetime
) -> asyncpg.Record | None:
    """Make the delivery due now with a fresh schedule (a dead letter, or a delivered event sent
    again), unless a worker holds it this moment; re-enables the subscription. The row after."""
    row = await conn.fetchrow(
        """
        UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $3, lease_token = NULL,
            delivered_at = NULL, dead_at = NULL
        WHERE id = $2 AND subscription_id = $1
          AND NOT (state = 'pending' AND lease_token IS NOT NULL AND next_attempt_at > $3)
        RETURNING id
        """,
        subscription_id, delivery_id, now,
    )
    if row is not None:
        await conn.execute(
            "UPDATE webhook_subscriptions SET disabled_at = NULL, disabled_reason = NULL WHERE id = $1",
            subscription_id,
        )
    return await conn.fetchrow(
        f"""
        SELECT {_DELIVERY} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
        WHERE d.id = $2 AND d.subscription_id = $1
        """,
        subscription_id, delivery_id,
    )


async def claim(
    conn: asyncpg.Connection,
    *,
    now: dt.datetime,
    lease_until: dt.datetime,
    limit: int,
    per_subscription: int,
    busy: dict[uuid.UUID, int],
) -> list[asyncpg.Record]:
    """Lease up to ``limit`` due deliveries: at most ``per_subscription`` in flight per
    subscription (``busy`` counts this worker's), the earliest pending event of each report only."""
    return await conn.fetch(
        """
        WITH subs AS (
            SELECT s.id, $3::int - coalesce(b.n, 0) AS room
            FROM webhook_subscriptions s
            LEFT JOIN unnest($5::uuid[], $6::int[]) AS b(id, n) ON b.id = s.id
            WHERE s.disabled_at IS NULL AND $3::int - coalesce(b.n, 0) > 0
            ORDER BY random()
        ), picked AS (
            SELECT d.id
            FROM subs CROSS JOIN LATERAL (
                SELECT d.id FROM webhook_deliveries d
                WHERE d.subscription_id = subs.id AND d.state = 'pending' AND d.next_attempt_at <= $1
                  AND d.seq = (
                      SELECT min(e.seq) FROM webhook_deliveries e
                      WHERE e.subscription_id = d.subscription_id AND e.report_id = d.report_id
                        AND e.state = 'pending')
                ORDER BY d.next_attempt_at, d.seq
                LIMIT subs.room
                FOR UPDATE SKIP LOCKED
            ) d
            LIMIT $4
        ), claimed AS (
            UPDATE webhook_deliveries d
            SET next_attempt_at = $2, lease_token = gen_random_uuid(), attempts = d.attempts + 1
            FROM picked p WHERE d.id = p.id
            RETURNING d.id, d.event_id, d.subscription_id, d.lease_token, d.attempts
        )
        SELECT c.id, c.subscription_id, c.lease_token, c.attempts, s.url, s.secret, s.jurisdiction_path,
               e.id AS event_id, e.type, e.report_id, e.occurred_at, e.data
        FROM claimed c
        JOIN webhook_subscriptions s ON s.id = c.subscription_id
        JOIN webhook_events e ON e.id = c.event_id
        """,
        now, lease_until, per_subscription, limit, list(busy), list(busy.values()),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: uuid.UUID
    subscription_id: uuid.UUID
    report_id: uuid.UUID
    lease_token: uuid.UUID
    attempt: int
    started_at: dt.datetime
    latency_ms: int
    status_code: int | None
    error: str | None


class Recorded(NamedTuple):
    held: bool  # the lease still held: the outcome was written
    unblocked: bool  # the delivery left `pending` and a later event of its report now may go


async def record_attempt(
    conn: asyncpg.Connection, attempt: Attempt, *, state: str, next_attempt_at: dt.datetime | None, now: dt.datetime
) -> Recorded:
    """Log the attempt and, if this worker still holds the lease, move the delivery to ``state``
    (due again at ``next_attempt_at`` when pending), in one statement. The attempt is logged even
    when the lease was lost: it happened."""
    row = await conn.fetchrow(
        """
        WITH logged AS (
            INSERT INTO webhook_attempts (delivery_id, attempt, started_at, latency_ms, status_code, error)
            SELECT $1, $8, $9, $10, $5, $6 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = $1)
        ), moved AS (
            UPDATE webhook_deliveries
            SET state = $3::text, next_attempt_at = coalesce($4::timestamptz, next_attempt_at), lease_token = NULL,
                last_status = $5, last_error = $6,
                delivered_at = CASE WHEN $3::text = 'delivered' THEN $7::timestamptz END,
                dead_at = CASE WHEN $3::text = 'dead' THEN $7::timestamptz END
            WHERE id = $1 AND lease_token = $2
            RETURNING 1
        )
        SELECT EXISTS (SELECT 1 FROM moved) AS held,
               $3::text <> 'pending' AND EXISTS (
                   SELECT 1 FROM webhook_deliveries n
                   WHERE n.subscription_id = $11 AND n.report_id = $12 AND n.state = 'pending' AND n.id <> $1
               ) AS unblocked
        """,
        attempt.delivery_id, attempt.lease_token, state, next_attempt_at, attempt.status_code, attempt.error, now,
        attempt.attempt, attempt.started_at, attempt.latency_ms, attempt.subscription_id, attempt.report_id,
    )
    assert row is not None
    return Recorded(bool(row["held"]), bool(row["held"] and row["unblocked"]))


async def disable_subscription(
    conn: asyncpg.Connection, subscription_id: uuid.UUID, *, reason: str, now: dt.datetime
) -> None:
    """Stop calling a subscription: it is marked disabled and its pending deliveries dead-lettered."""
    await conn.execute(
        """
        UPDATE webhook_subscriptions SET disabled_at = $2, disabled_reason = $3
        WHERE id = $1 AND disabled_at IS NULL
        """,
        subscription_id, now, reason,
    )
    await conn.execute(
        """
        UPDATE webhook_deliveries SET state = 'dead', dead_at = $2, lease_token = NULL, last_error = $3
        WHERE subscription_id = $1 AND state = 'pending'
        """,
        subscription_id, now, f"subscription disabled: {reason}",
    )


async def wake_workers(conn: asyncpg.Connection) -> None:
    """Wake every delivery worker now (tests that move the clock; an admin's retry)."""
    await conn.execute(f"SELECT pg_notify('{CHANNEL}', '')")
