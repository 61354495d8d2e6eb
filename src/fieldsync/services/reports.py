"""Report ingest with exactly-once semantics, and the report detail.

``submit_report`` runs inside the caller's transaction. Exactly-once is the database's job: the
first writer of an id wins on the primary key (``INSERT … ON CONFLICT DO NOTHING``); everyone
else reads the committed row under ``FOR UPDATE`` and decides:

- same canonical content as the current version, or as an earlier version the device is
  replaying late → the receipt again, ``duplicate: true``;
- different content without ``base_version`` → ``report.conflict``;
- ``base_version`` not current → ``report.stale_version``;
- current ``base_version`` by the author while ``submitted``/``needs_info`` → a new version.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from fieldsync import errors
from fieldsync.db import reference
from fieldsync.db import reports as q
from fieldsync.domain import reports as rules
from fieldsync.domain.principals import Principal, Role, require_role


async def _validate(
    conn: asyncpg.Connection, actor: Principal, report: rules.ReportSubmission, *, now: dt.datetime, skew_s: int
) -> None:
    if rules.observed_too_far_ahead(report.observed_at, now, skew_s):
        raise errors.ReportInvalid(
            f"observed_at lies more than {skew_s} s in the future; check the device clock", field="observed_at"
        )
    if report.credit_code is not None and not rules.is_valid_credit_code(report.credit_code):
        raise errors.ReportInvalid(
            "enterprise.credit_code fails the GB 32100 check character", field="enterprise.credit_code"
        )
    if not await q.category_exists(conn, kind=report.kind, code=report.category):
        raise errors.ReportInvalid(f"category {report.category!r} is not a {report.kind} category", field="category")
    place = await reference.get_jurisdiction(conn, report.jurisdiction)
    if place is None:
        raise errors.JurisdictionUnknown(f"no jurisdiction with code {report.jurisdiction}", field="jurisdiction")
    if not actor.sees(place["path"]):
        raise errors.JurisdictionOutOfScope(field="jurisdiction")


def _row(report: rules.ReportSubmission) -> q.ReportRow:
    return q.ReportRow(
        id=report.id,
        kind=report.kind,
        category=report.category,
        title=report.title,
        description=report.description,
        jurisdiction=report.jurisdiction,
        lat=report.lat,
        lon=report.lon,
        accuracy_m=report.accuracy_m,
        observed_at=report.observed_at,
        severity=report.severity,
        grade=report.grade,
        credit_code=report.credit_code,
        incident_id=report.incident_id,
        stage=report.stage,
        body={k: v for k, v in report.content.items() if k not in {"id", "base_version"}},
        content_hash=report.content_hash,
    )


async def submit_report(
    conn: asyncpg.Connection,
    actor: Principal,
    report: rules.ReportSubmission,
    *,
    now: dt.datetime,
    clock_skew_s: int,
) -> rules.ReceiptData:
    """Create or revise one report; see the module docstring for the decision table."""
    require_role(actor, Role.INSPECTOR)
    await _validate(conn, actor, report, now=now, skew_s=clock_skew_s)
    row = _row(report)
    media = [(m.sha256, m.role, m.caption) for m in report.media]
    if await q.insert_report(conn, row, author_id=actor.user_id, device_id=actor.device_id, now=now):
        await q.insert_version(
            conn, report_id=report.id, version=1, body=row.body, content_hash=row.content_hash,
            author_id=actor.user_id, device_id=actor.device_id, now=now,
        )
        await q.replace_media(conn, report_id=report.id, media=media)
        return rules.ReceiptData(report.id, 1, "submitted", await q.missing_media(conn, report.id), False, True)

    current = await q.get_report_for_update(conn, report.id)
    assert current is not None, "a report row cannot disappear: reports are never deleted"
    if not actor.sees_report(author_id=current["author_id"], jurisdiction_path=current["jurisdiction_path"]):
        raise errors.ReportConflict("a report with this id exists")
    missing = await q.missing_media(conn, report.id)
    if current["content_hash"] == row.content_hash:
        return rules.ReceiptData(report.id, current["version"], current["status"], missing, True, False)
    replayed = await q.find_version_with_hash(conn, report_id=report.id, content_hash=row.content_hash)
    if replayed is not None and (report.base_version is None or report.base_version < replayed):
        return rules.ReceiptData(report.id, replayed, current["status"], missing, True, False)
    if report.base_version is None:
        raise errors.ReportConflict(version=current["version"], status=current["status"])
    if report.base_version != current["version"]:
        raise errors.ReportStaleVersion(version=current["version"], status=current["status"])
    if current["author_id"] != actor.user_id:
        raise errors.ReportNotAuthor()
    if current["status"] not in rules.EDITABLE_STATUSES:
        raise errors.ReportLocked(version=current["version"], status=current["status"])
    revised = await q.revise_report(conn, row, base_version=report.base_version, device_id=actor.device_id, now=now)
    assert revised is not None, "the row is locked FOR UPDATE and was checked above"
    await q.insert_version(
        conn, report_id=report.id, version=revised["version"], body=row.body, content_hash=row.content_hash,
        author_id=actor.user_id, device_id=actor.device_id, now=now,
    )
    await q.replace_media(conn, report_id=report.id, media=media)
    return rules.ReceiptData(
        report.id, revised["version"], revised["status"], await q.missing_media(conn, report.id), False, False
    )


async def get_visible_report(conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID) -> asyncpg.Record:
    """The report row, or ``report.not_found`` when it does not exist or the caller may not see it."""
    row = await q.get_report(conn, report_id)
    if row is None or not actor.sees_report(author_id=row["author_id"], jurisdiction_path=row["jurisdiction_path"]):
        raise errors.ReportNotFound()
    return row


async def report_media(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[asyncpg.Record]:
    return await q.list_report_media(conn, report_id)


async def missing_media(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[str]:
    return await q.missing_media(conn, report_id)
