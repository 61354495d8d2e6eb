"""The bureaus' clock: China Standard Time (UTC+08:00, no daylight saving), and how a date or a
date-time given by a person or a query string becomes an instant.

A plain date (``2026-06-01``) means midnight of that day in China Standard Time, wherever it is
read: the list's ``observed_from``, the stats window, the console's filters. A date-time must
carry its offset. A ``+`` left unencoded in a query string arrives as a space and is read back
as the ``+`` it was. Years outside 1901..9998 are refused, so that "a year earlier" and "the
next year" always exist.
"""

from __future__ import annotations

import datetime as dt
import re

REPORTING_TZ = dt.timezone(dt.timedelta(hours=8), "CST")
INSTANT_HELP = "a date (midnight China Standard Time) or an RFC 3339 date-time with offset"
MIN_YEAR, MAX_YEAR = 1901, 9998
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_instant(text: str) -> dt.datetime:
    """The instant ``text`` names (aware, in the offset it was given in); ``ValueError`` saying why not."""
    value = text.strip()
    if len(value) > 19 and value[-6] == " ":
        value = value[:-6] + "+" + value[-5:]
    try:
        if _DATE.fullmatch(value):
            parsed = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), REPORTING_TZ)
        else:
            parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except (ValueError, OverflowError):
        raise ValueError(f"not {INSTANT_HELP}") from None
    if parsed.tzinfo is None:
        raise ValueError("a date-time needs a UTC offset (or give a plain date)")
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValueError(f"the year must lie between {MIN_YEAR} and {MAX_YEAR}")
    return parsed
