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


ANCHOR_FORMAT = "fieldsync-audit-anchor/1"


@dataclasses.dataclass(frozen=True, slots=True)
class Anchor:
    """A digest of every event up to ``upto_id`` (their row hashes in id order), kept off the box.

    Verification recomputes it from the database: an edit, a deletion or an insertion among
    those events changes it, even when the tamperer rewrote whole chains and their heads
    consistently, which the chains alone cannot reveal (ADR 0009)."""

    upto_id: int
    events: int
    digest: bytes
    taken_at: dt.datetime

    def line(self) -> str:
        return (f"{ANCHOR_FORMAT} upto={self.upto_id} events={self.events} sha256={self.digest.hex()} "
                f"at={self.taken_at.astimezone(dt.UTC).isoformat()}")

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """The anchor in a line ``line()`` wrote; ``ValueError`` naming what is wrong otherwise."""
        parts = text.split()
        if not parts or parts[0] != ANCHOR_FORMAT:
            raise ValueError(f"an anchor line starts with {ANCHOR_FORMAT!r}")
        fields = dict(part.split("=", 1) for part in parts[1:] if "=" in part)
        try:
            return cls(
                upto_id=int(fields["upto"]), events=int(fields["events"]), digest=bytes.fromhex(fields["sha256"]),
                taken_at=dt.datetime.fromisoformat(fields["at"]),
            )
        except (KeyError, ValueError) as exc:
            raise ValueError(f"not a complete anchor line ({exc})") from None


class AnchorDigest:
    """SHA-256 over row hashes fed in event id order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(ANCHOR_FORMAT.encode())
        self.events = 0

    def update(self, row_hash: bytes) -> None:
        self._hash.update(row_hash)
        self.events += 1

    def digest(self) -> bytes:
        return self._hash.digest()
