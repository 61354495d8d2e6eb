"""Evidence checks of a photo against its report: how far from the reported place, and how long
before or after the observation, it was taken. Large gaps are flagged for the supervisor
("this photo was taken 40 km away"); nothing is rejected, because field clocks and GPS lie."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

EARTH_RADIUS_M = 6_371_008.8
MIN_DISTANCE_FLAG_M = 1_000.0
TIME_GAP_FLAG_S = 24 * 3600.0


@dataclasses.dataclass(frozen=True, slots=True)
class Evidence:
    distance_m: float | None
    time_gap_s: float | None
    flags: list[str]


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def check_photo(
    *,
    report_lat: float,
    report_lon: float,
    accuracy_m: float | None,
    observed_at: dt.datetime,
    photo_lat: float | None,
    photo_lon: float | None,
    taken_at: dt.datetime | None,
    taken_at_local: dt.datetime | None,
) -> Evidence:
    """Distance and time gap of one photo; ``taken_at_local`` (EXIF without offset) is compared
    with the observation in the device's own offset."""
    flags: list[str] = []
    distance: float | None = None
    if photo_lat is not None and photo_lon is not None:
        distance = haversine_m(report_lat, report_lon, photo_lat, photo_lon)
        if distance > MIN_DISTANCE_FLAG_M + 3 * (accuracy_m or 0.0):
            flags.append("location_far")
    else:
        flags.append("no_gps")
    gap: float | None = None
    if taken_at is not None:
        gap = (taken_at - observed_at).total_seconds()
    elif taken_at_local is not None:
        gap = (taken_at_local - observed_at.replace(tzinfo=None)).total_seconds()
    else:
        flags.append("no_timestamp")
    if gap is not None and abs(gap) > TIME_GAP_FLAG_S:
        flags.append("time_far")
    return Evidence(distance_m=None if distance is None else round(distance, 1), time_gap_s=gap, flags=flags)
