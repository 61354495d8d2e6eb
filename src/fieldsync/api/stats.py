"""``GET /v1/stats``: the figures a bureau reports upward, for the caller's view."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get
from litestar.params import Parameter

from fieldsync.api.deps import Connection
from fieldsync.api.problems import problem_responses
from fieldsync.api.schemas.common import JURISDICTION_PATTERN, exact
from fieldsync.api.schemas.stats import (
    DisasterTypeRead,
    FiguresChange,
    FiguresRead,
    StatsGroupRead,
    StatsRead,
    WindowRead,
)
from fieldsync.domain.principals import Principal
from fieldsync.domain.stats import Window
from fieldsync.services import stats

BOUND = "a date (midnight UTC+08:00) or an RFC 3339 date-time with offset"
BOUND_PATTERN = exact(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?"
)


def _window(window: Window) -> WindowRead:
    return WindowRead(from_=window.start, to=window.end)


def _types(block: stats.Block) -> list[DisasterTypeRead]:
    return [
        msgspec.convert(
            {"category": t.category, "name_zh": t.name_zh, "current": t.current, "previous": t.previous,
             "change": t.change},
            DisasterTypeRead, from_attributes=True,
        )
        for t in sorted(block.disaster_types.values(), key=lambda t: t.category)
    ]


def _figures(block: stats.Block) -> tuple[FiguresRead, FiguresRead, FiguresChange]:
    return (
        msgspec.convert(block.current, FiguresRead, from_attributes=True),
        msgspec.convert(block.previous, FiguresRead, from_attributes=True),
        msgspec.convert(block.change, FiguresChange),
    )


def to_read(result: stats.Stats) -> StatsRead:
    current, previous, change = _figures(result.total)
    groups = []
    for group in result.groups:
        g_current, g_previous, g_change = _figures(group)
        groups.append(StatsGroupRead(
            key=group.key, kind=group.kind, name_zh=group.name_zh, current=g_current, previous=g_previous,
            change=g_change, disasters_by_type=_types(group),
        ))
    return StatsRead(
        window=_window(result.window), previous_window=_window(result.previous_window),
        jurisdiction=result.jurisdiction, group_by=result.group_by, current=current, previous=previous,
        change=change, disasters_by_type=_types(result.total), groups=groups,
    )


class StatsController(Controller):
    path = "/v1/stats"
    tags = ["review"]
    security = [{"bearer": []}]

    @get(
        summary="Counts, hazard closure, disaster losses and accidents for a window and the year before",
        description=(
            "Reports observed in `[from, to)` within the caller's view (inspector: own reports; supervisor: "
            "subtree; `jurisdiction` narrows to a subtree inside it, outside → 403 `jurisdiction.out_of_scope`), "
            "merged reports never counted. `previous` is the same window one year earlier and `change` the "
            "relative change. `group_by=jurisdiction` rolls subtrees up to the direct children of the view's node."
        ),
        responses=problem_responses(400, 401, 403),
    )
    async def get_stats(
        self,
        principal: Principal,
        conn: Connection,
        now: dt.datetime,
        window_from: Annotated[
            str | None,
            Parameter(query="from", pattern=BOUND_PATTERN, description=f"Start, inclusive: {BOUND}; default 1 January"),
        ] = None,
        window_to: Annotated[
            str | None,
            Parameter(query="to", pattern=BOUND_PATTERN, description=f"End, exclusive: {BOUND}; default next 1 January"),
        ] = None,
        jurisdiction: Annotated[
            str | None, Parameter(pattern=JURISDICTION_PATTERN, description="Narrow to this subtree")
        ] = None,
        group_by: Annotated[
            Literal["jurisdiction", "category", "kind", "status"] | None,
            Parameter(description="Group the figures by this dimension"),
        ] = None,
    ) -> StatsRead:
        result = await stats.get_stats(
            conn, principal, start=window_from, end=window_to, jurisdiction=jurisdiction, group_by=group_by,
            now=now,
        )
        return to_read(result)
