"""The map and the statistics pages: the caller's area at a glance, and the year-end figures."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.di import Provide
from litestar.params import Parameter

from fieldsync.api.console import charts, data, messages, svgmap
from fieldsync.api.console.present import Format, Names
from fieldsync.api.console.reports import names_for, selected_filters
from fieldsync.api.console.web import drop_empty_filters, filter_pairs, language, render, with_query
from fieldsync.api.deps import Connection, runtime_of
from fieldsync.api.stats import BOUND_PATTERN
from fieldsync.domain.principals import Principal


def area_of(places: dict[str, data.Place], prefix: str) -> dict[str, str]:
    """jurisdiction code → the code of the caller's direct child area holding it (its county)."""
    areas: dict[str, str] = {}
    for code, place in places.items():
        rest = [part for part in place.path[len(prefix):].split("/") if part] if place.path.startswith(prefix) else []
        areas[code] = rest[0] if rest else code
    return areas


class ConsoleOverviewController(Controller):
    path = "/console"
    dependencies = {"where": Provide(data.report_filter)}

    @get("/map", name="console:map", before_request=drop_empty_filters)
    async def map(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection, now: dt.datetime,
        where: data.ReportFilter,
    ) -> Response[str]:
        found, truncated = await data.map_points(conn, principal, where, now=now)
        names, places = await names_for(conn, principal, language(request))
        by_code = {p.code: p for p in places}
        areas = area_of(by_code, principal.scope_prefix)
        points = [
            svgmap.Point(str(p.id), p.lat, p.lon, p.status, p.title, areas.get(p.jurisdiction), p.overdue)
            for p in found
        ]
        settings = runtime_of(request.app.state).settings
        boundaries = svgmap.load_boundaries(settings.console_boundaries, set(by_code))
        pairs = [(k, v) for k, v in filter_pairs(request) if k != "bbox"]
        view = svgmap.draw(
            points, boundaries, area_name=names.place,
            cell_href=lambda bbox: with_query("/console/reports", pairs, bbox=bbox),
        )
        return render(
            request, "map.html", view=view, names=names, places=places, truncated=truncated,
            has_boundaries=bool(boundaries), selected=selected_filters(request), statuses=svgmap.STATUS_COLOURS,
            queue_url=with_query("/console/reports", filter_pairs(request)), count=len(points),
        )

    @get("/stats", name="console:stats")
    async def stats(
        self, request: Request[Any, Any, Any], principal: Principal, conn: Connection, now: dt.datetime,
        window_from: Annotated[str | None, Parameter(query="from", pattern=BOUND_PATTERN)] = None,
        window_to: Annotated[str | None, Parameter(query="to", pattern=BOUND_PATTERN)] = None,
        jurisdiction: Annotated[str | None, Parameter(pattern=r"^[0-9]{6}([0-9]{6})?$")] = None,
    ) -> Response[str]:
        result = await data.statistics(conn, principal, start=window_from, end=window_to, jurisdiction=jurisdiction,
                                       now=now)
        lang = language(request)
        names, places = await names_for(conn, principal, lang)
        t = messages.translator(lang)
        return render(
            request, "stats.html", s=result, names=names, places=places, charts=stat_charts(result, names, t),
            window_from=window_from or "", window_to=window_to or "", jurisdiction=jurisdiction or "",
        )


def stat_charts(result: data.Stats, names: Names, t: messages.Translator) -> list[charts.Chart]:
    fmt = Format(t)
    groups = list(result.groups)

    def label(group: Any) -> str:
        return names.place(group.key) + ("" if group.key != result.jurisdiction else t("stats.own_node"))

    found = charts.bar_chart(
        t("stats.chart_found"),
        [(label(g), g.current.hazards.found, g.previous.hazards.found) for g in groups],
        show=fmt.number,
    )
    closure = charts.bar_chart(
        t("stats.chart_closure"),
        [(label(g), g.current.hazards.closure_rate, g.previous.hazards.closure_rate) for g in groups],
        show=fmt.percent,
    )
    types = sorted(result.total.disaster_types.values(), key=lambda d: -(d.current.reports + d.previous.reports))
    by_type = charts.bar_chart(
        t("stats.chart_types"),
        [(names.category("disaster", d.category), d.current.reports, d.previous.reports) for d in types],
        show=fmt.number,
    )
    return [found, closure, by_type]
