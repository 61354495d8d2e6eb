"""GET /v1/stats: every figure equals a brute-force recount over a randomized dataset; the view
follows the caller; bad parameters are 400 problems.

The dataset is built the way production builds it: reports through ``services.reports.submit_reports``
in batches, workflow moves through ``services.workflow.apply_transition`` (merges included), time
moved with the test clock so that some deadlines pass. The recount reads the rows with one plain
SELECT and recomputes every figure in Python, independently of the SQL.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from fieldsync import errors
from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import ReportWrite
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal
from fieldsync.domain.reports import MediaReference
from fieldsync.services import reports, workflow
from tests.support import (
    Actor,
    MutableClock,
    disaster_report,
    hazard_report,
    make_user,
    principal_of,
    problem,
)

CST = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC)
TOWNSHIP = "140431101000"
AFTER = MediaReference("a" * 64, "after", None)
STATUSES = ("submitted", "needs_info", "verified", "rejected", "rectifying", "rectified", "closed")
KINDS = ("hazard", "disaster", "accident")
LOSS_COUNTS = ("deaths", "missing", "injured", "affected_people", "evacuated_people", "houses_collapsed",
               "houses_damaged")
LOSS_AMOUNTS = ("crop_area_ha", "direct_loss_cny")
HAZARD_CATEGORIES = ("coal_mine", "hazardous_chemicals", "fire_safety", "gas", "construction", "fireworks")
DISASTER_CATEGORIES = ("flood", "landslide", "wind_hail", "forest_grassland_fire", "drought")
ACCIDENT_CATEGORIES = ("object_strike", "fall_from_height", "gas_explosion")


def path_of(code: str) -> str:
    if len(code) == 12:
        return f"/140000/140400/{code[:6]}/{code}/"
    if code.endswith("0000"):
        return f"/{code}/"
    if code.endswith("00"):
        return f"/{code[:2]}0000/{code}/"
    return f"/{code[:2]}0000/{code[:4]}00/{code}/"


# --- the dataset ---------------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    people: dict[str, Actor]
    principals: dict[str, Principal]


async def _people(conn: asyncpg.Connection, now: dt.datetime) -> World:
    await conn.execute(
        "INSERT INTO jurisdictions (code, parent_code, name_zh, name_en, level, path) "
        "VALUES ($1, '140431', '沁河镇', 'Qinhe', 'township', $2)",
        TOWNSHIP, path_of(TOWNSHIP),
    )
    homes = {
        "insp_qinyuan": ("inspector", "140431"), "insp_qinyuan2": ("inspector", "140431"),
        "insp_luzhou": ("inspector", "140403"), "insp_pingshun": ("inspector", "140425"),
        "sup_city": ("supervisor", "140400"), "sup_qinyuan": ("supervisor", "140431"),
        "sup_luzhou": ("supervisor", "140403"), "admin": ("admin", "110000"),
    }
    people = {
        name: await make_user(conn, role=role, jurisdiction=code, username=name.replace("_", "-"), now=now)
        for name, (role, code) in homes.items()
    }
    principals = {name: principal_of(actor, path_of(actor.jurisdiction)) for name, actor in people.items()}
    return World(people, principals)


def _when(rng: random.Random) -> dt.datetime:
    """Late 2024 to early 2026, early 2026 denser, some right at the new-year boundary."""
    if rng.random() < 0.1:
        boundary = dt.datetime(2026, 1, 1, tzinfo=CST)
        return boundary + dt.timedelta(minutes=rng.choice([-90, -1, 0, 1, 90]))
    start = dt.datetime(2024, 10, 1, tzinfo=CST) if rng.random() < 0.6 else dt.datetime(2026, 1, 1, tzinfo=CST)
    span = (T0 - dt.timedelta(days=12) - start).total_seconds()
    return start + dt.timedelta(seconds=rng.randrange(int(span)))


def _losses(rng: random.Random) -> dict[str, Any]:
    losses: dict[str, Any] = {}
    for name in LOSS_COUNTS:
        if rng.random() < 0.6:
            losses[name] = rng.randrange(0, 500)
    if rng.random() < 0.6:
        losses["crop_area_ha"] = rng.randrange(0, 100_000) / 10
    if rng.random() < 0.6:
        losses["direct_loss_cny"] = rng.randrange(0, 10_000_000) / 100
    return losses


def _bodies(rng: random.Random, home: str) -> list[dict[str, Any]]:
    """One hazard, one accident, or one disaster chain (initial, updates, maybe a final)."""
    where = TOWNSHIP if home == "140431" and rng.random() < 0.3 else home
    observed = _when(rng)
    roll = rng.random()
    if roll < 0.6:
        return [hazard_report(
            category=rng.choice(HAZARD_CATEGORIES), grade=rng.choice(["general", "major"]), jurisdiction=where,
            observed_at=observed.isoformat(), title=f"隐患 {rng.randrange(10**6)}",
        )]
    if roll < 0.75:
        return [hazard_report(
            kind="accident", category=rng.choice(ACCIDENT_CATEGORIES), jurisdiction=where,
            observed_at=observed.isoformat(), title=f"事故 {rng.randrange(10**6)}", grade=None,
            deaths=rng.randrange(0, 4), injured=rng.randrange(0, 10), direct_loss_cny=rng.randrange(0, 10**8) / 100,
        )]
    incident = str(uuid.uuid4())
    category = rng.choice(DISASTER_CATEGORIES)
    stages = ["initial"] + ["update"] * rng.randrange(0, 3) + (["final"] if rng.random() < 0.5 else [])
    chain = []
    for stage in stages:
        as_of = observed - dt.timedelta(minutes=rng.randrange(0, 180))
        chain.append(disaster_report(
            category=category if rng.random() < 0.9 else rng.choice(DISASTER_CATEGORIES), jurisdiction=where,
            incident_id=incident, stage=stage, observed_at=observed.isoformat(), as_of=as_of.isoformat(),
            losses=_losses(rng), title=f"灾情 {stage}",
        ))
        observed = min(observed + dt.timedelta(hours=rng.randrange(2, 96)), T0 - dt.timedelta(hours=1))
    return chain


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    if body["kind"] == "accident":
        body = {k: v for k, v in body.items() if k != "grade"}
    return body


async def _submit(conn: asyncpg.Connection, world: World, rng: random.Random) -> dict[uuid.UUID, str]:
    """Hundreds of reports in batches of up to 50; returns each report's author."""
    authors: dict[uuid.UUID, str] = {}
    for name in ("insp_qinyuan", "insp_qinyuan2", "insp_luzhou", "insp_pingshun"):
        bodies = [body for _ in range(45) for body in _bodies(rng, world.people[name].jurisdiction)]
        for start in range(0, len(bodies), 50):
            batch = [(uuid.uuid4(), _clean(body)) for body in bodies[start:start + 50]]
            submissions = [to_submission(rid, msgspec.convert(body, ReportWrite)) for rid, body in batch]
            async with transaction(conn):
                outcomes = await reports.submit_reports(
                    conn, world.principals[name], submissions, now=T0, clock_skew_s=600
                )
            assert [o.status for o in outcomes] == ["applied"] * len(batch), [o.error for o in outcomes]
            authors.update({rid: name for rid, _ in batch})
    return authors


async def _act(conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID, action: str, *,
               now: dt.datetime, **fields: Any) -> bool:
    version = await conn.fetchval("SELECT version FROM reports WHERE id = $1", report_id)
    request = workflow.TransitionRequest(action=action, version=version, **fields)
    try:
        async with transaction(conn):
            await workflow.apply_transition(conn, actor, report_id, request, now=now)
    except errors.FieldsyncError:
        return False
    return True


async def _review(conn: asyncpg.Connection, world: World, clock: MutableClock, rng: random.Random,
                  ids: list[uuid.UUID]) -> None:
    """Random moves along the workflow; deadlines fall before and after the final clock."""
    city = world.principals["sup_city"]
    kinds = dict(await conn.fetch("SELECT id, kind FROM reports"))
    grades = dict(await conn.fetch("SELECT id, grade FROM reports"))
    clock.set(T0)
    for report_id in ids:
        roll = rng.random()
        if roll < 0.1:
            await _act(conn, city, report_id, "reject", now=clock.now())
        elif roll < 0.15:
            await _act(conn, city, report_id, "request_info", now=clock.now())
        elif roll < 0.75:
            await _act(conn, city, report_id, "verify", now=clock.now())
            if kinds[report_id] == "hazard" and rng.random() < 0.8:
                deadline = T0 + dt.timedelta(days=rng.randrange(1, 60), minutes=rng.randrange(0, 1440))
                await _act(conn, city, report_id, "assign_rectification", now=clock.now(), responsible_person="张三",
                           measures="整改", funds_cny=1000.0, deadline=deadline, contingency_plan="预案")
                if grades[report_id] == "major" and rng.random() < 0.4:
                    await _act(conn, city, report_id, "list_supervision", now=clock.now(), level="140400",
                               deadline=T0 + dt.timedelta(days=90))
    hazards = [i for i in ids if kinds[i] == "hazard"]
    for days in (20, 35):  # rectifications arrive, some before and some after their deadline
        clock.set(T0 + dt.timedelta(days=days))
        for report_id in hazards:
            if rng.random() < 0.35 and await _act(conn, city, report_id, "submit_rectification", now=clock.now(),
                                                 media=(AFTER,)):
                roll = rng.random()
                if roll < 0.6:
                    await _act(conn, city, report_id, "accept_rectification", now=clock.now())
                elif roll < 0.75:
                    await _act(conn, city, report_id, "reopen", now=clock.now())
    # Duplicates merged into a survivor of the same kind (disasters only while still open).
    clock.set(T0 + dt.timedelta(days=36))
    for report_id in rng.sample(ids, len(ids) // 8):
        survivor = rng.choice([i for i in ids if kinds[i] == kinds[report_id] and i != report_id])
        await _act(conn, city, report_id, "merge", now=clock.now(), into=survivor)
    clock.set(T0 + dt.timedelta(days=40))


@pytest.fixture
async def dataset(conn: asyncpg.Connection, clock: MutableClock) -> World:
    rng = random.Random(20260601)
    world = await _people(conn, T0 + dt.timedelta(days=40))  # sessions valid at the final clock
    authors = await _submit(conn, world, rng)
    await _review(conn, world, clock, rng, list(authors))
    return world


# --- the brute-force recount ---------------------------------------------------------------------


def _ratio(current: Any, previous: Any) -> Any:
    if isinstance(current, dict):
        return {key: _ratio(current[key], previous[key]) for key in current}
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous


def _latest_ids(rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Per incident, the report whose figures stand: final first, then latest as_of, observed_at, id."""
    chains: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["kind"] == "disaster" and row["status"] != "rejected":
            chains[row["incident_id"]].append(row)
    return {
        max(chain, key=lambda r: (r["stage"] == "final", dt.datetime.fromisoformat(r["body"]["as_of"]),
                                  r["observed_at"], r["id"]))["id"]
        for chain in chains.values()
    }


def _disaster_figures(rows: list[dict[str, Any]], latest: set[uuid.UUID]) -> dict[str, Any]:
    disasters = [r for r in rows if r["kind"] == "disaster" and r["status"] != "rejected"]
    standing = [r for r in disasters if r["id"] in latest]
    losses: dict[str, Any] = {name: sum(r["body"].get("losses", {}).get(name, 0) for r in standing)
                              for name in LOSS_COUNTS}
    losses |= {name: float(sum(r["body"].get("losses", {}).get(name, 0) for r in standing)) for name in LOSS_AMOUNTS}
    return {"reports": len(disasters), "incidents": len(standing), "losses": losses}


def _figures(rows: list[dict[str, Any]], latest: set[uuid.UUID], now: dt.datetime) -> dict[str, Any]:
    hazards = [r for r in rows if r["kind"] == "hazard" and r["status"] != "rejected"]
    closed = sum(r["status"] == "closed" for r in hazards)
    accidents = [r for r in rows if r["kind"] == "accident" and r["status"] != "rejected"]
    return {
        "reports": len(rows),
        "hazards": {
            "found": len(hazards),
            "major": sum(r["grade"] == "major" for r in hazards),
            "listed": sum(r["listed_level"] is not None for r in hazards),
            "rectified_on_time": sum(
                r["status"] in ("rectified", "closed") and r["rectified_at"] <= r["rectification_deadline"]
                for r in hazards
            ),
            "overdue": sum(r["status"] == "rectifying" and r["rectification_deadline"] < now for r in hazards),
            "closed": closed,
            "closure_rate": closed / len(hazards) if hazards else None,
        },
        "disasters": _disaster_figures(rows, latest),
        "accidents": {
            "count": len(accidents),
            "deaths": sum(r["body"]["deaths"] for r in accidents),
            "injured": sum(r["body"]["injured"] for r in accidents),
            "direct_loss_cny": float(sum(r["body"]["direct_loss_cny"] for r in accidents)),
        },
    }


def _types(rows: dict[str, list[dict[str, Any]]], latest: dict[str, set[uuid.UUID]],
           names: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    categories = sorted({r["category"] for period in rows.values() for r in period
                         if r["kind"] == "disaster" and r["status"] != "rejected"})
    out = []
    for category in categories:
        figures = {
            period: _disaster_figures([r for r in rows[period] if r["category"] == category], latest[period])
            for period in ("current", "previous")
        }
        out.append({"category": category, "name_zh": names[("disaster", category)], **figures,
                    "change": _ratio(figures["current"], figures["previous"])})
    return out


def _block(rows: dict[str, list[dict[str, Any]]], latest: dict[str, set[uuid.UUID]], now: dt.datetime,
           names: dict[tuple[str, str], str]) -> dict[str, Any]:
    current = _figures(rows["current"], latest["current"], now)
    previous = _figures(rows["previous"], latest["previous"], now)
    return {"current": current, "previous": previous, "change": _ratio(current, previous),
            "disasters_by_type": _types(rows, latest, names)}


@dataclasses.dataclass
class Recount:
    rows: list[dict[str, Any]]
    places: dict[str, dict[str, Any]]
    names: dict[tuple[str, str], str]

    def expected(self, *, prefix: str, author: uuid.UUID | None, base: str, group_by: str | None,
                 window: tuple[dt.datetime, dt.datetime], previous: tuple[dt.datetime, dt.datetime],
                 now: dt.datetime) -> dict[str, Any]:
        seen = [r for r in self.rows if r["status"] != "merged" and r["path"].startswith(prefix)
                and (author is None or r["author_id"] == author)]
        rows = {
            "current": [r for r in seen if window[0] <= r["observed_at"] < window[1]],
            "previous": [r for r in seen if previous[0] <= r["observed_at"] < previous[1]],
        }
        latest = {period: _latest_ids(period_rows) for period, period_rows in rows.items()}
        result = _block(rows, latest, now, self.names)
        keys: dict[tuple[str | None, str], str | None] = {}
        if group_by == "jurisdiction":
            keys = {(None, p["code"]): p["name_zh"] for p in self.places.values()
                    if p["path"].startswith(base) and p["path"].count("/") == base.count("/") + 1}
        elif group_by == "kind":
            keys = {(None, kind): None for kind in KINDS}
        elif group_by == "status":
            keys = {(None, status): None for status in STATUSES}
        for period_rows in rows.values():
            for row in period_rows:
                key = self.key(row, group_by, base)
                keys.setdefault(key, self.names.get(key) if key[0] else self.places.get(key[1], {}).get("name_zh"))
        groups = {}
        if group_by is not None:
            for key, name in keys.items():
                subset = {period: [r for r in period_rows if self.key(r, group_by, base) == key]
                          for period, period_rows in rows.items()}
                groups[key] = {"key": key[1], "kind": key[0], "name_zh": name, **_block(subset, latest, now, self.names)}
        result["groups"] = groups
        return result

    @staticmethod
    def key(row: dict[str, Any], group_by: str | None, base: str) -> tuple[str | None, str]:
        if group_by == "category":
            return row["kind"], row["category"]
        if group_by == "jurisdiction":
            path = row["path"]
            if path == base or not path.startswith(base):
                return None, row["jurisdiction"]
            return None, path[len(base):].split("/")[0]
        return None, row[group_by] if group_by else ""


async def _recount(conn: asyncpg.Connection) -> Recount:
    rows = [dict(r) for r in await conn.fetch("SELECT r.*, j.path FROM reports r JOIN jurisdictions j ON j.code = r.jurisdiction")]
    places = {r["code"]: dict(r) for r in await conn.fetch("SELECT code, name_zh, path FROM jurisdictions")}
    names = {(r["kind"], r["code"]): r["name_zh"] for r in await conn.fetch("SELECT kind, code, name_zh FROM categories")}
    return Recount(rows, places, names)


def _same(got: Any, want: Any, where: str = "$") -> list[str]:
    """Differences between the answer and the recount; floats compared to 1e-9 relative."""
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return [f"{where}: keys {sorted(got) if isinstance(got, dict) else got} != {sorted(want)}"]
        return [d for key in want for d in _same(got[key], want[key], f"{where}.{key}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: {got} != {want}"]
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True)) for d in _same(g, w, f"{where}[{i}]")]
    if isinstance(want, float) and isinstance(got, (int, float)):
        return [] if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9) else [f"{where}: {got} != {want}"]
    return [] if got == want and type(got) is type(want) else [f"{where}: {got!r} != {want!r}"]


def _bounds(window: dict[str, str]) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(window["from"]), dt.datetime.fromisoformat(window["to"])


async def test_every_figure_equals_a_brute_force_recount(
    client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock, dataset: World
) -> None:
    recount = await _recount(conn)
    statuses = {r["status"] for r in recount.rows}
    assert {"merged", "closed", "rectified", "rectifying", "rejected", "verified"} <= statuses
    now = clock.now()
    assert any(r["status"] == "rectifying" and r["rectification_deadline"] < now for r in recount.rows)
    assert any(r["status"] == "rectifying" and r["rectification_deadline"] > now for r in recount.rows)
    assert any(r["status"] in ("rectified", "closed") and r["rectified_at"] > r["rectification_deadline"]
               for r in recount.rows)
    assert sum(r["kind"] == "disaster" for r in recount.rows) > 50

    people = dataset.people
    views = {
        # caller: (path prefix, author filter, base of the jurisdiction groups)
        "admin": ("/", None, "/"),
        "sup_city": ("/140000/140400/", None, "/140000/140400/"),
        "sup_qinyuan": ("/140000/140400/140431/", None, "/140000/140400/140431/"),
        "sup_luzhou": ("/140000/140400/140403/", None, "/140000/140400/140403/"),
        "insp_qinyuan": ("/", people["insp_qinyuan"].user_id, "/140000/140400/140431/"),
    }
    windows: list[dict[str, str]] = [
        {},
        {"from": "2025-07-01", "to": "2026-02-15T12:00:00+08:00"},
        {"from": "2024-06-01", "to": "2026-06-01"},  # two years: the comparison window overlaps
    ]
    checked = 0
    for name, (prefix, author, base) in views.items():
        for params in windows:
            for group_by in (None, "jurisdiction", "category", "kind", "status"):
                if name in ("sup_luzhou", "insp_qinyuan") and group_by in ("category", "status") and params:
                    continue
                query = {**params, **({"group_by": group_by} if group_by else {})}
                response = await client.get("/v1/stats", params=query, headers=people[name].headers)
                assert response.status_code == 200, response.text
                got = response.json()
                want = recount.expected(
                    prefix=prefix, author=author, base=base, group_by=group_by, window=_bounds(got["window"]),
                    previous=_bounds(got["previous_window"]), now=now,
                )
                got_groups = {(g.pop("kind"), g["key"]): g for g in got["groups"]}
                want_groups = {key: {k: v for k, v in g.items() if k != "kind"} for key, g in want.pop("groups").items()}
                got.pop("groups")
                for key in ("window", "previous_window", "jurisdiction", "group_by"):
                    got.pop(key)
                differences = _same(got, want) + _same(got_groups, want_groups, "groups")
                assert not differences, (name, query, differences[:10])
                checked += 1
    assert checked > 50

    # The window answered is the one asked for, and the comparison window is a year earlier.
    body = (await client.get("/v1/stats", headers=people["sup_city"].headers)).json()
    assert body["window"] == {"from": "2026-01-01T00:00:00+08:00", "to": "2027-01-01T00:00:00+08:00"}
    assert body["previous_window"] == {"from": "2025-01-01T00:00:00+08:00", "to": "2026-01-01T00:00:00+08:00"}
    assert body["jurisdiction"] == "140400" and body["current"]["reports"] > 0 and body["previous"]["reports"] > 0


async def test_jurisdiction_groups_roll_subtrees_up_and_list_empty_children(
    client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock
) -> None:
    world = await _people(conn, clock.now())
    inspector = world.people["insp_qinyuan"]
    for where in ("140431", TOWNSHIP, TOWNSHIP):
        response = await client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(jurisdiction=where),
                                    headers=inspector.headers)
        assert response.status_code == 201, response.text

    city = await client.get("/v1/stats", params={"group_by": "jurisdiction"}, headers=world.people["sup_city"].headers)
    groups = {g["key"]: g for g in city.json()["groups"]}
    assert len(groups) == 12 and groups["140431"]["current"]["reports"] == 3
    assert groups["140431"]["name_zh"] == "沁源县" and groups["140403"]["current"]["reports"] == 0

    county = await client.get("/v1/stats", params={"group_by": "jurisdiction", "jurisdiction": "140431"},
                              headers=world.people["sup_city"].headers)
    assert {g["key"]: g["current"]["reports"] for g in county.json()["groups"]} == {"140431": 1, TOWNSHIP: 2}

    admin = await client.get("/v1/stats", params={"group_by": "jurisdiction"}, headers=world.people["admin"].headers)
    provinces = {g["key"]: g["current"]["reports"] for g in admin.json()["groups"]}
    assert len(provinces) == 34 and provinces["140000"] == 3 and provinces["110000"] == 0


async def test_each_caller_counts_only_its_view(
    client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock
) -> None:
    world = await _people(conn, clock.now())
    people = world.people
    placed = [("insp_qinyuan", "140431"), ("insp_qinyuan2", "140431"), ("insp_luzhou", "140403")]
    for name, where in placed:
        response = await client.put(f"/v1/reports/{uuid.uuid4()}", json=hazard_report(jurisdiction=where),
                                    headers=people[name].headers)
        assert response.status_code == 201, response.text

    async def reports_seen(name: str, **params: str) -> int:
        response = await client.get("/v1/stats", params=params, headers=people[name].headers)
        assert response.status_code == 200, response.text
        return int(response.json()["current"]["reports"])

    assert await reports_seen("admin") == 3
    assert await reports_seen("sup_city") == 3
    assert await reports_seen("sup_qinyuan") == 2
    assert await reports_seen("sup_luzhou") == 1
    assert await reports_seen("insp_qinyuan") == 1  # its own, not its county colleague's
    assert await reports_seen("insp_qinyuan", jurisdiction="140431") == 1
    assert await reports_seen("sup_city", jurisdiction="140403") == 1
    assert await reports_seen("admin", jurisdiction="140431") == 2

    for name, code in (("sup_luzhou", "140431"), ("sup_qinyuan", "140400"), ("insp_qinyuan", "140403")):
        response = await client.get("/v1/stats", params={"jurisdiction": code}, headers=people[name].headers)
        assert response.status_code == 403, (name, code)
        assert problem(response)["code"] == "jurisdiction.out_of_scope"


async def test_merged_reports_are_never_counted_and_the_new_year_starts_at_cst_midnight(
    client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock
) -> None:
    world = await _people(conn, clock.now())
    inspector, city = world.people["insp_qinyuan"], world.people["sup_city"]
    ids = []
    for observed in ("2025-12-31T23:59:59+08:00", "2026-01-01T00:00:00+08:00", "2025-12-31T16:30:00Z"):
        report_id = str(uuid.uuid4())
        response = await client.put(f"/v1/reports/{report_id}", json=hazard_report(observed_at=observed),
                                    headers=inspector.headers)
        assert response.status_code == 201, response.text
        ids.append(report_id)
    merged = await client.post(f"/v1/reports/{ids[2]}/transitions",
                               json={"action": "merge", "version": 1, "into": ids[1]}, headers=city.headers)
    assert merged.status_code == 200, merged.text
    body = (await client.get("/v1/stats", headers=city.headers)).json()
    assert (body["current"]["reports"], body["previous"]["reports"]) == (1, 1)
    assert body["change"]["reports"] == 0.0


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"from": "2026-03-01", "to": "2026-02-01"}, "stats.invalid_window", "from"),
        ({"from": "2026-03-01", "to": "2026-03-01"}, "stats.invalid_window", "from"),
        ({"from": "2026-02-30"}, "stats.invalid_window", "from"),
        ({"to": "yesterday"}, "request.invalid", "to"),
        ({"from": "2026-01-01T00:00:00"}, "request.invalid", "from"),  # a time needs its offset
        ({"to": "2026-01-01T25:00:00+08:00"}, "stats.invalid_window", "to"),
        ({"from": "0001-01-01"}, "stats.invalid_window", "from"),
        ({"group_by": "county"}, "request.invalid", "group_by"),
        ({"jurisdiction": "14043"}, "request.invalid", "jurisdiction"),
        ({"jurisdiction": "149999"}, "jurisdiction.unknown", "jurisdiction"),
    ],
)
async def test_bad_parameters_are_400_problems(
    client: httpx.AsyncClient, conn: asyncpg.Connection, clock: MutableClock, params: dict[str, str], code: str,
    field: str,
) -> None:
    supervisor = await make_user(conn, role="supervisor", jurisdiction="140400", now=clock.now())
    response = await client.get("/v1/stats", params=params, headers=supervisor.headers)
    assert response.status_code == 400, response.text
    body = problem(response)
    assert (body["code"], body["field"]) == (code, field)
