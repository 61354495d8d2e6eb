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

Near-duplicate search is not part of the transaction: every written report gets a durable
detection job (``services.duplicates``, run by the background worker a moment later, in batches),
and the receipt names the candidates known at once: those stored already, and the cheap exact
signal, another visible report holding the very same photo.

A batch may mix authors (``Submission``): the single-report PUTs of one process are committed
together (``services.ingest``), and a push is a batch of one author. One report's problem becomes
that report's outcome; it never fails or reorders the others. A batch that names one id twice is
applied in rounds, in input order, so the second sees the first.
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
from fieldsync.db.transactions import generic_plans, transaction
from fieldsync.domain import reports as rules
from fieldsync.domain.principals import Principal, Role
from fieldsync.services import audit, duplicates, events

OutcomeStatus = Literal["applied", "duplicate", "conflict", "rejected"]


@dataclasses.dataclass(slots=True)
class Outcome:
    status: OutcomeStatus
    receipt: rules.ReceiptData | None = None
    error: errors.FieldsyncError | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Submission:
    """One report and who sent it."""

    actor: Principal
    report: rules.ReportSubmission


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
    isolate: bool = True,
) -> list[Outcome]:
    """Create or revise each report of one author; one outcome per input, in input order."""
    return await submit_many(conn, [Submission(actor, report) for report in reports], now=now,
                             clock_skew_s=clock_skew_s, isolate=isolate)


async def submit_many(
    conn: asyncpg.Connection,
    items: list[Submission],
    *,
    now: dt.datetime,
    clock_skew_s: int,
    isolate: bool = True,
) -> list[Outcome]:
    """Create or revise each report; one outcome per input, in input order. With ``isolate``, a
    report the database refuses becomes its own ``rejected`` outcome; without, its error is raised."""
    outcomes: list[Outcome | None] = [None] * len(items)
    if any(item.report.media for item in items):
        # the photo statements (the media rows' key-share locks, missing photos, photos shared
        # with other reports) would each be planned again on every call, for more than they run
        await generic_plans(conn)
    categories, paths = await reference.lookup(
        conn,
        categories=sorted({(i.report.kind, i.report.category) for i in items}),
        jurisdictions=sorted({i.report.jurisdiction for i in items}),
    )
    pending: list[int] = []
    for index, item in enumerate(items):
        problem = (errors.RoleForbidden("only inspectors author reports") if item.actor.role is not Role.INSPECTOR
                   else _check(item.actor, item.report, categories=categories, paths=paths, now=now,
                               skew_s=clock_skew_s))
        if problem is not None:
            outcomes[index] = _rejected(problem)
        else:
            pending.append(index)
    while pending:
        seen: set[uuid.UUID] = set()
        this_round: list[int] = []
        later: list[int] = []
        for index in pending:
            (later if items[index].report.id in seen else this_round).append(index)
            seen.add(items[index].report.id)
        if isolate:
            await _apply_round_isolated(conn, items, this_round, outcomes, now=now)
        else:
            await _apply_round(conn, items, this_round, outcomes, now=now)
        pending = later
    decided = [outcome for outcome in outcomes if outcome is not None]
    assert len(decided) == len(items), "every report gets an outcome"
    return decided


async def _apply_round_isolated(
    conn: asyncpg.Connection, items: list[Submission], indices: list[int], outcomes: list[Outcome | None],
    *, now: dt.datetime,
) -> None:
    """Apply a round in a savepoint; if the database refuses it (a second initial report of an
    incident, a rule only the database knows), apply each half on its own, down to the report
    that breaks the rule, which alone is rejected."""
    try:
        async with transaction(conn):
            await _apply_round(conn, items, indices, outcomes, now=now)
    except errors.FieldsyncError as exc:
        for index in indices:
            outcomes[index] = None
        if len(indices) == 1:
            outcomes[indices[0]] = _rejected(exc)
            return
        middle = len(indices) // 2
        for half in (indices[:middle], indices[middle:]):
            await _apply_round_isolated(conn, items, half, outcomes, now=now)


async def _apply_round(
    conn: asyncpg.Connection, items: list[Submission], indices: list[int], outcomes: list[Outcome | None],
    *, now: dt.datetime,
) -> None:
    """Apply reports with distinct ids: insert the new, decide the existing under row locks, then
    record what was written (versions, photos, audit, events, detection job) and fill the receipts."""
    batch = [items[i] for i in indices]
    inserted = await q.insert_reports(conn, [i.report for i in batch], [_writer(i.actor) for i in batch], now=now)
    written: list[tuple[int, int]] = []
    for index in indices:
        if items[index].report.id in inserted:
            outcomes[index] = Outcome("applied", rules.ReceiptData(items[index].report.id, 1, "submitted", [],
                                                                   False, True))
            written.append((index, 1))
    existing = [index for index in indices if items[index].report.id not in inserted]
    if existing:
        written += await _revise_existing(conn, items, existing, outcomes, now=now)
    if written:
        await _record_written(conn, items, written, inserted=inserted, now=now)
    await _fill_receipts(conn, items, indices, outcomes)


def _writer(actor: Principal) -> q.Writer:
    return q.Writer(author_id=actor.user_id, device_id=actor.device_id)


async def _revise_existing(
    conn: asyncpg.Connection, items: list[Submission], existing: list[int], outcomes: list[Outcome | None],
    *, now: dt.datetime,
) -> list[tuple[int, int]]:
    """Decide each report whose id exists (replay, conflict, stale, revision) under its row lock;
    write the valid revisions; returns (index, new version) of those."""
    current = await q.lock_reports(conn, [items[i].report.id for i in existing])
    past = await q.versions_with_hashes(
        conn,
        [(items[i].report.id, items[i].report.content_hash) for i in existing
         if current[items[i].report.id]["content_hash"] != items[i].report.content_hash],
    )
    to_revise: list[int] = []
    for index in existing:
        item = items[index]
        report = item.report
        outcome = _decide(item.actor, report, current[report.id], past.get((report.id, report.content_hash)))
        if outcome is None:
            to_revise.append(index)
        else:
            outcomes[index] = outcome
    if not to_revise:
        return []
    revised = await q.revise_reports(
        conn, [items[i].report for i in to_revise], [items[i].report.base_version or 0 for i in to_revise],
        [items[i].actor.device_id for i in to_revise], now=now,
    )
    written = []
    for index in to_revise:
        got = revised[items[index].report.id]
        outcomes[index] = Outcome("applied", rules.ReceiptData(items[index].report.id, got["version"], got["status"],
                                                               [], False, False))
        written.append((index, got["version"]))
    await events.reports_revised(
        conn, [(items[i].report, current[items[i].report.id]["status"]) for i in to_revise], now=now
    )
    return written


async def _record_written(
    conn: asyncpg.Connection, items: list[Submission], written: list[tuple[int, int]], *,
    inserted: set[uuid.UUID], now: dt.datetime,
) -> None:
    """What every written version carries: its stored copy, its photo list, its audit event, its
    webhook events and a queued near-duplicate search."""
    batch = [items[i] for i, _ in written]
    revisions = [(items[i], version) for i, version in written if version > 1]  # version 1 came with the row
    if revisions:
        await q.insert_versions(conn, [i.report for i, _ in revisions], [v for _, v in revisions],
                                [_writer(i.actor) for i, _ in revisions], now=now)
    await q.replace_media(
        conn,
        {i.report.id: [(m.sha256, m.role, m.caption) for m in i.report.media] for i in batch},
        attached_by={i.report.id: i.actor.user_id for i in batch},
        created=inserted,
    )
    await audit.record(
        conn,
        [
            audit.NewEvent(
                chain=audit.report_chain(item.report.id), action="created" if version == 1 else "revised",
                actor_id=item.actor.user_id, device_id=item.actor.device_id, report_id=item.report.id,
                to_status="submitted", version=version,
            )
            for item, (_, version) in zip(batch, written, strict=True)
        ],
        now=now,
    )
    await events.reports_created(conn, [i.report for i, (_, v) in zip(batch, written, strict=True) if v == 1],
                                 now=now)
    await duplicates.detect_later(conn, [i.report.id for i in batch], now=now)


async def _fill_receipts(
    conn: asyncpg.Connection, items: list[Submission], indices: list[int], outcomes: list[Outcome | None]
) -> None:
    """Each receipt's missing photos and the candidates its sender may see (stored, or sharing a
    photo)."""
    receipts = [(items[i].report, outcome.receipt) for i in indices
                if (outcome := outcomes[i]) is not None and outcome.receipt is not None]
    with_media = [report.id for report, _ in receipts if report.media]
    missing = await q.missing_media(conn, with_media) if with_media else {}
    # a report created just now has no stored candidates yet, and one without photos shares none
    stored = [(items[i].report.id, items[i].actor.visibility) for i in indices if not _created(outcomes[i])]
    with_photos = [(items[i].report.id, items[i].actor.visibility) for i in indices if items[i].report.media]
    candidates = await duplicates.receipt_candidates(conn, stored=stored, with_photos=with_photos)
    for report, receipt in receipts:
        receipt.missing_media = missing.get(report.id, [])
        receipt.possible_duplicates = [(c.id, c.score, c.reasons) for c in candidates.get(report.id, [])]


def _created(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.receipt is not None and outcome.receipt.created


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
    outcome = (await submit_many(conn, [Submission(actor, report)], now=now, clock_skew_s=clock_skew_s,
                                 isolate=False))[0]
    if outcome.error is not None:
        raise outcome.error
    assert outcome.receipt is not None
    return outcome.receipt
