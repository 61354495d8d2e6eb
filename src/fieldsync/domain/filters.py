"""The review list's filters as values (``GET /v1/reports``, the export, the console): read
from the wire by ``api``, resolved against the caller's scope by ``services.listing``, turned
into SQL by ``db.listing``. Pure: no I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

from fieldsync.domain.evidence import EARTH_RADIUS_M


@dataclasses.dataclass(frozen=True, slots=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


@dataclasses.dataclass(frozen=True, slots=True)
class Near:
    lat: float
    lon: float
    radius_m: float


@dataclasses.dataclass(frozen=True, slots=True)
class ReportFilter:
    """The list's filters, already validated; empty tuples and None mean "no restriction"."""

    kinds: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    grades: tuple[str, ...] = ()
    jurisdiction_path: str | None = None
    observed_from: dt.datetime | None = None
    observed_to: dt.datetime | None = None
    updated_since: dt.datetime | None = None
    bbox: BBox | None = None
    near: Near | None = None
    terms: tuple[str, ...] = ()
    overdue: bool | None = None
    listed: bool | None = None
    missing_media: bool | None = None
    has_duplicates: bool | None = None


def near_box(near: Near) -> BBox:
    """The smallest lat/lon box holding every point within ``radius_m`` of the centre (great circle).

    Longitude half-width is asin(sin δ / cos φ) (δ the angular radius), exact for a sphere; a
    circle reaching a pole or across the antimeridian takes every longitude instead, which only
    weakens the prefilter. A relative margin keeps rounding from cutting off points on the rim.
    """
    delta = near.radius_m / EARTH_RADIUS_M * (1 + 1e-9)
    lat_span = math.degrees(delta)
    min_lat, max_lat = near.lat - lat_span, near.lat + lat_span
    if min_lat <= -90 or max_lat >= 90:
        return BBox(-180.0, max(min_lat, -90.0), 180.0, min(max_lat, 90.0))
    ratio = math.sin(delta) / math.cos(math.radians(near.lat))
    lon_span = math.degrees(math.asin(min(1.0, ratio))) * (1 + 1e-9) + 1e-9
    min_lon, max_lon = near.lon - lon_span, near.lon + lon_span
    if ratio >= 1.0 or min_lon < -180 or max_lon > 180:
        return BBox(-180.0, min_lat, 180.0, max_lat)
    return BBox(min_lon, min_lat, max_lon, max_lat)
