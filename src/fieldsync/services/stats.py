"""Statistics for supervisors (and inspectors, over their own reports): one aggregate statement
answers the current window and the year before it, overall, per group and per disaster type.

The view is the caller's: an inspector counts its own reports, a supervisor its subtree, an
admin everything. ``jurisdiction`` narrows that view to a subtree inside it; naming one outside
is ``jurisdiction.out_of_scope``. Figures describe the reports *observed* in a window as they
stand now: a hazard found last year and closed this spring counts as closed in last year's
column, and ``overdue`` is measured against the current time in both columns.

Definitions (docs/decisions/0005-statistics.md has the reasoning):
- ``reports``: every report except merged ones (a merged report lives on in its survivor).
- hazards ``found``: hazard reports neither merged nor rejected; ``major`` and ``listed`` (挂牌督办)
  among them; ``rectified_on_time``: rectified or closed with ``rectified_at`` ≤ the deadline;
  ``overdue``: rectifying with the deadline passed; ``closed`` (销号); ``closure_rate`` =
  closed ÷ found, null when none were found.
- disasters: ``reports`` (not rejected), ``incidents`` (chains), and losses summed over incidents,
  each taken from the latest report of its chain in the window (final, else latest ``as_of``).
- accidents (not rejected): ``count``, ``deaths``, ``injured``, ``direct_loss_cny``.

Groups: ``jurisdiction`` rolls subtrees up to the direct children of the view's node (the
``jurisdiction`` parameter, else the caller's home, the country for an admin); reports at that
node itself form a group of their own. ``kind`` / ``status`` / ``category`` group by that field
(category together with its kind). Jurisdiction, kind and status groups are listed even when
empty; category groups only when some report has that category.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import asyncpg

from fieldsync import errors
from fieldsync.db import reference
from fieldsync.db import stats as q
from fieldsync.domain import stats as rules
from fieldsync.domain.principals import Principal, Role


@dataclasses.dataclass(slots=True)
class Losses:
    deaths: int = 0
    missing: int = 0
    injured: int = 0
    affected_people: int = 0
    evacuated_people: int = 0
    houses_collapsed: int = 0
    houses_damaged: int = 0
    crop_area_ha: float = 0.0
    direct_loss_cny: float = 0.0


@dataclasses.dataclass(slots=True)
class HazardFigures:
    found: int = 0
    major: int = 0
    listed: int = 0
    rectified_on_time: int = 0
    overdue: int = 0
    closed: int = 0
    closure_rate: float | None = None


@dataclasses.dataclass(slots=True)
class DisasterFigures:
    reports: int = 0
    incidents: int = 0
    losses: Losses = dataclasses.field(default_factory=Losses)


@dataclasses.dataclass(slots=True)
class AccidentFigures:
    count: int = 0
    deaths: int = 0
    injured: int = 0
    direct_loss_cny: float = 0.0


@dataclasses.dataclass(slots=True)
class Figures:
    reports: int = 0
    hazards: HazardFigures = dataclasses.field(default_factory=HazardFigures)
    disasters: DisasterFigures = dataclasses.field(default_factory=DisasterFigures)
    accidents: AccidentFigures = dataclasses.field(default_factory=AccidentFigures)


@dataclasses.dataclass(slots=True)
class DisasterType:
    category: str
    name_zh: str | None
    current: DisasterFigures = dataclasses.field(default_factory=DisasterFigures)
    previous: DisasterFigures = dataclasses.field(default_factory=DisasterFigures)

    @property
    def change(self) -> dict[str, Any]:
        return changes(self.current, self.previous)


@dataclasses.dataclass(slots=True)
class Block:
    """Both windows' figures for one slice (everything, or one group), by disaster type too."""

    current: Figures = dataclasses.field(default_factory=Figures)
    previous: Figures = dataclasses.field(default_factory=Figures)
    disaster_types: dict[str, DisasterType] = dataclasses.field(default_factory=dict)

    @property
    def change(self) -> dict[str, Any]:
        return changes(self.current, self.previous)


@dataclasses.dataclass(slots=True)
class Group(Block):
    key: str = ""
    kind: str | None = None
    name_zh: str | None = None


@dataclasses.dataclass(slots=True)
class Stats:
    window: rules.Window
    previous_window: rules.Window
    jurisdiction: str | None
    group_by: str | None
    total: Block
    groups: list[Group]


def changes(current: Any, previous: Any) -> dict[str, Any]:
    """The relative change of every number in two figures of the same shape, in that shape."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(current):
        now, before = getattr(current, field.name), getattr(previous, field.name)
        out[field.name] = changes(now, before) if dataclasses.is_dataclass(now) else rules.change(now, before)
    return out


def _number(name: str, value: int | Decimal) -> int | float:
    """Sums arrive as numeric; counts of people and houses are whole numbers."""
    return int(value) if name in rules.LOSS_COUNTS else float(value)


def _figures(row: asyncpg.Record) -> Figures:
    found, closed = row["hazards_found"], row["hazards_closed"]
    return Figures(
        reports=row["reports"],
        hazards=HazardFigures(
            found=found, major=row["hazards_major"], listed=row["hazards_listed"],
            rectified_on_time=row["hazards_rectified_on_time"], overdue=row["hazards_overdue"], closed=closed,
            closure_rate=rules.ratio(closed, found),
        ),
        disasters=_disasters(row),
        accidents=AccidentFigures(
            count=row["accidents"], deaths=int(row["accident_deaths"]), injured=int(row["accident_injured"]),
            direct_loss_cny=float(row["accident_direct_loss_cny"]),
        ),
    )


def _disasters(row: asyncpg.Record) -> DisasterFigures:
    # Losses' fields are LOSS_FIELDS by name; mypy cannot check a ** of computed keys
    # LOSS_FIELDS names exactly Losses' fields; mypy cannot check keyword arguments spread from a dict
    losses = Losses(**{name: _number(name, row[f"loss_{name}"]) for name in rules.LOSS_FIELDS})  # type: ignore[arg-type]
    return DisasterFigures(reports=row["disaster_reports"], incidents=row["disaster_incidents"], losses=losses)


async def _view(conn: asyncpg.Connection, actor: Principal, jurisdiction: str | None) -> tuple[q.View, str | None]:
    """The reports the caller's figures cover, and the code of the node they are rolled up to."""
    author = actor.user_id if actor.role is Role.INSPECTOR else None
    if jurisdiction is not None:
        place = await reference.get_jurisdiction(conn, jurisdiction)
        if place is None:
            raise errors.JurisdictionUnknown(f"no jurisdiction with code {jurisdiction}", field="jurisdiction")
        if not actor.sees(place["path"]):
            raise errors.JurisdictionOutOfScope(field="jurisdiction")
        return q.View(path_prefix=place["path"], author_id=author, base_path=place["path"]), jurisdiction
    if actor.is_admin:
        return q.View(path_prefix="/", author_id=None, base_path="/"), None
    # An inspector's own reports, wherever they lie (a moved inspector keeps the old ones).
    prefix = "/" if author is not None else actor.jurisdiction_path
    return q.View(path_prefix=prefix, author_id=author, base_path=actor.jurisdiction_path), actor.jurisdiction


async def get_stats(
    conn: asyncpg.Connection,
    actor: Principal,
    *,
    start: str | None,
    end: str | None,
    jurisdiction: str | None,
    group_by: str | None,
    now: dt.datetime,
) -> Stats:
    if group_by is not None and group_by not in rules.GROUP_BY:
        raise errors.InvalidInput(f"group_by must be one of {', '.join(rules.GROUP_BY)}", field="group_by")
    window = rules.window(start, end, now=now)
    previous = window.year_before()
    view, node = await _view(conn, actor, jurisdiction)
    rows = await q.figures(
        conn, view, current=(window.start, window.end), previous=(previous.start, previous.end), group_by=group_by,
        now=now,
    )

    total = Block()
    groups: dict[tuple[str | None, str], Group] = {}
    if group_by == "jurisdiction":
        for child in await q.child_jurisdictions(conn, view.base_path):
            groups[(None, child["code"])] = Group(key=child["code"], name_zh=child["name_zh"])
    elif group_by == "kind":
        groups = {(None, kind): Group(key=kind) for kind in rules.KINDS}
    elif group_by == "status":
        groups = {(None, status): Group(key=status) for status in rules.COUNTED_STATUSES}

    for row in rows:
        if row["grouped"]:
            if group_by is None:
                continue
            identity = (row["gk"], row["g"])
            group = groups.setdefault(identity, Group(key=row["g"], kind=row["gk"]))
            group.name_zh = group.name_zh or row["name_zh"]
            block: Block = group
        else:
            block = total
        if row["typed"]:
            dtype = block.disaster_types.setdefault(row["dtype"], DisasterType(row["dtype"], row["dtype_name_zh"]))
            setattr(dtype, row["period"], _disasters(row))
        else:
            setattr(block, row["period"], _figures(row))

    ordered = sorted(groups.values(), key=lambda group: (group.kind or "", group.key))
    if group_by == "kind":
        ordered = sorted(ordered, key=lambda group: rules.KINDS.index(group.key))
    elif group_by == "status":
        ordered = sorted(ordered, key=lambda group: rules.COUNTED_STATUSES.index(group.key))
    return Stats(
        window=window, previous_window=previous, jurisdiction=node, group_by=group_by, total=total, groups=ordered,
    )
