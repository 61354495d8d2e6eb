"""Wire types for ``GET /v1/stats``: figures for the window and the year before, and the change.

Every figure block comes twice (``current``, ``previous``) with a ``change`` of the same shape
whose numbers are relative changes, ``(current - previous) / previous``, null when undefined.
"""

from __future__ import annotations

import datetime as dt

import msgspec

Ratio = float | None


class WindowRead(msgspec.Struct):
    """A half-open window ``[from, to)`` on ``observed_at``."""

    from_: dt.datetime = msgspec.field(name="from")
    to: dt.datetime


class LossesRead(msgspec.Struct):
    """Disaster losses (自然灾害损失), summed over incidents."""

    deaths: int
    missing: int
    injured: int
    affected_people: int
    evacuated_people: int
    houses_collapsed: int
    houses_damaged: int
    crop_area_ha: float
    direct_loss_cny: float


class HazardFiguresRead(msgspec.Struct):
    """Hazards (隐患) neither merged nor rejected, and where they stand in the rectification loop."""

    found: int
    major: int
    listed: int
    rectified_on_time: int
    overdue: int
    closed: int
    closure_rate: float | None


class DisasterFiguresRead(msgspec.Struct):
    reports: int
    incidents: int
    losses: LossesRead


class AccidentFiguresRead(msgspec.Struct):
    count: int
    deaths: int
    injured: int
    direct_loss_cny: float


class FiguresRead(msgspec.Struct):
    reports: int
    hazards: HazardFiguresRead
    disasters: DisasterFiguresRead
    accidents: AccidentFiguresRead


class LossesChange(msgspec.Struct):
    deaths: Ratio
    missing: Ratio
    injured: Ratio
    affected_people: Ratio
    evacuated_people: Ratio
    houses_collapsed: Ratio
    houses_damaged: Ratio
    crop_area_ha: Ratio
    direct_loss_cny: Ratio


class HazardChange(msgspec.Struct):
    found: Ratio
    major: Ratio
    listed: Ratio
    rectified_on_time: Ratio
    overdue: Ratio
    closed: Ratio
    closure_rate: Ratio


class DisasterChange(msgspec.Struct):
    reports: Ratio
    incidents: Ratio
    losses: LossesChange


class AccidentChange(msgspec.Struct):
    count: Ratio
    deaths: Ratio
    injured: Ratio
    direct_loss_cny: Ratio


class FiguresChange(msgspec.Struct):
    reports: Ratio
    hazards: HazardChange
    disasters: DisasterChange
    accidents: AccidentChange


class DisasterTypeRead(msgspec.Struct):
    """One disaster type (灾种): its reports, incidents and losses in both windows."""

    category: str
    name_zh: str | None
    current: DisasterFiguresRead
    previous: DisasterFiguresRead
    change: DisasterChange


class StatsGroupRead(msgspec.Struct):
    """One group: a child jurisdiction (subtree rolled up), a category (with its kind), a kind or a
    status."""

    key: str
    kind: str | None
    name_zh: str | None
    current: FiguresRead
    previous: FiguresRead
    change: FiguresChange
    disasters_by_type: list[DisasterTypeRead]


class StatsRead(msgspec.Struct):
    window: WindowRead
    previous_window: WindowRead
    jurisdiction: str | None
    group_by: str | None
    current: FiguresRead
    previous: FiguresRead
    change: FiguresChange
    disasters_by_type: list[DisasterTypeRead]
    groups: list[StatsGroupRead]
