"""Statistics rules that need no I/O: the reporting window, the year before it, change ratios.

Windows are half-open, ``[from, to)`` on ``observed_at``. A bound given as a date
(``2026-01-01``) means midnight in China Standard Time (UTC+08:00, no daylight saving), the
clock the bureaus keep their yearly and quarterly books by; a bound given as a date-time must
carry its offset (RFC 3339). Missing bounds default to the current calendar year in that zone:
``from`` to 1 January of the current year, ``to`` to 1 January of the next. The comparison
window is the same window one calendar year earlier (29 February falls back to the 28th).

A change ratio is ``(current - previous) / previous``: -0.3269 reads "down 32.69 %". It is null
when there is nothing to compare with (``previous`` is zero or null, or ``current`` is null).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from fieldsync import errors
from fieldsync.domain.timeframes import REPORTING_TZ, parse_instant

GROUP_BY = ("jurisdiction", "category", "kind", "status")
KINDS = ("hazard", "disaster", "accident")
# Merged reports are never counted: the survivor carries the finding.
COUNTED_STATUSES = ("submitted", "needs_info", "verified", "rejected", "rectifying", "rectified", "closed")
LOSS_COUNTS = (
    "deaths", "missing", "injured", "affected_people", "evacuated_people", "houses_collapsed", "houses_damaged",
)
LOSS_AMOUNTS = ("crop_area_ha", "direct_loss_cny")
LOSS_FIELDS = LOSS_COUNTS + LOSS_AMOUNTS



@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    start: dt.datetime
    end: dt.datetime

    def year_before(self) -> Window:
        return Window(_year_before(self.start), _year_before(self.end))


def _year_before(when: dt.datetime) -> dt.datetime:
    try:
        return when.replace(year=when.year - 1)
    except ValueError:  # 29 February
        return when.replace(year=when.year - 1, day=28)


def parse_bound(text: str, *, field: str) -> dt.datetime:
    """A window bound from a query parameter (``domain.timeframes``)."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise errors.StatsWindowInvalid(f"{field}: {exc}; got {text[:40]!r}", field=field) from None


def window(start: str | None, end: str | None, *, now: dt.datetime) -> Window:
    """The reporting window from the ``from`` / ``to`` parameters; the current year by default."""
    year = now.astimezone(REPORTING_TZ).year
    lo = parse_bound(start, field="from") if start is not None else dt.datetime(year, 1, 1, tzinfo=REPORTING_TZ)
    hi = parse_bound(end, field="to") if end is not None else dt.datetime(year + 1, 1, 1, tzinfo=REPORTING_TZ)
    if lo >= hi:
        raise errors.StatsWindowInvalid("from must lie before to (the window is [from, to))", field="from")
    return Window(lo, hi)


def change(current: float | None, previous: float | None) -> float | None:
    """Relative change from ``previous`` to ``current``; null when it is undefined."""
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None
