"""The audit trail's hash chain, as pure functions.

Each event belongs to a chain (``report:<id>``, ``media:<sha256>``) and has a position in it.
Its hash is SHA-256 over the previous row's hash and a canonical text of the row's own fields;
the first row of a chain follows 32 zero bytes. Recomputing every chain from the rows and
comparing with the stored hashes, and each chain's length and last hash with its head, reveals
any edit, any deletion (in the middle or at the end) and any reordering.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

GENESIS = bytes(32)


def canonical_detail(detail: dict[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclasses.dataclass(frozen=True, slots=True)
class EventFields:
    chain: str
    position: int
    report_id: uuid.UUID | None
    actor_id: uuid.UUID | None
    device_id: uuid.UUID | None
    action: str
    from_status: str | None
    to_status: str | None
    version: int | None
    detail: str
    created_at: dt.datetime


def event_hash(prev_hash: bytes, event: EventFields) -> bytes:
    """SHA-256 of the previous hash and the event's canonical text."""
    text = "\x1f".join(
        [
            event.chain,
            str(event.position),
            str(event.report_id or ""),
            str(event.actor_id or ""),
            str(event.device_id or ""),
            event.action,
            event.from_status or "",
            event.to_status or "",
            "" if event.version is None else str(event.version),
            event.detail,
            event.created_at.astimezone(dt.UTC).isoformat(),
        ]
    )
    return hashlib.sha256(prev_hash + text.encode()).digest()
