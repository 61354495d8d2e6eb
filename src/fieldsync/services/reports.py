"""Report ingest with exactly-once semantics, one report or a thousand at a time, and the detail.

``submit_reports`` runs inside the caller's transaction and decides every report of a batch with
a constant number of statements (``unnest`` arrays, ``ON CONFLICT``), whatever the batch size.
``PUT /v1/reports/{id}`` is a batch of one, so the single and the bulk path cannot drift apart.
Exactly-once is the database's job: the first writer of an id wins on the primary key; everyone
else reads the committed row under ``FOR UPDATE`` and decides:

- same canonical content as the current version, or as an earlier version the device is
  replaying late → the receipt again, ``duplicate``;
- different content without ``base_version`` → ``report.conflict``;
- ``base_version`` not current → ``report.stale_version``;
- current ``base_version`` by the author while ``submitted``/``needs_info`` → a new version.

Every written report is searched for near-duplicate candidates in the same transaction, set-based
(``services.duplicates``: a few statements per batch), so the receipt names them.

One report's problem becomes that report's outcome; it never fails or reorders the others. A
batch that names one id twice is applied in rounds, in input order, so the second sees the first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Literal

import asyncpg

from fieldsync import errors
from fieldsync.db import reference
from fieldsync.db import reports as q
from fieldsync.db.transactions import transaction
from fieldsync.domain import reports as rules
from fieldsync.domain.principals import Principal, Role
from fieldsync.services import audit, duplicates, events

OutcomeStatus = Literal["applied", "duplicate", "conflict", "rejected"]


@dataclasses.dataclass(slots=True)
class Outcome:
    status: OutcomeStatus
    receipt: rules.ReceiptData | None = None
    error: errors.FieldsyncError | None = None


def _rejected(error: errors.FieldsyncError) -> Outcome:
    return Outcome("conflict" if isinstance(error, errors.Conflict) else "rejected", error=error)


def _check(
    actor: Principal,
    report: rules.ReportSubmission,
    *,
    categories: set[tuple[str, str]],
    paths: dict[str, str],
    now: dt.datetime,
    skew_s: int,
) -> errors.FieldsyncError | None:
    if rules.observed_too_far_ahead(report.observed_at, now, skew_s):
        return errors.ReportInvalid(
            f"observed_at lies more than {skew_s} s in the future; check the device clock", field="observed_at"
        )
    if report.credit_code is not None and not rules.is_valid_credit_code(report.credit_code):
        return errors.ReportInvalid(
            "enterprise.credit_code fails the GB 32100 check character", field="enterprise.credit_code"
        )
    if (report.kind, report.category) not in categories:
        return errors.ReportInvalid(f"category {report.category!r} is not a {report.kind} category", field="category")
    path = paths.get(report.jurisdiction)
    if path is None:
        return errors.JurisdictionUnknown(f"no jurisdiction with code {report.jurisdiction}", field="jurisdiction")
    if not actor.sees(path):
        return errors.JurisdictionOutOfScope(field="jurisdiction")
    return None


async def submit_reports(
    conn: asyncpg.Connection,
    actor: Principal,
    reports: list[rules.ReportSubmission],
    *,
    now: dt.datetime,
    clock_skew_s: int,
    detect_now: bool = True,
    isolate: bool = True,
) -> list[Outcome]:
    """Create or revise each report; one outcome per input, in input order. With ``isolate``, a
    report the database refuses becomes its own ``rejected`` outcome; without, its error is raised."""
    outcomes: list[Outcome | None] = [None] * len(reports)
    if actor.role is not Role.INSPECTOR:
        return [_rejected(errors.RoleForbidden("only inspectors author reports")) for _ in reports]
    categories, paths = await reference.lookup(
        conn,
        categories=sorted({(r.kind, r.category) for r in reports}),
        jurisdictions=sorted({r.jurisdiction for r in reports}),
    )
    pending: list[int] = []
    for index, report in enumerate(reports):
        problem = _check(actor, report, categories=categories, paths=paths, now=now, skew_s=clock_skew_s)
        if problem is not None:
            outcomes[index] = _rejected(problem)
        else:
            pending.append(index)
    while pending:
        seen: set[uuid.UUID] = set()
        this_round: list[int] = []
        later: list[int] = []
        for index in pending:
            (later if reports[index].id in seen else this_round).append(index)
            seen.add(reports[index].id)
        if isolate:
            await _apply_round_isolated(conn, actor, reports, this_round, outcomes, now=now, detect_now=detect_now)
        else:
            await _apply_round(conn, actor, reports, this_round, outcomes, now=now, detect_now=detect_now)
        pending = later
    decided = [outcome for outcome in outcomes if outcome is not None]
    assert len(decided) == len(reports), "every report gets an outcome"
    return decided


async def _apply_round_isolated(
    conn: asyncpg.Connection,
    actor: Principal,
    reports: list[rules.ReportSubmission],
    indices: list[int],
    outcomes: list[Outcome | None],
    *,
    now: dt.datetime,
    detect_now: bool,
) -> None:
    """Apply a round in a savepoint; if the database refuses it (a second initial report of an
    incident, a rule only the database knows), apply each half on its own, down to the report
    that breaks the rule, which alone is rejected."""
    try:
        async with transaction(conn):
            await _apply_round(conn, actor, reports, indices, outcomes, now=now, detect_now=detect_now)
    except errors.FieldsyncError as exc:
        for index in indices:
            outcomes[index] = None
        if len(indices) == 1:
            outcomes[indices[0]] = _rejected(exc)
            return
        middle = len(indices) // 2
        for half in (indices[:middle], indices[middle:]):
            await _apply_round_isolated(conn, actor, reports, half, outcomes, now=now, detect_now=detect_now)


async def _apply_round(
    conn: asyncpg.Connection,
    actor: Principal,
    reports: list[rules.ReportSubmission],
    indices: list[int],
    outcomes: list[Outcome | None],
    *,
    now: dt.datetime,
    detect_now: bool,
) -> None:
    """Apply reports with distinct ids: insert the new, decide the existing under row locks, then
    record what was written (versions, photos, audit, near-duplicates) and fill the receipts."""
    inserted = await q.insert_reports(
        conn, [reports[i] for i in indices], author_id=actor.user_id, device_id=actor.device_id, now=now
    )
    written: list[tuple[int, int]] = []
    for index in indices:
        if reports[index].id in inserted:
            outcomes[index] = Outcome("applied", rules.ReceiptData(reports[index].id, 1, "submitted", [], False, True))
            written.append((index, 1))
    existing = [index for index in indices if reports[index].id not in inserted]
    if existing:
        written += await _revise_existing(conn, actor, reports, existing, outcomes, now=now)
    if written:
        await _record_written(conn, actor, reports, written, inserted=inserted, now=now, detect_now=detect_now)
    await _fill_receipts(conn, actor, reports, indices, outcomes)


async def _revise_existing(
    conn: asyncpg.Connection,
    actor: Principal,
    reports: list[rules.ReportSubmission],
    existing: list[int],
    outcomes: list[Outcome | None],
    *,
    now: dt.datetime,
) -> list[tuple[int, int]]:
    """Decide each report whose id exists (replay, conflict, stale, revision) under its row lock;
    write the valid revisions; returns (index, new version) of those."""
    current = await q.lock_reports(conn, [reports[i].id for i in existing])
    past = await q.versions_with_hashes(
        conn,
        [(reports[i].id, reports[i].content_hash) for i in existing
         if current[reports[i].id]["content_hash"] != reports[i].content_hash],
    )
    to_revise: list[int] = []
    for index in existing:
        report = reports[index]
        outcome = _decide(actor, report, current[report.id], past.get((report.id, report.content_hash)))
        if outcome is None:
            to_revise.append(index)
        else:
            outcomes[index] = outcome
    if not to_revise:
        return []
    revised = await q.revise_reports(
        conn, [reports[i] for i in to_revise], [reports[i].base_version or 0 for i in to_revise],
        device_id=actor.device_id, now=now,
    )
    written = []
    for index in to_revise:
        got = revised[reports[index].id]
        outcomes[index] = Outcome("applied", rules.ReceiptData(reports[index].id, got["version"], got["status"],
                                                               [], False, False))
        written.append((index, got["version"]))
    await events.reports_revised(conn, [(reports[i], current[reports[i].id]["status"]) for i in to_revise], now=now)
    return written


async def _record_written(
    conn: asyncpg.Connection,
    actor: Principal,
    reports: list[rules.ReportSubmission],
    written: list[tuple[int, int]],
    *,
    inserted: set[uuid.UUID],
    now: dt.datetime,
    detect_now: bool,
) -> None:
    """What every written version carries: its stored copy, its photo list, its audit event and a
    near-duplicate search (now, or queued for a push)."""
    await q.insert_versions(
        conn, [reports[i] for i, _ in written], [v for _, v in written],
        author_id=actor.user_id, device_id=actor.device_id, now=now,
    )
    await q.replace_media(
        conn, {reports[i].id: [(m.sha256, m.role, m.caption) for m in reports[i].media] for i, _ in written},
        attached_by=actor.user_id, created=inserted,
    )
    await audit.record(
        conn,
        [
            audit.NewEvent(
                chain=audit.report_chain(reports[i].id), action="created" if version == 1 else "revised",
                actor_id=actor.user_id, device_id=actor.device_id, report_id=reports[i].id,
                to_status="submitted", version=version,
            )
            for i, version in written
        ],
        now=now,
    )
    await events.reports_created(conn, [reports[i] for i, version in written if version == 1], now=now)
    written_ids = [reports[i].id for i, _ in written]
    if detect_now:
        await duplicates.detect(conn, written_ids, now=now)
    else:
        await duplicates.detect_later(conn, written_ids, now=now)


async def _fill_receipts(
    conn: asyncpg.Connection,
    actor: Principal,
    reports: list[rules.ReportSubmission],
    indices: list[int],
    outcomes: list[Outcome | None],
) -> None:
    """Each receipt's missing photos and the candidates its sender may see."""
    ids = [reports[i].id for i in indices]
    missing = await q.missing_media(conn, ids)
    candidates = await duplicates.stored_candidates(conn, ids, actor.visibility)
    for index in indices:
        outcome = outcomes[index]
        if outcome is not None and outcome.receipt is not None:
            outcome.receipt.missing_media = missing[reports[index].id]
            outcome.receipt.possible_duplicates = [
                (c.id, c.score, c.reasons) for c in candidates[reports[index].id]
            ]


def _decide(
    actor: Principal, report: rules.ReportSubmission, current: asyncpg.Record, replayed_version: int | None
) -> Outcome | None:
    """The outcome for a report whose id exists, or None when it is a valid revision."""
    if not actor.sees_report(author_id=current["author_id"], jurisdiction_path=current["jurisdiction_path"]):
        return _rejected(errors.ReportConflict("a report with this id exists"))
    if current["content_hash"] == report.content_hash:
        return Outcome("duplicate", rules.ReceiptData(report.id, current["version"], current["status"], [], True, False))
    if replayed_version is not None and (report.base_version is None or report.base_version < replayed_version):
        return Outcome("duplicate", rules.ReceiptData(report.id, replayed_version, current["status"], [], True, False))
    if report.base_version is None:
        return _rejected(errors.ReportConflict(version=current["version"], status=current["status"]))
    if report.base_version != current["version"]:
        return _rejected(errors.ReportStaleVersion(version=current["version"], status=current["status"]))
    if current["author_id"] != actor.user_id:
        return _rejected(errors.ReportNotAuthor())
    if current["status"] not in rules.EDITABLE_STATUSES:
        return _rejected(errors.ReportLocked(version=current["version"], status=current["status"]))
    return None


async def submit_report(
    conn: asyncpg.Connection,
    actor: Principal,
    report: rules.ReportSubmission,
    *,
    now: dt.datetime,
    clock_skew_s: int,
) -> rules.ReceiptData:
    """One report, with the batch's semantics; its problem is raised rather than returned."""
    outcome = (await submit_reports(conn, actor, [report], now=now, clock_skew_s=clock_skew_s, isolate=False))[0]
    if outcome.error is not None:
        raise outcome.error
    assert outcome.receipt is not None
    return outcome.receipt
