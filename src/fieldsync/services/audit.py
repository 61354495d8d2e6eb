"""Recording audit events (inside the caller's transaction), verifying every chain, and anchors:
digests of the settled log that operators keep off the box and verify against later."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg

from fieldsync.db import audit as q
from fieldsync.domain.audit import GENESIS, Anchor, AnchorDigest, EventFields, canonical_detail, event_hash


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    chain: str
    action: str
    actor_id: uuid.UUID | None
    device_id: uuid.UUID | None = None
    report_id: uuid.UUID | None = None
    from_status: str | None = None
    to_status: str | None = None
    version: int | None = None
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)


def report_chain(report_id: uuid.UUID) -> str:
    return f"report:{report_id}"


def media_chain(sha256: str) -> str:
    return f"media:{sha256}"


async def record(conn: asyncpg.Connection, events: list[NewEvent], *, now: dt.datetime) -> None:
    """Append events to their chains, with a constant number of statements for any batch."""
    if not events:
        return
    heads = await q.lock_heads(conn, sorted({e.chain for e in events}))
    rows: list[tuple[EventFields, bytes, bytes]] = []
    for event in events:
        length, prev = heads.get(event.chain, (0, GENESIS))
        fields = EventFields(
            chain=event.chain,
            position=length + 1,
            report_id=event.report_id,
            actor_id=event.actor_id,
            device_id=event.device_id,
            action=event.action,
            from_status=event.from_status,
            to_status=event.to_status,
            version=event.version,
            detail=canonical_detail(event.detail),
            created_at=now,
        )
        row_hash = event_hash(prev, fields)
        rows.append((fields, prev, row_hash))
        heads[event.chain] = (fields.position, row_hash)
    await q.insert_events(conn, rows)


@dataclasses.dataclass(slots=True)
class Verification:
    events_checked: int = 0
    chains_checked: int = 0
    broken_event_id: int | None = None
    broken_chain: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


async def verify(conn: asyncpg.Connection) -> Verification:
    """Walk every chain; report the first broken row (lowest event id among the broken)."""
    result = Verification()
    heads = await q.list_heads(conn)
    broken: list[tuple[int, str, str]] = []
    seen_chains: set[str] = set()
    chain, expected_position, prev = "", 0, GENESIS

    def close_chain() -> None:
        if not chain:
            return
        head = heads.get(chain)
        if head is None:
            broken.append((10**18, chain, "the chain has events but no head: its head row was removed"))
        elif head != (expected_position, prev):
            broken.append((10**18, chain, f"the chain ends at position {expected_position} but its head says "
                                          f"{head[0]}: its last events were removed or altered"))

    async for row in q.walk_events(conn):
        result.events_checked += 1
        if row["chain"] != chain:
            close_chain()
            chain, expected_position, prev = row["chain"], 0, GENESIS
            seen_chains.add(chain)
        expected_position += 1
        fields = EventFields(
            chain=row["chain"], position=row["position"], report_id=row["report_id"], actor_id=row["actor_id"],
            device_id=row["device_id"], action=row["action"], from_status=row["from_status"],
            to_status=row["to_status"], version=row["version"], detail=row["detail"], created_at=row["created_at"],
        )
        if row["position"] != expected_position or bytes(row["prev_hash"]) != prev:
            broken.append((row["id"], chain, f"event {row['id']} does not follow its predecessor at position "
                                             f"{expected_position - 1}: an earlier event was removed or altered"))
        elif event_hash(prev, fields) != bytes(row["row_hash"]):
            broken.append((row["id"], chain, f"event {row['id']} was altered after it was written"))
        expected_position = row["position"]
        prev = bytes(row["row_hash"])
    close_chain()
    for missing in sorted(set(heads) - seen_chains):
        broken.append((10**18, missing, "every event of this chain was removed"))
    result.chains_checked = len(seen_chains | set(heads))
    if broken:
        first = min(broken)
        result.broken_event_id = first[0] if first[0] < 10**18 else None
        result.broken_chain, result.reason = first[1], first[2]
    return result


ANCHOR_SETTLE_S = 60  # events younger than this may still have lower-numbered siblings in flight


async def take_anchor(conn: asyncpg.Connection, *, now: dt.datetime) -> Anchor:
    """A digest of every settled event, to be kept off the box (``fieldsync audit anchor``)."""
    upto = await q.settled_upto(conn, written_before=now - dt.timedelta(seconds=ANCHOR_SETTLE_S))
    digest = AnchorDigest()
    async for row_hash in q.walk_row_hashes(conn, upto_id=upto):
        digest.update(row_hash)
    return Anchor(upto_id=upto, events=digest.events, digest=digest.digest(), taken_at=now)


async def check_anchor(conn: asyncpg.Connection, anchor: Anchor) -> str | None:
    """Why the events up to the anchor no longer give its digest, or ``None`` when they do."""
    digest = AnchorDigest()
    async for row_hash in q.walk_row_hashes(conn, upto_id=anchor.upto_id):
        digest.update(row_hash)
    if digest.events != anchor.events:
        return (f"the anchor of {anchor.taken_at.isoformat()} counted {anchor.events} events up to id "
                f"{anchor.upto_id}; there are now {digest.events}: events were removed or inserted")
    if digest.digest() != anchor.digest:
        return (f"the events up to id {anchor.upto_id} no longer give the digest anchored at "
                f"{anchor.taken_at.isoformat()}: some were rewritten (with their chains and heads)")
    return None
