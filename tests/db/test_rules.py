"""The SQL forms of shared rules (``db.rules``) agree with their Python forms."""

from __future__ import annotations

import datetime as dt
import itertools

from fieldsync.db.rules import overdue_sql
from fieldsync.domain.workflow import is_overdue

NOW = dt.datetime(2026, 6, 1, 8, tzinfo=dt.UTC)
STATUSES = ("submitted", "verified", "rectifying", "rectified", "closed")
DEADLINES = (None, NOW - dt.timedelta(seconds=1), NOW, NOW + dt.timedelta(days=3))


async def test_overdue_in_sql_is_overdue_in_python(conn) -> None:
    cases = list(itertools.product(STATUSES, DEADLINES))
    rows = await conn.fetch(
        f"""
        SELECT n, {overdue_sql("r", "$3::timestamptz")} AS overdue
        FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS r(status, rectification_deadline, n)
        ORDER BY n
        """,
        [status for status, _ in cases], [deadline for _, deadline in cases], NOW,
    )
    assert [row["overdue"] for row in rows] == [
        is_overdue(status=status, deadline=deadline, now=NOW) for status, deadline in cases
    ]
    assert any(row["overdue"] for row in rows) and not all(row["overdue"] for row in rows)
