"""Sync use cases: a batched push with one result per mutation, and a gap-free pull.

Push. Each mutation is decoded on its own (a bad one becomes a ``rejected`` result and never
fails, blocks or reorders the rest); every ``upsert_report`` of the batch goes through
``reports.submit_reports`` together, set-based, and then comments and rectifications are applied
in input order, each in a savepoint (a device's queue creates a report before it comments on it). The first result of each ``mutation_id`` is kept,
in the same transaction as its effect, so a replay answers it again and nothing is applied twice.
One user's pushes run one at a time (a transaction advisory lock, taken first): a device that
times out and sends its queue again, perhaps reordered, while the first send still runs then
waits for it and answers its stored results, instead of answering ``duplicate`` or deadlocking
with it on the new report rows both would insert in different orders.

Pull. The feed is the ``reports`` table itself: every write stamps the row with its
transaction's xid8. A pass covers the transactions that became visible between two snapshots:
``base`` (where the previous pass ended) and ``upto`` (taken when this pass began), paged by
(xid, id). A transaction that took its place early but committed late is not yet visible in
``upto``, so it falls into a later pass instead of being skipped. The cursor is these snapshots
and the page position, opaque to clients.

Epochs. Snapshots count one cluster's transactions. ``fieldsync restore`` loads the rows into
another cluster, whose ids start again near zero, so it begins a new feed epoch (migration 0014)
and restamps the restored rows with its own transaction (``restart_feed``). Every cursor carries
its epoch; one of another epoch, or one from before epochs existed, is answered as a first pull:
the caller's whole view again, so nothing is skipped (docs/sync.md, "After a restore").
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg

from fieldsync import errors
from fieldsync.db import sync as q
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal, Role
from fieldsync.domain.reports import MediaReference, ReceiptData, ReportSubmission
from fieldsync.domain.views import ReportView
from fieldsync.services import reports, views, workflow
from fieldsync.services.reports import Outcome

# --- push ---------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class PushItem:
    """One decoded mutation: a report to submit, an outcome already known, or an unsupported op."""

    mutation_id: uuid.UUID | None
    report: ReportSubmission | None = None
    outcome: Outcome | None = None
    comment: tuple[uuid.UUID, str] | None = None
    rectification: tuple[uuid.UUID, str, tuple[MediaReference, ...]] | None = None


def result_of(mutation_id: uuid.UUID | None, outcome: Outcome, report_id: uuid.UUID | None) -> dict[str, Any]:
    result: dict[str, Any] = {"mutation_id": str(mutation_id) if mutation_id else None, "status": outcome.status}
    if outcome.receipt is not None:
        result |= {
            "report_id": str(outcome.receipt.id),
            "version": outcome.receipt.version,
            "missing_media": outcome.receipt.missing_media,
        }
    elif report_id is not None:
        result["report_id"] = str(report_id)
    if outcome.error is not None:
        error: dict[str, Any] = {"code": outcome.error.code, "detail": _storable(outcome.error.detail)}
        if "field" in outcome.error.extra:
            error["field"] = _storable(str(outcome.error.extra["field"]))
        if "version" in outcome.error.extra:
            result["version"] = outcome.error.extra["version"]
        result["error"] = error
    return result


def _storable(text: str) -> str:
    """A message may quote the input it refuses; PostgreSQL's jsonb cannot hold a NUL character,
    and the result is stored for replays, so a NUL is written out as its escape."""
    return text.replace("\x00", "\\u0000")


async def push(
    conn: asyncpg.Connection, actor: Principal, items: list[PushItem], *, now: dt.datetime, clock_skew_s: int
) -> list[dict[str, Any]]:
    """Apply a batch; one result per item, in input order, replays answering their first result."""
    await q.lock_pushes(conn, user_id=actor.user_id)
    ids = [item.mutation_id for item in items if item.mutation_id is not None]
    stored = await q.get_mutation_results(conn, user_id=actor.user_id, mutation_ids=ids)
    results: list[dict[str, Any] | None] = [None] * len(items)
    first_index: dict[uuid.UUID, int] = {}
    to_submit: list[int] = []
    review: list[int] = []
    for index, item in enumerate(items):
        mutation_id = item.mutation_id
        if mutation_id is not None and mutation_id in stored:
            results[index] = stored[mutation_id]
        elif mutation_id is not None and mutation_id in first_index:
            continue
        elif item.report is not None:
            to_submit.append(index)
        elif item.comment is not None or item.rectification is not None:
            review.append(index)
        else:
            assert item.outcome is not None
            results[index] = result_of(mutation_id, item.outcome, None)
        if mutation_id is not None:
            first_index.setdefault(mutation_id, index)

    outcomes = await reports.submit_reports(
        conn, actor, [report for i in to_submit if (report := items[i].report) is not None], now=now,
        clock_skew_s=clock_skew_s,
    )
    for index, outcome in zip(to_submit, outcomes, strict=True):
        report = items[index].report
        results[index] = result_of(items[index].mutation_id, outcome, report.id if report else None)
    for index in review:
        outcome, report_id = await _apply_review_item(conn, actor, items[index], now=now)
        results[index] = result_of(items[index].mutation_id, outcome, report_id)

    answered = [
        result if result is not None else results[first_index[item.mutation_id]] if item.mutation_id else None
        for item, result in zip(items, results, strict=True)
    ]
    final = [result for result in answered if result is not None]
    assert len(final) == len(items), "every item has its own result or its first sending's"
    fresh = {
        item.mutation_id: final[index]
        for index, item in enumerate(items)
        if item.mutation_id is not None and item.mutation_id not in stored and first_index[item.mutation_id] == index
    }
    await q.insert_mutation_results(conn, user_id=actor.user_id, results=fresh, now=now)
    return final


async def _apply_review_item(
    conn: asyncpg.Connection, actor: Principal, item: PushItem, *, now: dt.datetime
) -> tuple[Outcome, uuid.UUID]:
    """A comment or a rectification from a device, in a savepoint so its failure stays its own."""
    target = item.comment or item.rectification
    assert target is not None, "only comments and rectifications come here"
    report_id = target[0]
    try:
        async with transaction(conn):
            if item.comment is not None:
                await workflow.add_comment(conn, actor, report_id, body=item.comment[1], now=now)
                return Outcome("applied"), report_id
            assert item.rectification is not None
            _, note, media = item.rectification
            version = await workflow.current_version(conn, report_id)
            request = workflow.TransitionRequest(
                action="submit_rectification", version=version or 0, note=note or None, media=media
            )
            new_version = await workflow.apply_transition(conn, actor, report_id, request, now=now)
    except errors.FieldsyncError as exc:
        return Outcome("conflict" if isinstance(exc, errors.Conflict) else "rejected", error=exc), report_id
    receipt = ReceiptData(report_id, new_version, "rectified", [], False, False)
    return Outcome("applied", receipt), report_id


# --- pull ---------------------------------------------------------------------------------------


async def restart_feed(conn: asyncpg.Connection) -> str:
    """After a restore: a new epoch, every report restamped; run it in the restore's transaction."""
    return await q.restart_feed(conn)


@dataclasses.dataclass(frozen=True, slots=True)
class Cursor:
    base: str | None = None
    upto: str | None = None
    after_xid: str | None = None
    after_id: uuid.UUID | None = None
    epoch: str | None = None

    def encode(self) -> str:
        data = {"b": self.base, "u": self.upto, "x": self.after_xid,
                "i": str(self.after_id) if self.after_id else None, "e": self.epoch}
        return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            cursor = cls(
                base=_snapshot(data.get("b")),
                upto=_snapshot(data.get("u")),
                after_xid=_xid(data.get("x")),
                after_id=uuid.UUID(data["i"]) if data.get("i") else None,
                epoch=_epoch(data.get("e")),
            )
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, UnicodeDecodeError):
            raise errors.InvalidInput("the cursor is not one this server issued", field="cursor") from None
        if (cursor.after_xid is None) != (cursor.after_id is None) or (cursor.after_xid and not cursor.upto):
            raise errors.InvalidInput("the cursor is not one this server issued", field="cursor")
        return cursor


def _epoch(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("bad epoch")
    return value


def _xid(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.isdigit() or len(value) > 20:
        raise ValueError("bad xid")
    return value


def _snapshot(value: object) -> str | None:
    """``xmin:xmax:xip,...`` as PostgreSQL prints a pg_snapshot; checked before it reaches SQL."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 100_000:
        raise ValueError("bad snapshot")
    xmin, xmax, xip = value.split(":")
    numbers = [xmin, xmax, *(x for x in xip.split(",") if x)]
    if not all(n.isdigit() and len(n) <= 20 for n in numbers) or int(xmin) > int(xmax):
        raise ValueError("bad snapshot")
    if any(not int(xmin) <= int(x) < int(xmax) for x in numbers[2:]):
        raise ValueError("bad snapshot")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class PullPage:
    changes: list[tuple[uuid.UUID, bool]]
    next_cursor: Cursor
    has_more: bool


@dataclasses.dataclass(frozen=True, slots=True)
class FeedPage:
    """A page of the feed as a device receives it: each change the report as it is now, or the
    id of a report that left the caller's view."""

    changes: list[ReportView | uuid.UUID]
    next_cursor: Cursor
    has_more: bool


async def pull_reports(
    conn: asyncpg.Connection, actor: Principal, *, cursor: Cursor, limit: int, now: dt.datetime
) -> FeedPage:
    """One page of changes with the reports they name; run it in one ``snapshot``."""
    page = await pull(conn, actor, cursor=cursor, limit=limit)
    present = [report_id for report_id, deleted in page.changes if not deleted]
    reads = {view.id: view for view in await views.read_reports(conn, actor, present, now=now)}
    changes: list[ReportView | uuid.UUID] = [
        report_id if deleted else reads[report_id] for report_id, deleted in page.changes
    ]
    return FeedPage(changes=changes, next_cursor=page.next_cursor, has_more=page.has_more)


async def pull(conn: asyncpg.Connection, actor: Principal, *, cursor: Cursor, limit: int) -> PullPage:
    """One page of changes after ``cursor``; run it in one REPEATABLE READ transaction."""
    epoch = await q.feed_epoch(conn)
    if cursor.epoch != epoch and cursor != Cursor():
        cursor = Cursor()  # another cluster's snapshots (a restore): the whole view again, nothing skipped
    upto = cursor.upto or await q.current_snapshot(conn)
    after = (cursor.after_xid, cursor.after_id) if cursor.after_xid and cursor.after_id else None
    rows = await q.list_changes(
        conn,
        base=cursor.base,
        upto=upto,
        after=after,
        inspector_id=actor.user_id if actor.role is Role.INSPECTOR else None,
        scope_prefix=actor.scope_prefix,
        limit=limit + 1,
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if has_more:
        last = rows[-1]
        next_cursor = Cursor(base=cursor.base, upto=upto, after_xid=last["xid"], after_id=last["id"], epoch=epoch)
    else:
        next_cursor = Cursor(base=upto, epoch=epoch)
    return PullPage(changes=[(row["id"], row["deleted"]) for row in rows], next_cursor=next_cursor, has_more=has_more)
