"""Near-duplicate scoring: pure rules on the features of one candidate pair.

Signals, each with a stated reason when it fires:

- ``same_photo``: both reports reference a photo with the same sha256;
- ``similar_photo``: two photos' 64-bit dHashes differ in few bits (recompressed, rescaled,
  lightly cropped or rotated copies of one scene land within ``PHOTO_NEAR_BITS``);
- ``same_enterprise``: same unified social credit code and category, the other still open;
- ``nearby``: same kind and category within the kind's distance and time window, the distance
  widened by both devices' reported GPS accuracy;
- ``similar_text``: Dice coefficient of the character bigrams of title + description
  (punctuation and spaces dropped), which works for Chinese without word splitting.

The score is content evidence (photo, text) gated by context (place and time, or enterprise):
the same enterprise or the same village produces many different hazards, so context alone never
reaches the threshold, and two different events rarely share both a picture and the words. The
weights and ``THRESHOLD`` come from ``scripts/eval_dedupe`` (docs/DEDUPE.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from typing import Any

from fieldsync.domain.evidence import haversine_m

THRESHOLD = 0.5
PHOTO_NEAR_BITS = 6  # at or below: the same scene; 0 bits = identical hash
PHOTO_FAR_BITS = 16  # at or above: no photo evidence
MAX_ACCURACY_M = 500.0  # a worse fix widens the window no further
CANDIDATES_PER_SIGNAL = 50  # per report and index-backed signal: keeps a dense cell's cost bounded


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    radius_m: float
    seconds: float


_HOUR = 3600.0
_DAY = 86400.0
_KIND_WINDOWS = {
    "hazard": Window(150, 30 * _DAY),  # a hazard at one plant stays until rectified
    "accident": Window(500, 2 * _DAY),
    "disaster": Window(3000, 3 * _DAY),
}
_CATEGORY_WINDOWS = {
    ("disaster", "flood"): Window(10_000, 5 * _DAY),
    ("disaster", "forest_grassland_fire"): Window(10_000, 3 * _DAY),
    ("disaster", "earthquake"): Window(50_000, 3 * _DAY),
    ("disaster", "drought"): Window(30_000, 30 * _DAY),
    ("disaster", "snow"): Window(20_000, 3 * _DAY),
    ("disaster", "wind_hail"): Window(10_000, 2 * _DAY),
    ("disaster", "sandstorm"): Window(30_000, 2 * _DAY),
    ("disaster", "landslide"): Window(1_000, 3 * _DAY),
    ("disaster", "collapse"): Window(1_000, 3 * _DAY),
    ("disaster", "debris_flow"): Window(2_000, 3 * _DAY),
}


def window(kind: str, category: str) -> Window:
    """How far apart in space and time two reports of this kind and category may be one event."""
    return _CATEGORY_WINDOWS.get((kind, category)) or _KIND_WINDOWS.get(kind, Window(500, 2 * _DAY))


def search_radius_m(kind: str, category: str, accuracy_m: float | None) -> float:
    """The box the index search uses: the window plus this fix and the worst other fix counted."""
    return window(kind, category).radius_m + min(accuracy_m or 0.0, MAX_ACCURACY_M) + MAX_ACCURACY_M


def _normalized(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if ch.isalnum())


def bigrams(text: str) -> set[str]:
    norm = _normalized(text)
    if len(norm) < 2:
        return {norm} if norm else set()
    return {norm[i:i + 2] for i in range(len(norm) - 1)}


def text_similarity(a: str, b: str) -> float:
    """Dice coefficient of character bigrams: 1 for the same text, ~0 for unrelated text."""
    x, y = bigrams(a), bigrams(b)
    if not x or not y:
        return 0.0
    return 2 * len(x & y) / (len(x) + len(y))


@dataclasses.dataclass(frozen=True, slots=True)
class Side:
    """What the scoring needs of one report."""

    kind: str
    category: str
    text: str
    lat: float
    lon: float
    accuracy_m: float | None
    observed_at: dt.datetime
    credit_code: str | None
    status: str


@dataclasses.dataclass(frozen=True, slots=True)
class PairFeatures:
    same_photo: str | None  # a shared sha256
    photo_bits: int | None  # the smallest dHash distance between their photos, None if unknown


@dataclasses.dataclass(frozen=True, slots=True)
class Scored:
    score: float
    reasons: list[dict[str, Any]]


OPEN_STATUSES = frozenset({"submitted", "needs_info", "verified", "rectifying", "rectified"})


def score(a: Side, b: Side, pair: PairFeatures) -> Scored:
    """Score in [0, 1] that ``a`` and ``b`` report the same thing, and the reasons that fired."""
    reasons: list[dict[str, Any]] = []
    photo = 0.0
    if pair.same_photo is not None:
        photo = 1.0
        reasons.append({"signal": "same_photo", "sha256": pair.same_photo,
                        "detail": "the same photo (equal sha256) is attached to both"})
    elif pair.photo_bits is not None and pair.photo_bits < PHOTO_FAR_BITS:
        bits = pair.photo_bits
        photo = 1.0 if bits <= PHOTO_NEAR_BITS else (PHOTO_FAR_BITS - bits) / (PHOTO_FAR_BITS - PHOTO_NEAR_BITS)
        if bits <= (PHOTO_NEAR_BITS + PHOTO_FAR_BITS) // 2:
            reasons.append({"signal": "similar_photo", "hamming_bits": bits,
                            "detail": f"photos differ in {bits} of 64 perceptual-hash bits"})

    text = text_similarity(a.text, b.text)
    if text >= 0.35:
        reasons.append({"signal": "similar_text", "similarity": round(text, 3),
                        "detail": f"title and description share {round(text * 100)}% of character pairs"})

    same_kind = a.kind == b.kind and a.category == b.category
    place = 0.0
    if same_kind:
        win = window(a.kind, a.category)
        dist = haversine_m(a.lat, a.lon, b.lat, b.lon)
        reach = win.radius_m + min(a.accuracy_m or 0.0, MAX_ACCURACY_M) + min(b.accuracy_m or 0.0, MAX_ACCURACY_M)
        gap = abs((a.observed_at - b.observed_at).total_seconds())
        if dist <= reach and gap <= win.seconds:
            place = 1.0 - 0.5 * (dist / reach) - 0.3 * (gap / win.seconds)
            reasons.append({"signal": "nearby", "distance_m": round(dist, 1), "hours_apart": round(gap / _HOUR, 1),
                            "detail": f"same {a.kind} category {a.category}, {round(dist)} m and "
                                      f"{round(gap / _HOUR, 1)} h apart (window {round(reach)} m, "
                                      f"{round(win.seconds / _HOUR)} h)"})
    enterprise = 0.0
    if same_kind and a.credit_code and a.credit_code == b.credit_code and b.status in OPEN_STATUSES:
        enterprise = 1.0
        reasons.append({"signal": "same_enterprise", "credit_code": a.credit_code,
                        "detail": f"same enterprise {a.credit_code} and category, still open"})

    context = max(place, enterprise)
    content = max(0.85 * photo + 0.5 * text, 1.3 * text - 0.1)
    value = min(1.0, content) * (0.35 + 0.65 * context)
    if pair.same_photo is not None:
        value = max(value, 0.9)
    return Scored(round(max(0.0, min(1.0, value)), 4), reasons)
