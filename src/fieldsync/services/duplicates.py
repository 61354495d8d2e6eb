"""Near-duplicate detection: find, score and store candidates for a batch of reports, inside the
caller's transaction, with a constant number of statements whatever the batch size.

Detection runs in the background worker (``run_duplicates_jobs``), a batch of queued reports at a
time: report ingest queues every new or revised report, and a photo that arrives after its report
queues that report again. A receipt names the candidates known at once (``receipt_candidates``). A pair whose
membership changes re-stamps both reports, so devices and supervisors pull the new
``possible_duplicates``. Nothing is ever merged here: a supervisor merges with the ``merge``
transition. Rules and weights: ``domain.duplicates``; storage and indexes: ``db.duplicates``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from typing import Any

import asyncpg

from fieldsync import errors
from fieldsync.db import duplicates as q
from fieldsync.db import jobs
from fieldsync.db import reports as reports_q
from fieldsync.db.transactions import generic_plans
from fieldsync.domain import duplicates as rules
from fieldsync.domain.principals import Principal, Visibility
from fieldsync.domain.views import CandidateView
from fieldsync.imaging.likeness import best_likeness
from fieldsync.ports import Clock
from fieldsync.services import feed

DUPLICATES_JOB = "duplicates"
DETECT_BATCH = 500  # reports per search: a burst's, or a bulk push's backlog in slices


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    id: uuid.UUID
    score: float
    reasons: list[dict[str, Any]]
    features: dict[str, float] | None = None  # what the score was computed from (fresh scores only)
    pair: tuple[rules.Side, rules.PairFeatures, rules.Measures] | None = None  # to explain a fresh score later


def explained(candidate: Candidate) -> Candidate:
    """The candidate with its reasons (a fresh score is computed without them; see ``score``)."""
    if candidate.reasons or candidate.pair is None:
        return candidate
    # built directly: dataclasses.replace inspects the fields on every call, and a dense cell
    # explains ten candidates per report
    return Candidate(candidate.id, candidate.score, rules.reasons(*candidate.pair), candidate.features,
                     candidate.pair)


def _side(row: asyncpg.Record) -> rules.Side:
    return rules.Side(
        kind=row["kind"], category=row["category"], text=f"{row['title']} {row['description']}",
        lat=row["lat"], lon=row["lon"], accuracy_m=row["accuracy_m"], observed_at=row["observed_at"],
        credit_code=row["credit_code"], status=row["status"],
    )


async def score_candidates(
    conn: asyncpg.Connection, ids: list[uuid.UUID], *, explain: bool = False
) -> dict[uuid.UUID, list[Candidate]]:
    """Every candidate the indexes find for each report, scored, best first (no threshold); with
    reasons only if ``explain`` (``explained`` adds them to the ones a caller keeps)."""
    found: dict[uuid.UUID, list[Candidate]] = {i: [] for i in ids}
    if not ids:
        return found
    sides = {row["id"]: row for row in await q.get_sides(conn, ids)}
    order = [i for i in ids if i in sides]
    found_pairs = await q.find_candidates(
        conn, order,
        [rules.search_radius_m(sides[i]["kind"], sides[i]["category"], sides[i]["accuracy_m"]) for i in order],
        [rules.window(sides[i]["kind"], sides[i]["category"]).seconds for i in order],
        max_bits=rules.PHOTO_SEARCH_BITS, per_signal=rules.CANDIDATES_PER_SIGNAL,
        nearest=rules.CANDIDATES_NEAREST,
    )
    others = sorted({row["id"] for row in found_pairs}.difference(sides))
    if others:
        sides.update({row["id"]: row for row in await q.get_sides(conn, others)})
    pairs = [(row["src_id"], row["id"], row["same_photo"]) for row in found_pairs
             if row["id"] in sides and sides[row["id"]]["status"] != "merged"]
    # numpy likeness and the per-pair scoring of a bulk batch (10^4 pairs) run in a worker thread:
    # the GIL switches every few milliseconds, so requests keep being served meanwhile
    return await asyncio.to_thread(_score_pairs, found, sides, pairs, explain)


def _score_pairs(
    found: dict[uuid.UUID, list[Candidate]], rows: dict[uuid.UUID, asyncpg.Record],
    pairs: list[tuple[uuid.UUID, uuid.UUID, str | None]], explain: bool,
) -> dict[uuid.UUID, list[Candidate]]:
    photos = [(rows[src]["thumbprints"], rows[other]["thumbprints"]) for src, other, _ in pairs]
    likeness: list[float | None] = [None] * len(pairs)
    if any(ours and theirs for ours, theirs in photos):
        likeness = best_likeness(photos)
    sides: dict[uuid.UUID, rules.Side] = {}  # in a dense cell each candidate meets many reports
    for (src, other, same_photo), like in zip(pairs, likeness, strict=True):
        side = sides.get(src) or sides.setdefault(src, _side(rows[src]))
        theirs = sides.get(other) or sides.setdefault(other, _side(rows[other]))
        features = rules.PairFeatures(same_photo=same_photo, likeness=like)
        scored = rules.score(side, theirs, features, explain=explain)
        found[src].append(Candidate(other, scored.score, scored.reasons, scored.features, (side, features, scored.measures)))
    for candidates in found.values():
        candidates.sort(key=lambda c: (-c.score, c.id))  # a UUID orders as its text does
    return found


def _best_explained(scored: dict[uuid.UUID, list[Candidate]], threshold: float) -> dict[uuid.UUID, list[Candidate]]:
    """Each report's best ``CANDIDATES_KEPT`` at or above ``threshold``, with their reasons."""
    return {i: [explained(c) for c in [c for c in cands if c.score >= threshold][: rules.CANDIDATES_KEPT]]
            for i, cands in scored.items()}


async def detect(
    conn: asyncpg.Connection, ids: list[uuid.UUID], *, now: dt.datetime, threshold: float = rules.THRESHOLD
) -> dict[uuid.UUID, list[Candidate]]:
    """Recompute and store the candidates at or above ``threshold`` of each report in ``ids``, the
    best ``CANDIDATES_KEPT`` of each. A pair is stored once, owned by the report that kept it. A
    pair another report keeps stays, rescored, when this search scores it at or above the
    threshold even outside its own ten; it goes when this search no longer finds it or scores it
    below."""
    ids = list(dict.fromkeys(ids))
    scored = await score_candidates(conn, ids)
    kept = await asyncio.to_thread(_best_explained, scored, threshold)  # string work, off the event loop
    pairs: dict[frozenset[uuid.UUID], tuple[uuid.UUID, uuid.UUID, float, list[dict[str, Any]]]] = {}
    for src, candidates in kept.items():
        for c in candidates:
            key = frozenset((src, c.id))
            if key not in pairs or pairs[key][2] < c.score:
                pairs[key] = (src, c.id, c.score, c.reasons)
    old = await q.delete_pairs(conn, ids)
    seen = {src: {c.id: c for c in candidates} for src, candidates in scored.items()}
    for row in old:
        owner, other = row["report_id"], row["candidate_id"]
        key = frozenset((owner, other))
        if owner in seen:
            continue  # this search decides the pairs its own reports kept
        if key in pairs:  # kept from both sides: it stays the other report's, with the fresh score
            pairs[key] = (owner, other, *pairs[key][2:])
            continue
        again = seen.get(other, {}).get(owner)  # not reached at all: the report changed too much to tell
        if again is not None and again.score >= threshold:
            pairs[key] = (owner, other, again.score, explained(again).reasons)  # still its pair, rescored
    await q.insert_pairs(conn, list(pairs.values()), now=now)
    before = {frozenset((row["report_id"], row["candidate_id"])): round(row["score"], 4) for row in old}
    changed = (before.keys() ^ pairs.keys()) | {  # a new score can reorder a report's candidates
        key for key, pair in pairs.items() if key in before and before[key] != round(pair[2], 4)}
    members = {member for pair in changed for member in pair}
    await feed.restamp(conn, sorted(members.intersection(ids)), now=now)
    await feed.restamp_soon(conn, sorted(members.difference(ids)), now=now)  # in a dense cell, the same few, often
    return kept


async def detect_later(conn: asyncpg.Connection, ids: list[uuid.UUID], *, now: dt.datetime) -> None:
    """Queue detection: a durable job per report, run by the background worker a moment later,
    which re-stamps the reports whose candidates changed so that devices and supervisors pull them."""
    await jobs.enqueue(conn, kind=DUPLICATES_JOB, keys=[str(i) for i in ids], now=now)


async def run_duplicates_jobs(pool: asyncpg.Pool, clock: Clock, batch: int = DETECT_BATCH) -> int:
    """Claim up to ``batch`` queued detections and run them together; how many (0: none was due)."""
    async with pool.acquire() as conn, conn.transaction():
        # The search is a five-branch union whose custom plan took about a millisecond to make
        # for every batch, more than running it; its generic plan has the same shape (an index
        # probe per searched report per branch). The pass's other statements are lookups by key.
        await generic_plans(conn)
        return await detect_queued(conn, now=clock.now(), batch=batch)


async def detect_queued(conn: asyncpg.Connection, *, now: dt.datetime, batch: int = DETECT_BATCH) -> int:
    """``run_duplicates_jobs`` inside the caller's transaction (``scripts/eval_dedupe`` drives it)."""
    claimed = await jobs.claim(conn, kind=DUPLICATES_JOB, now=now, limit=batch)
    if claimed:
        await detect(conn, [uuid.UUID(job.key) for job in claimed], now=now)
        await jobs.delete(conn, [job.id for job in claimed])
    return len(claimed)


async def references_completed(conn: asyncpg.Connection, report_ids: list[uuid.UUID], *, now: dt.datetime) -> None:
    """Their author's or attacher's upload made these reports' references to a photo count: put
    them back on the sync feed (their ``missing_media`` shrank) and queue their candidates'
    recomputation (the photo is new evidence)."""
    await feed.restamp(conn, report_ids, now=now)
    await detect_later(conn, report_ids, now=now)


async def fingerprinted(
    conn: asyncpg.Connection, sha256: str, *, dhash: int | None, thumbprint: bytes | None, now: dt.datetime
) -> None:
    """A photo stored earlier now has fingerprints: record them and recompute the candidates of the
    reports that use it (only reports whose candidates change go back on the sync feed)."""
    await _fingerprinted(conn, sha256, await q.reports_using(conn, sha256), dhash=dhash, thumbprint=thumbprint, now=now)


async def _fingerprinted(
    conn: asyncpg.Connection, sha256: str, reports: list[uuid.UUID], *, dhash: int | None, thumbprint: bytes | None,
    now: dt.datetime,
) -> None:
    if dhash is None and thumbprint is None:
        return
    await q.set_fingerprints(conn, sha256=sha256, dhash=dhash, thumbprint=thumbprint)
    if reports:
        await detect(conn, reports, now=now)


async def stored_candidates(
    conn: asyncpg.Connection, ids: list[uuid.UUID], viewer: Visibility
) -> dict[uuid.UUID, list[Candidate]]:
    """The stored candidates of each report that ``viewer`` may see (one statement), best first."""
    return {
        report_id: [Candidate(row["id"], float(row["score"]), row["reasons"]) for row in rows]
        for report_id, rows in (await q.candidates_of(conn, ids, viewer)).items()
    }


async def receipt_candidates(
    conn: asyncpg.Connection, *, stored: list[tuple[uuid.UUID, Visibility]],
    with_photos: list[tuple[uuid.UUID, Visibility]],
) -> dict[uuid.UUID, list[Candidate]]:
    """What a receipt names before detection has run, for each (report, its sender's view): the
    stored candidates of the reports in ``stored`` (a report created just now has none yet), and
    for those in ``with_photos`` the reports holding the very same photo, scored now (at or above
    the threshold). One statement per list when no photo is shared, which is nearly always."""
    found: dict[uuid.UUID, list[Candidate]] = {report_id: [] for report_id, _ in (*stored, *with_photos)}
    if stored:
        for report_id, rows in (await q.candidates_for(conn, stored)).items():
            found[report_id] = [Candidate(row["id"], float(row["score"]), row["reasons"]) for row in rows]
    shared = await q.sharing_a_photo(conn, with_photos) if with_photos else set()
    if shared:
        scored = await score_candidates(conn, sorted({report_id for report_id, _ in shared}))
        for report_id, candidates in scored.items():
            known = {c.id for c in found[report_id]}
            found[report_id] += [explained(c) for c in candidates if (report_id, c.id) in shared
                                 and c.id not in known and c.score >= rules.THRESHOLD]
            found[report_id].sort(key=lambda c: (-c.score, c.id))
    return found


async def list_duplicates(conn: asyncpg.Connection, actor: Principal, report_id: uuid.UUID) -> list[CandidateView]:
    """The stored candidates of a report the caller may see, best first; only those it may see."""
    rows = await reports_q.get_reports(conn, [report_id], actor.visibility)
    if not rows or not actor.sees_report(author_id=rows[0]["author_id"], jurisdiction_path=rows[0]["jurisdiction_path"]):
        raise errors.ReportNotFound()
    return [
        CandidateView(
            id=row["id"], score=float(row["score"]), reasons=tuple(row["reasons"]), kind=row["kind"],
            category=row["category"], title=row["title"], status=row["status"], observed_at=row["observed_at"],
            found_at=row["found_at"],
        )
        for row in await q.list_for_report(conn, report_id)
        if actor.sees_report(author_id=row["author_id"], jurisdiction_path=row["jurisdiction_path"])
    ]

