"""Near-duplicate scoring: pure rules on the features of one candidate pair.

Signals, each with a stated reason when it fires:

- ``same_photo``: both reports reference a photo with the same sha256;
- ``similar_photo``: the photos' thumbprints correlate (``imaging.likeness``): recompressed,
  rescaled, lightly cropped or rotated shots of one scene score near 1; the 64-bit dHash bands
  find such photos anywhere, the likeness scores them;
- ``same_enterprise``: same unified social credit code and category, the other still open;
- ``nearby``: same kind and category within the kind's distance and time window, the distance
  widened by both devices' reported GPS accuracy;
- ``similar_text``: Dice coefficient of the characters of title + description (punctuation and
  spaces dropped): character n-grams with n = 1, which need no word splitting for Chinese and
  keep the shared characters of synonyms (皮带机 / 皮带输送机, 储罐 / 储存罐).

The score is a logistic model of five features (``FEATURES``): an identical photo, photo
likeness above and below the level where re-photographed scenes start, text similarity, and
place-and-time closeness (a same-enterprise pair further apart counts as at the window's edge).
Its weights were fitted on ``scripts/eval_dedupe --seed 11`` and are measured on seed 7
(docs/DEDUPE.md, ADR 0011). Two clearly different photos count against a pair, though less than
the fit wanted (see ``WEIGHTS``); context alone never reaches the threshold, because one plant or
one village produces many different hazards; an identical photo scores at least 0.9.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import unicodedata
from typing import Any, NamedTuple

from fieldsync.domain.evidence import haversine_m

THRESHOLD = 0.5
PHOTO_SEARCH_BITS = 16  # dHash distance at which the band index search still offers a candidate
LIKE_FROM, LIKE_FULL = 0.75, 0.88  # likeness: re-photographed scenes start above / nearly all reach
UNLIKE_FULL = 0.40  # likeness at or below which two photos count fully as different scenes
MAX_ACCURACY_M = 500.0  # a worse fix widens the window no further
CANDIDATES_PER_SIGNAL = 10  # per report and photo signal (unordered): keeps a dense cell's cost bounded
CANDIDATES_NEAREST = 5  # per report: same enterprise before and after in time, same window nearest in space
CANDIDATES_KEPT = 10  # stored per report, best first: what a reviewer compares; a dense cell scores ~100


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


_OTHER_WINDOW = Window(500, 2 * _DAY)


@functools.lru_cache(maxsize=256)
def window(kind: str, category: str) -> Window:
    """How far apart in space and time two reports of this kind and category may be one event
    (cached: a dense cell asks it for every pair)."""
    return _CATEGORY_WINDOWS.get((kind, category)) or _KIND_WINDOWS.get(kind, _OTHER_WINDOW)


def search_radius_m(kind: str, category: str, accuracy_m: float | None) -> float:
    """The box the index search uses: the window plus this fix and the worst other fix counted."""
    return window(kind, category).radius_m + min(accuracy_m or 0.0, MAX_ACCURACY_M) + MAX_ACCURACY_M


@functools.lru_cache(maxsize=8192)
def _characters(text: str) -> frozenset[str]:
    """The letters and digits of ``text`` after NFKC and case folding; cached, because a batch
    scores each report against dozens of candidates that are themselves candidates of others."""
    return frozenset(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())


def text_similarity(a: str, b: str) -> float:
    """Dice coefficient of the characters: 1 for the same text, ~0 for unrelated text."""
    x, y = _characters(a), _characters(b)
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
    likeness: float | None  # the best photo likeness in [-1, 1], None when either side has no thumbprint


class Measures(NamedTuple):
    """What a pair's reasons quote, kept from scoring so that explaining does not score again."""

    text: float
    enterprise: bool
    near: bool
    distance_m: float
    seconds_apart: float
    reach_m: float


@dataclasses.dataclass(frozen=True, slots=True)
class Scored:
    score: float
    reasons: list[dict[str, Any]]
    features: dict[str, float]
    measures: Measures


OPEN_STATUSES = frozenset({"submitted", "needs_info", "verified", "rectifying", "rectified"})

FEATURES = ("same_photo", "photo_like", "photo_unlike", "text", "place")
# Logistic regression (C = 10) on the 33,002 pairs scored by ``scripts/eval_dedupe --seed 11
# --features``, rounded to one decimal (ADR 0011 has the fit), except ``photo_unlike``: the fit
# wanted -9.4, which no words or place could outweigh. The eval's duplicates always share a scene,
# so it cannot see two officers photographing one event from different sides; at -4.0 the same
# words at the same place and time still make a candidate (0.62) despite different photos.
WEIGHTS = {"same_photo": 4.8, "photo_like": 5.3, "photo_unlike": -4.0, "text": 9.4, "place": 11.0}
INTERCEPT = -14.8


def _clip(value: float) -> float:
    return max(0.0, min(1.0, value))


_W_SAME, _W_LIKE, _W_UNLIKE, _W_TEXT, _W_PLACE = (WEIGHTS[name] for name in FEATURES)


def score(a: Side, b: Side, pair: PairFeatures, *, explain: bool = True) -> Scored:
    """Score in [0, 1] that ``a`` and ``b`` report the same thing, the features it was computed
    from, and the reasons that fired; ``explain=False`` leaves the reasons out (a dense cell scores
    about a hundred candidates per report and keeps ten: the caller explains those it keeps)."""
    same_photo = pair.same_photo is not None
    like = unlike = 0.0
    if not same_photo and pair.likeness is not None:
        like = _clip((pair.likeness - LIKE_FROM) / (LIKE_FULL - LIKE_FROM))
        unlike = _clip((LIKE_FROM - pair.likeness) / (LIKE_FROM - UNLIKE_FULL))
    text = text_similarity(a.text, b.text)
    same_kind = a.kind == b.kind and a.category == b.category
    enterprise = (same_kind and a.credit_code is not None and a.credit_code == b.credit_code
                  and b.status in OPEN_STATUSES)
    place = dist = gap = reach = 0.0
    near = False
    if same_kind:
        win = window(a.kind, a.category)
        dist = haversine_m(a.lat, a.lon, b.lat, b.lon)
        reach = win.radius_m + min(a.accuracy_m or 0.0, MAX_ACCURACY_M) + min(b.accuracy_m or 0.0, MAX_ACCURACY_M)
        gap = abs((a.observed_at - b.observed_at).total_seconds())
        near = dist <= reach and gap <= win.seconds
        if (dist <= reach or enterprise) and gap <= win.seconds:
            place = 1.0 - 0.5 * min(1.0, dist / reach) - 0.3 * (gap / win.seconds)
    logit = (INTERCEPT + _W_SAME * (1.0 if same_photo else 0.0) + _W_LIKE * like + _W_UNLIKE * unlike
             + _W_TEXT * text + _W_PLACE * place)
    value = 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))
    if same_photo:
        value = max(value, 0.9)
    value = round(value, 4)
    features = {"same_photo": 1.0 if same_photo else 0.0, "photo_like": like, "photo_unlike": unlike,
                "text": text, "place": place}
    measures = Measures(text, enterprise, near, dist, gap, reach)
    return Scored(value, reasons(a, pair, measures) if explain else [], features, measures)


def reasons(a: Side, pair: PairFeatures, measures: Measures) -> list[dict[str, Any]]:
    """The signals that fired for a pair ``score`` measured, each with its numbers and a sentence."""
    found: list[dict[str, Any]] = []
    if pair.same_photo is not None:
        found.append({"signal": "same_photo", "sha256": pair.same_photo,
                      "detail": "the same photo (equal sha256) is attached to both"})
    elif pair.likeness is not None and pair.likeness >= LIKE_FROM:
        found.append({"signal": "similar_photo", "likeness": round(pair.likeness, 3),
                      "detail": f"the photos match at {round(pair.likeness * 100)}% (32×32 grey "
                                "thumbnails, normalised correlation, best of small shifts)"})
    text = measures.text
    if text >= 0.5:
        found.append({"signal": "similar_text", "similarity": round(text, 3),
                      "detail": f"title and description share {round(text * 100)}% of their characters"})
    if measures.enterprise:
        found.append({"signal": "same_enterprise", "credit_code": a.credit_code,
                      "detail": f"same enterprise {a.credit_code} and category, still open"})
    if measures.near:
        win = window(a.kind, a.category)
        dist, gap = measures.distance_m, measures.seconds_apart
        found.append({"signal": "nearby", "distance_m": round(dist, 1), "hours_apart": round(gap / _HOUR, 1),
                      "detail": f"same {a.kind} category {a.category}, {round(dist)} m and "
                                f"{round(gap / _HOUR, 1)} h apart (window {round(measures.reach_m)} m, "
                                f"{round(win.seconds / _HOUR)} h)"})
    return found
