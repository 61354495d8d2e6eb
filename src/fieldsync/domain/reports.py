"""Report rules that need no I/O: the canonical form that decides "same content", the unified
social credit code checksum (GB 32100-2015), observed-time skew, and who may revise what.

Idempotency hinges on the canonical form: the report as the server understood it (unknown
fields dropped, defaults filled, ``id`` and ``base_version`` removed), serialised as JSON with
sorted keys and no insignificant whitespace, then hashed with SHA-256. Two PUTs with the same
canonical hash are the same report, however their bytes differ.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from typing import Any, Literal

# The reports' closed vocabularies, shared with read models and the wire schemas.
Kind = Literal["hazard", "disaster", "accident"]
Status = Literal["submitted", "needs_info", "verified", "rejected", "merged", "rectifying", "rectified", "closed"]
MediaRole = Literal["photo", "before", "after", "document"]

EDITABLE_STATUSES = frozenset({"submitted", "needs_info"})

_CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def canonical_json(content: dict[str, Any]) -> str:
    body = {key: value for key, value in content.items() if key not in {"id", "base_version"}}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(content: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical_json(content).encode()).digest()


def credit_code_check_char(first17: str) -> str | None:
    """The 18th character of a unified social credit code, or None if a character is invalid."""
    total = 0
    for char, weight in zip(first17, _CREDIT_WEIGHTS, strict=True):
        value = _CREDIT_ALPHABET.find(char)
        if value < 0:
            return None
        total += value * weight
    return _CREDIT_ALPHABET[(31 - total % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """GB 32100-2015: 18 characters from a 31-letter alphabet, the last a weighted mod-31 check."""
    if len(code) != 18:
        return False
    check = credit_code_check_char(code[:17])
    return check is not None and check == code[17]


def observed_too_far_ahead(observed_at: dt.datetime, now: dt.datetime, skew_s: int) -> bool:
    return observed_at > now + dt.timedelta(seconds=skew_s)


@dataclasses.dataclass(frozen=True, slots=True)
class MediaReference:
    sha256: str
    role: str
    caption: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class ReportSubmission:
    """One report as a device sent it: typed fields for rules and projections, ``content`` for
    the canonical form (the wire layer fills it with the decoded report as plain data)."""

    id: uuid.UUID
    kind: str
    category: str
    title: str
    description: str
    jurisdiction: str
    lat: float
    lon: float
    accuracy_m: float | None
    observed_at: dt.datetime
    severity: str | None
    media: tuple[MediaReference, ...]
    content: dict[str, Any]
    base_version: int | None = None
    grade: str | None = None
    credit_code: str | None = None
    incident_id: uuid.UUID | None = None
    stage: str | None = None

    content_hash: bytes = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "content_hash", content_hash(self.content))

    @property
    def body(self) -> dict[str, Any]:
        """The canonical content as stored: everything but ``id`` and ``base_version``."""
        return {key: value for key, value in self.content.items() if key not in {"id", "base_version"}}


@dataclasses.dataclass(slots=True)
class ReceiptData:
    id: uuid.UUID
    version: int
    status: Status
    missing_media: list[str]
    duplicate: bool
    created: bool
    # near-duplicate candidates at or above the threshold: (id, score, reasons), best first
    possible_duplicates: list[tuple[uuid.UUID, float, list[dict[str, Any]]]] = dataclasses.field(
        default_factory=list
    )
