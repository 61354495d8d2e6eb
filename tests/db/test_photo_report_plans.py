"""A batch with photos runs its statements on generic plans (docs/decisions/0055): planned once
per connection, and still lookups by key where thousands of photo reports are stored.

PostgreSQL kept a custom plan for the photo statements of a report PUT (the media rows' key-share
locks, the photos still missing, the reports sharing a photo): a generic plan for ``= ANY($1)``
assumes ten elements and so never looked cheaper than a plan for the one report at hand, and
making that plan cost more than running the statement. ``services.reports.submit_many`` now puts
such a batch's transaction on generic plans. The first test counts the plans PostgreSQL made; the
second checks, on a county with 20,000 photo reports, that the generic plans read rows by key.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

from fieldsync.api.reports import to_submission
from fieldsync.api.schemas.reports import HazardReport
from fieldsync.db.transactions import transaction
from fieldsync.domain.principals import Principal
from fieldsync.domain.reports import ReportSubmission
from fieldsync.services import reports
from tests.db.test_pull_plan import examined, explain_generic, nodes
from tests.support import hazard_report, make_user, principal_of

BUSY = 20_000
# the photo statements, by a fragment of their text
PHOTO_STATEMENTS = {
    "missing photos": "min(rm.position) AS first_position",
    "reports sharing a photo": "SELECT DISTINCT v.report_id, o.report_id AS other",
    "key-share locks of the media rows": "FROM media WHERE sha256 = ANY($1::text[]) ORDER BY sha256 FOR KEY SHARE",
}
COUNTY = "/140000/140400/140431/"


def sha(label: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, label).hex * 2


def photo_report(report_id: uuid.UUID, photos: list[str], **overrides: Any) -> ReportSubmission:
    body = hazard_report(media=[{"sha256": s, "role": "photo"} for s in photos], **overrides)
    return to_submission(report_id, msgspec.convert(body, HazardReport))


async def uploaded(conn: asyncpg.Connection, photo: str, user_id: uuid.UUID) -> None:
    await conn.execute("INSERT INTO media (sha256, bytes, content_type, width, height, created_at) "
                       "VALUES ($1, 1000, 'image/jpeg', 640, 480, now())", photo)
    await conn.execute("INSERT INTO media_uploads (sha256, user_id, uploaded_at) VALUES ($1, $2, now())",
                       photo, user_id)


async def submit(conn: asyncpg.Connection, actor: Principal, report: ReportSubmission, clock: Any) -> reports.Outcome:
    async with transaction(conn):
        [outcome] = await reports.submit_reports(conn, actor, [report], now=clock.now(), clock_skew_s=600)
    return outcome


async def test_a_photo_reports_statements_run_on_the_generic_plan_the_connection_keeps(conn, clock) -> None:
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    actor = principal_of(inspector, COUNTY)
    for n in range(8):
        photo = sha(f"photo {n}")
        await uploaded(conn, photo, inspector.user_id)
        outcome = await submit(conn, actor, photo_report(uuid.uuid4(), [photo, sha(f"not yet {n}")]), clock)
        assert outcome.status == "applied" and outcome.receipt is not None
        assert outcome.receipt.missing_media == [sha(f"not yet {n}")]

    plans = {name: await conn.fetchrow(
        "SELECT sum(generic_plans) AS generic, sum(custom_plans) AS custom FROM pg_prepared_statements "
        "WHERE strpos(statement, $1) > 0", fragment) for name, fragment in PHOTO_STATEMENTS.items()}
    for name, made in plans.items():
        assert made["generic"] is not None, f"the {name} statement did not run"
        # a custom plan is made for each execution; the generic one once, then kept
        assert (made["generic"], made["custom"]) == (8, 0), f"{name}: {dict(made)} for 8 batches"


async def busy_county(conn: asyncpg.Connection, author_id: uuid.UUID) -> None:
    """``BUSY`` hazards of 140431 by another inspector, each with its own uploaded photo."""
    await conn.execute(
        f"""
        WITH made AS (
            INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body, content_hash,
                                 author_id, received_at, updated_at)
            SELECT gen_random_uuid(), 'hazard', 'coal_mine', 'busy ' || n,
                   '140431', 36.5 + (n % 100) * 1e-4, 112.3 + (n / 100) * 1e-4, now(), '{{}}',
                   sha256(n::text::bytea), $1, now(), now()
            FROM generate_series(1, {BUSY}) AS n
            RETURNING id, title
        )
        INSERT INTO media (sha256, bytes, content_type, width, height, created_at)
        SELECT encode(sha256(title::bytea), 'hex'), 1000, 'image/jpeg', 640, 480, now() FROM made
        """,
        author_id,
    )
    await conn.execute(
        """
        INSERT INTO report_media (report_id, position, sha256, role, attached_by)
        SELECT r.id, 1, encode(sha256(r.title::bytea), 'hex'), 'photo', r.author_id FROM reports r
        WHERE r.title LIKE 'busy %'
        """
    )
    await conn.execute("INSERT INTO media_uploads (sha256, user_id, uploaded_at) SELECT sha256, $1, now() FROM media",
                       author_id)
    await conn.execute("ANALYZE reports; ANALYZE media; ANALYZE report_media; ANALYZE media_uploads")


async def test_the_generic_plans_read_a_busy_countys_photo_rows_by_key(conn, clock) -> None:
    """A new photo report and a revision of one, in a county of 20,000 photo reports whose photos
    one of them shares: every photo statement the batch sends, on its generic plan, reads a
    handful of rows of each table and scans none."""
    other = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    inspector = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    actor = principal_of(inspector, COUNTY)
    await busy_county(conn, other.user_id)
    shared = await conn.fetchval("SELECT sha256 FROM report_media ORDER BY report_id LIMIT 1")
    await conn.execute("INSERT INTO media_uploads (sha256, user_id, uploaded_at) VALUES ($1, $2, now())",
                       shared, inspector.user_id)
    revised = uuid.uuid4()
    assert (await submit(conn, actor, photo_report(revised, [shared]), clock)).status == "applied"

    sent: list[tuple[str, tuple[Any, ...]]] = []

    def record(query: Any) -> None:
        sent.append((query.query, tuple(query.args or ())))

    conn.add_query_logger(record)
    try:
        new = await submit(conn, actor, photo_report(uuid.uuid4(), [shared, sha("missing")]), clock)
        again = await submit(conn, actor, photo_report(revised, [shared], title="主斜井皮带机保护装置失效 复查",
                                                       base_version=1), clock)
    finally:
        conn.remove_query_logger(record)
    assert new.status == again.status == "applied"

    photo_statements = [(name, sql, args) for sql, args in sent for name, fragment in PHOTO_STATEMENTS.items()
                        if fragment in sql]
    assert {name for name, _, _ in photo_statements} == set(PHOTO_STATEMENTS)
    for name, sql, args in photo_statements:
        plan = await explain_generic(conn, sql, args)
        scans = [n for n in nodes(plan) if n.get("Relation Name") in ("reports", "report_media", "media", "media_uploads")]
        assert scans, name
        assert not [n for n in scans if n["Node Type"] == "Seq Scan"], (name, [n["Relation Name"] for n in scans])
        read = sum(examined(n) for n in scans)
        assert read <= 50, f"{name}: {read} rows read"
