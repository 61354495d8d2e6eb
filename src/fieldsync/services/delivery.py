"""The webhook delivery worker: one per server process, any number of replicas side by side.

``delivering(dsn, …)`` runs it for the duration of a block (the app's lifespan), on a small pool
of its own; ``DeliveryWorker.running()`` is the same on a given pool. Each turn of its loop, in
this order:

1. every ``deadline_check_s``: ``services.events.check_deadlines`` in a transaction of its own;
2. claim as many due deliveries as it has free slots (``db.webhooks.claim``: a short transaction,
   ``FOR UPDATE SKIP LOCKED``, each delivery leased until ``now + lease_s``), at most
   ``per_subscription`` in flight per subscription (half the slots by default, so one slow or
   hanging receiver leaves the other half to everyone else), only the earliest pending event per
   report;
3. send each in a task of its own, holding no database connection during the HTTP call; then
   record the attempt and the outcome in one statement (the outcome only if the lease still holds);
4. sleep until a slot frees, a committed change created deliveries (``LISTEN``: the statement that
   writes them sends ``NOTIFY``, delivered at commit to every replica) or ``poll_s`` passes (work
   that falls due by time: retries, expired leases).

At least once: a process that dies after the receiver answered but before the outcome was
recorded leaves the delivery pending; when its lease ends any worker sends it again, with the
same ``webhook-id``. ``lease_s`` is twice the call deadline, so a live worker's call always ends
before its lease does. Times that are stored (due, lease, ``webhook-timestamp``) come from the
injected clock; the call deadline and the idle sleep are real time.

Outcomes: 2xx → delivered; 410 → dead and the subscription disabled (its pending deliveries
dead-lettered); anything else, a timeout or a refused address → due again after the retry
policy's next wait (or the receiver's ``Retry-After`` if longer), dead once the policy runs out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol, cast

import asyncpg
import structlog

from fieldsync import errors
from fieldsync.db import webhooks as q
from fieldsync.db.pool import create_pool
from fieldsync.domain import webhooks as rules
from fieldsync.outbound import Answer, WebhookSender
from fieldsync.ports import Clock
from fieldsync.services import events

log = structlog.get_logger("fieldsync.webhooks")
POOL_SIZE = 4
STOP_WAIT_S = 5.0
DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)


class Sender(Protocol):
    async def post(self, target: rules.Target, headers: dict[str, str], body: bytes) -> Answer: ...

    async def aclose(self) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerConfig:
    concurrency: int = 16
    per_subscription: int = 8
    timeout_s: float = 15.0
    poll_s: float = 2.0
    deadline_check_s: float = 60.0
    policy: rules.RetryPolicy = rules.RetryPolicy()

    @property
    def lease_s(self) -> float:
        return 2 * self.timeout_s + 1


class DeliveryWorker:
    def __init__(
        self, pool: asyncpg.Pool, clock: Clock, sender: Sender, config: WorkerConfig, *, rng: random.Random | None = None
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.sender = sender
        self.config = config
        self.rng = rng or random.Random()
        self._busy: dict[uuid.UUID, int] = {}
        self._tasks: set[asyncio.Task[bool]] = set()
        self._maybe_more = False
        self._wake = asyncio.Event()
        self._next_check = 0.0
        self._listener: asyncpg.Connection | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Deliver for the duration of the block; in-flight calls are cancelled at its end (their
        leases run out and another worker sends them again). Stopping takes at most a few seconds
        whatever a receiver or the HTTP client does: a shutdown never waits on a webhook."""
        loop = asyncio.create_task(self.run(), name="webhook-delivery") if self.config.concurrency > 0 else None
        try:
            yield
        finally:
            tasks: set[asyncio.Task[Any]] = {*self._tasks, *([loop] if loop else [])}
            for task in tasks:
                task.cancel()
            if tasks:
                _, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
                if stuck:
                    log.warning("webhook_deliveries_left_behind", count=len(stuck), waited_s=STOP_WAIT_S)
            await self._drop_listener()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sender.aclose(), timeout=STOP_WAIT_S)

    async def _listen(self) -> None:
        """Hold a connection that LISTENs for new deliveries (re-made when it was lost)."""
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._drop_listener()
        conn = cast(asyncpg.Connection, await self.pool.acquire())
        try:
            await conn.add_listener(q.CHANNEL, self._notified)
        except BaseException:
            await self.pool.release(conn)
            raise
        self._listener = conn

    async def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.remove_listener(q.CHANNEL, self._notified), timeout=STOP_WAIT_S)
        try:
            await asyncio.wait_for(self.pool.release(conn), timeout=STOP_WAIT_S)
        except Exception:  # noqa: BLE001 - a lost or hung connection is dropped, not given back
            conn.terminate()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            yield cast(asyncpg.Connection, conn)  # the pool's proxy behaves as a connection

    async def run(self) -> None:
        while True:
            claimed, wanted = 0, 0
            self._wake.clear()
            try:
                await self._listen()
                await self._check_deadlines()
                wanted = self.config.concurrency - len(self._tasks)
                claimed = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except DATABASE_DOWN as exc:  # deliveries stay pending; the next turn tries again
                log.warning("webhook_delivery_paused", reason="database unreachable", error=exc.__class__.__name__)
            except Exception:  # noqa: BLE001 - a bug must not stop delivery for good
                log.exception("webhook_delivery_turn_failed")
            if claimed and claimed == wanted:
                continue  # every slot it asked for was filled: there may be more due
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.poll_s)

    async def _check_deadlines(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        if loop_now < self._next_check:
            return
        self._next_check = loop_now + self.config.deadline_check_s
        async with self._connection() as conn, conn.transaction():
            await events.check_deadlines(conn, now=self.clock.now())

    async def deliver_due(self) -> int:
        """Claim what is due and fits in the free slots, and start sending it; how many."""
        free = self.config.concurrency - len(self._tasks)
        if free <= 0:
            return 0
        now, busy, share = self.clock.now(), dict(self._busy), self.config.per_subscription
        async with self._connection() as conn:  # one statement: its own transaction
            rows = await q.claim(
                conn, now=now, lease_until=now + dt.timedelta(seconds=self.config.lease_s), limit=free,
                per_subscription=share, busy=busy,
            )
        taken = collections.Counter(row["subscription_id"] for row in rows)
        # more may be due if the claim took all it was allowed to, overall or for a subscription
        self._maybe_more = (
            len(rows) == free
            or any(n >= share for n in busy.values())
            or any(n == share - busy.get(sid, 0) for sid, n in taken.items())
        )
        for row in rows:
            subscription_id = row["subscription_id"]
            self._busy[subscription_id] = self._busy.get(subscription_id, 0) + 1
            task = asyncio.create_task(self._deliver(row), name=f"webhook-{row['id']}")
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, subscription_id=subscription_id))
        return len(rows)

    def _done(self, task: asyncio.Task[bool], subscription_id: uuid.UUID) -> None:
        """A slot is free: claim again at once only if something may be waiting for it."""
        self._tasks.discard(task)
        left = self._busy.get(subscription_id, 1) - 1
        if left > 0:
            self._busy[subscription_id] = left
        else:
            self._busy.pop(subscription_id, None)
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("webhook_delivery_failed", exc_info=task.exception())
            self._wake.set()
        elif self._maybe_more or task.result():
            self._wake.set()

    async def _deliver(self, row: asyncpg.Record) -> bool:
        """Send one claimed delivery and record the outcome; True if it let a later event go."""
        started_at = self.clock.now()
        body = rules.cloud_event(
            event_id=row["event_id"], event_type=row["type"], report_id=row["report_id"],
            occurred_at=row["occurred_at"], data=rules.visible_data(row["data"], row["jurisdiction_path"]),
        )
        headers = rules.headers(row["secret"], message_id=str(row["event_id"]), timestamp=int(started_at.timestamp()),
                                body=body)
        try:
            target = rules.parse_target(row["url"])
        except errors.WebhookUrlInvalid as exc:
            answer = Answer(None, None, exc.detail, 0)
        else:
            answer = await self.sender.post(target, headers, body)
        return await self._record(row, answer, started_at=started_at)

    async def _record(self, row: asyncpg.Record, answer: Answer, *, started_at: dt.datetime) -> bool:
        now = self.clock.now()
        verdict = rules.verdict(answer.status_code) if answer.status_code is not None else "retry"
        next_attempt_at: dt.datetime | None = None
        state = "delivered" if verdict == "delivered" else "dead"
        if verdict == "retry":
            wait = self.config.policy.next_delay(
                row["attempts"], retry_after_s=rules.parse_retry_after(answer.retry_after, now=now), rng=self.rng
            )
            if wait is not None:
                state, next_attempt_at = "pending", now + dt.timedelta(seconds=wait)
        attempt = q.Attempt(row["id"], row["subscription_id"], row["report_id"], row["lease_token"], row["attempts"],
                            started_at, answer.latency_ms, answer.status_code, answer.error)
        async with self._connection() as conn:
            recorded = await q.record_attempt(conn, attempt, state=state, next_attempt_at=next_attempt_at, now=now)
            if verdict == "gone" and recorded.held:
                async with conn.transaction():
                    await q.disable_subscription(conn, row["subscription_id"],
                                                 reason="the receiver answered 410 Gone", now=now)
        return recorded.unblocked


@contextlib.asynccontextmanager
async def delivering(
    dsn: str, clock: Clock, *, concurrency: int, timeout_s: float, allow_private: bool
) -> AsyncIterator[DeliveryWorker | None]:
    """Run the server's worker for the duration of the block: ``concurrency`` calls in flight (none
    when 0), at most half of them to one subscription, each bounded by ``timeout_s``.

    It has a small pool of its own (the LISTEN connection, claims, outcomes), so that deliveries
    and requests never wait for each other's connections."""
    if concurrency <= 0:
        yield None
        return
    pool = await create_pool(dsn, min_size=1, max_size=POOL_SIZE)
    try:
        config = WorkerConfig(concurrency=concurrency, per_subscription=max(1, concurrency // 2), timeout_s=timeout_s)
        sender = WebhookSender(timeout_s=timeout_s, allow_private=allow_private, max_keepalive=concurrency)
        worker = DeliveryWorker(pool, clock, sender, config)
        async with worker.running():
            yield worker
    finally:
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except TimeoutError:
            pool.terminate()
