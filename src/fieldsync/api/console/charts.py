"""Simple SVG bar charts for the statistics page: one row per county (or type), two bars per row,
this period and the year before, drawn to a common scale. Geometry only; the template draws it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

WIDTH = 600.0
LABEL_W = 150.0
VALUE_W = 64.0
ROW_H = 32.0
BAR_H = 12.0
TOP = 8.0


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    y: float
    width: float
    value: str
    previous: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    label: str
    label_y: float
    bars: tuple[Bar, Bar]


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: float
    height: float
    bar_x: float
    rows: list[Row]


def bar_chart(
    title: str, rows: list[tuple[str, float | None, float | None]], *, show: Callable[[float | None], str]
) -> Chart:
    """Rows of (label, current, previous); ``show`` formats a value for its label."""
    top = max([abs(v) for _, c, p in rows for v in (c, p) if v is not None] or [0.0]) or 1.0
    span = WIDTH - LABEL_W - VALUE_W - 8
    drawn = []
    for i, (label, current, previous) in enumerate(rows):
        y = TOP + i * ROW_H
        bars = (
            Bar(y, span * (current or 0) / top, show(current), False),
            Bar(y + BAR_H + 1, span * (previous or 0) / top, show(previous), True),
        )
        drawn.append(Row(label, y + BAR_H + 1, bars))
    return Chart(title, WIDTH, TOP * 2 + ROW_H * len(rows), LABEL_W, drawn)
