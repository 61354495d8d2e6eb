"""Disaster report chains: all reports sharing an ``incident_id``, their stages, and the
deadline of the initial report (初报, due two hours after the disaster was observed)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg

from fieldsync import errors
from fieldsync.db import reports as q
from fieldsync.domain.principals import Principal

INITIAL_DUE = dt.timedelta(hours=2)


@dataclasses.dataclass(frozen=True, slots=True)
class Chain:
    rows: list[asyncpg.Record]
    category: str | None
    stages: dict[str, int]
    deadlines: list[dict[str, Any]]
    missed: list[str]


async def get_chain(conn: asyncpg.Connection, actor: Principal, incident_id: uuid.UUID, *, now: dt.datetime) -> Chain:
    ids = await q.incident_report_ids(conn, incident_id)
    rows = [
        row for row in await q.get_reports(conn, ids, actor.visibility)
        if actor.sees_report(author_id=row["author_id"], jurisdiction_path=row["jurisdiction_path"])
    ]
    if not rows:
        raise errors.IncidentNotFound()
    stages: dict[str, int] = {"initial": 0, "update": 0, "final": 0}
    for row in rows:
        if row["status"] != "merged":
            stages[row["body"]["stage"]] += 1
    observed = min(dt.datetime.fromisoformat(row["body"]["observed_at"]) for row in rows)
    initial = [row for row in rows if row["body"]["stage"] == "initial" and row["status"] != "merged"]
    met_at = min((row["received_at"] for row in initial), default=None)
    due_at = observed + INITIAL_DUE
    missed_initial = (met_at is None and now > due_at) or (met_at is not None and met_at > due_at)
    deadline = {"stage": "initial", "due_at": due_at, "met_at": met_at, "missed": missed_initial}
    return Chain(
        rows=rows,
        category=rows[0]["body"].get("category"),
        stages=stages,
        deadlines=[deadline],
        missed=["initial"] if missed_initial else [],
    )
