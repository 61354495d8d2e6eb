"""The console map, drawn by the server as SVG: no tiles, no script, nothing from outside.

Points are projected with spherical Web Mercator and fitted (aspect kept) into a fixed viewBox
around everything drawn: the reports in view and, if the operator supplied a boundaries file
(``FIELDSYNC_CONSOLE_BOUNDARIES``, GeoJSON polygons whose ``code``/``adcode`` property is a
jurisdiction code), the borders of the jurisdictions in the caller's view. Coordinates stay
WGS-84 throughout: a boundaries file in GCJ-02 (as Chinese web maps publish them) would sit a few
hundred metres off, so the file must be WGS-84 (docs/console.md).

Each point is coloured by status and links to its report; overdue ones get a red ring. Above
``CLUSTER_ABOVE`` points they are binned into a grid, each cell a circle sized by its count and
coloured by its most common status, linking to the queue filtered to that cell's bbox.
County labels sit at the centre of the county's boundary, else of its reports.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

WIDTH, HEIGHT, PAD = 1000.0, 640.0, 28.0
CLUSTER_ABOVE = 1500
CELL_PX = 18.0
STATUS_COLOURS = {
    "submitted": "#1f6fd1", "needs_info": "#8e44ad", "verified": "#0f9aa8", "rejected": "#7f7f7f",
    "merged": "#b0b0b0", "rectifying": "#e67e00", "rectified": "#a3a300", "closed": "#2e9d3a",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Point:
    id: str
    lat: float
    lon: float
    status: str
    title: str
    area: str | None  # the code of the caller's child area holding it (the county), if any
    overdue: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Dot:
    x: float
    y: float
    r: float
    colour: str
    href: str
    title: str
    ring: bool
    count: int = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Label:
    x: float
    y: float
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Boundary:
    code: str | None
    rings: tuple[tuple[tuple[float, float], ...], ...]  # (lon, lat) rings


@dataclasses.dataclass(frozen=True, slots=True)
class MapView:
    width: float
    height: float
    dots: list[Dot]
    labels: list[Label]
    paths: list[str]
    legend: list[tuple[str, str, int]]
    clustered: bool

    @property
    def empty(self) -> bool:
        return not self.dots and not self.paths


def mercator(lat: float, lon: float) -> tuple[float, float]:
    lat = max(min(lat, 85.0), -85.0)
    return math.radians(lon), math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


def inverse_mercator(x: float, y: float) -> tuple[float, float]:
    return math.degrees(2 * math.atan(math.exp(y)) - math.pi / 2), math.degrees(x)


@dataclasses.dataclass(frozen=True, slots=True)
class Fit:
    """Projected (Mercator) coordinates → viewBox pixels, and back."""

    min_x: float
    max_y: float
    scale: float
    off_x: float
    off_y: float

    @classmethod
    def around(cls, coords: Iterable[tuple[float, float]]) -> Fit:
        xs, ys = zip(*coords, strict=True)
        min_x, max_x, min_y, max_y = min(xs), max(xs), min(ys), max(ys)
        span_x, span_y = max(max_x - min_x, 1e-4), max(max_y - min_y, 1e-4)
        scale = min((WIDTH - 2 * PAD) / span_x, (HEIGHT - 2 * PAD) / span_y)
        off_x = (WIDTH - span_x * scale) / 2
        off_y = (HEIGHT - span_y * scale) / 2
        return cls(min_x, max_y, scale, off_x, off_y)

    def px(self, lat: float, lon: float) -> tuple[float, float]:
        x, y = mercator(lat, lon)
        return self.off_x + (x - self.min_x) * self.scale, self.off_y + (self.max_y - y) * self.scale

    def lat_lon(self, px: float, py: float) -> tuple[float, float]:
        return inverse_mercator((px - self.off_x) / self.scale + self.min_x, self.max_y - (py - self.off_y) / self.scale)


def draw(
    points: list[Point], boundaries: list[Boundary], *, area_name: Callable[[str], str],
    cell_href: Callable[[str], str],
) -> MapView:
    """The map of ``points`` over ``boundaries``; ``cell_href(bbox)`` links a cluster to the queue."""
    coords = [mercator(p.lat, p.lon) for p in points]
    coords += [mercator(lat, lon) for b in boundaries for ring in b.rings for lon, lat in ring]
    counts = Counter(p.status for p in points)
    legend = [(s, c, counts[s]) for s, c in STATUS_COLOURS.items() if counts[s]]
    if not coords:
        return MapView(WIDTH, HEIGHT, [], [], [], legend, False)
    fit = Fit.around(coords)
    paths = [_path(fit, b) for b in boundaries]
    clustered = len(points) > CLUSTER_ABOVE
    dots = _clusters(fit, points, cell_href) if clustered else [_dot(fit, p) for p in points]
    return MapView(WIDTH, HEIGHT, dots, _labels(fit, points, boundaries, area_name), paths, legend, clustered)


def _dot(fit: Fit, p: Point) -> Dot:
    x, y = fit.px(p.lat, p.lon)
    return Dot(round(x, 1), round(y, 1), 5.0, STATUS_COLOURS.get(p.status, "#444"), f"/console/reports/{p.id}",
               p.title, p.overdue)


def _clusters(fit: Fit, points: list[Point], cell_href: Callable[[str], str]) -> list[Dot]:
    cells: dict[tuple[int, int], list[Point]] = defaultdict(list)
    for p in points:
        x, y = fit.px(p.lat, p.lon)
        cells[(int(x // CELL_PX), int(y // CELL_PX))].append(p)
    dots = []
    for (cx, cy), members in cells.items():
        status = Counter(m.status for m in members).most_common(1)[0][0]
        lat_a, lon_a = fit.lat_lon(cx * CELL_PX, (cy + 1) * CELL_PX)
        lat_b, lon_b = fit.lat_lon((cx + 1) * CELL_PX, cy * CELL_PX)
        bbox = f"{lon_a:.5f},{lat_a:.5f},{lon_b:.5f},{lat_b:.5f}"
        radius = min(4 + 2.2 * math.sqrt(len(members)), CELL_PX)
        dots.append(Dot(round((cx + 0.5) * CELL_PX, 1), round((cy + 0.5) * CELL_PX, 1), round(radius, 1),
                        STATUS_COLOURS.get(status, "#444"), cell_href(bbox), str(len(members)),
                        any(m.overdue for m in members), len(members)))
    return dots


def _labels(fit: Fit, points: list[Point], boundaries: list[Boundary], area_name: Callable[[str], str]) -> list[Label]:
    centres: dict[str, tuple[float, float]] = {}
    for b in boundaries:
        if b.code and b.rings:
            ring = max(b.rings, key=len)
            centres[b.code] = (sum(lat for _, lat in ring) / len(ring), sum(lon for lon, _ in ring) / len(ring))
    by_area: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        if p.area:
            by_area[p.area].append(p)
    for code, members in by_area.items():
        centres.setdefault(code, (sum(m.lat for m in members) / len(members), sum(m.lon for m in members) / len(members)))
    labels = []
    for code, (lat, lon) in sorted(centres.items()):
        x, y = fit.px(lat, lon)
        labels.append(Label(round(x, 1), round(y, 1), area_name(code)))
    return labels


def _path(fit: Fit, boundary: Boundary) -> str:
    parts = []
    for ring in boundary.rings:
        pts = [fit.px(lat, lon) for lon, lat in ring]
        kept = [pts[0]]
        for x, y in pts[1:]:
            if abs(x - kept[-1][0]) + abs(y - kept[-1][1]) >= 1.0:  # drop sub-pixel detail
                kept.append((x, y))
        parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in kept) + "Z")
    return "".join(parts)


# --- the operator's boundaries file ---------------------------------------------------------------


def load_boundaries(path: Path | None, codes_in_view: set[str]) -> list[Boundary]:
    """Polygons of the jurisdictions in view (features without a code are drawn too)."""
    if path is None:
        return []
    try:
        stat = path.stat()
    except OSError:
        return []
    return [b for b in _read_boundaries(str(path), stat.st_mtime_ns) if b.code is None or b.code in codes_in_view]


@functools.lru_cache(maxsize=4)
def _read_boundaries(path: str, mtime_ns: int) -> tuple[Boundary, ...]:
    """Parsed once per file version; an unreadable file draws nothing rather than failing pages."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    features = document.get("features", []) if isinstance(document, dict) else []
    found = []
    for feature in features:
        boundary = _boundary(feature)
        if boundary is not None:
            found.append(boundary)
    return tuple(found)


def _boundary(feature: Any) -> Boundary | None:
    if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
        return None
    props = feature.get("properties") or {}
    code = next((str(props[k]) for k in ("code", "adcode", "gb") if isinstance(props, dict) and props.get(k)), None)
    geometry = feature["geometry"]
    polygons = {"Polygon": [geometry.get("coordinates")], "MultiPolygon": geometry.get("coordinates")}.get(
        geometry.get("type"), []
    ) or []
    rings = []
    for polygon in polygons:
        for ring in polygon or []:
            try:
                rings.append(tuple((float(c[0]), float(c[1])) for c in ring if len(c) >= 2))
            except (TypeError, ValueError):
                return None
    return Boundary(code, tuple(r for r in rings if len(r) >= 3)) if rings else None
