"""The similar-photo probe reads index ranges that stay narrow even where thousands of photos
share a dHash band: a flat sky or bare ground makes a band all zeros, and such a band is not
looked up. Without that, one report's probe would read every photo with the same empty band."""

from __future__ import annotations

import json
import uuid

from fieldsync.db import duplicates as q
from fieldsync.domain.principals import Visibility
from fieldsync.services import duplicates as service
from tests.db.test_pull_plan import Recording, examined, explain, explain_generic, scans_of
from tests.support import make_user

HOT = 5_000


async def busy_mine(conn, author_id: uuid.UUID, now) -> None:
    """``HOT`` open hazards of one mine at one spot over the 600 hours before ``now``."""
    await conn.execute(
        f"""
        INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body, content_hash,
                             author_id, received_at, updated_at, credit_code)
        SELECT gen_random_uuid(), 'hazard', 'coal_mine', 'filler ' || n, '140431', 36.5 + (n % 70) * 1e-6,
               112.3 + (n % 13) * 1e-6, $2::timestamptz - (n % 600) * interval '1 hour',
               '{{}}', sha256(n::text::bytea), $1, now(), now(), '91140431MA0K2B3C49'
        FROM generate_series(1, {HOT}) AS n
        """,
        author_id, now,
    )


async def test_a_band_of_zeros_shared_by_thousands_of_photos_is_not_read(conn, clock) -> None:
    author = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    # thousands of photos whose bottom rows are flat (low band 0), otherwise unlike anything
    await conn.execute(
        f"""
        INSERT INTO media (sha256, bytes, content_type, width, height, created_at, dhash)
        SELECT encode(sha256(n::text::bytea), 'hex'), 1000, 'image/jpeg', 640, 480, now(),
               (('x' || substr(md5(n::text), 1, 12))::bit(48)::bigint << 16)
        FROM generate_series(1, {HOT}) AS n
        """
    )
    await conn.execute(  # each attached to a report of its own, far away and long ago
        f"""
        WITH r AS (
            INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body, content_hash,
                                 author_id, received_at, updated_at)
            SELECT gen_random_uuid(), 'hazard', 'gas', 'filler ' || n, '140431', 36.0, 113.0,
                   now() - interval '900 days', '{{}}', sha256(n::text::bytea), $1, now(), now()
            FROM generate_series(1, {HOT}) AS n
            RETURNING id, title
        )
        INSERT INTO report_media (report_id, position, sha256, role, attached_by)
        SELECT id, 1, encode(sha256(substr(title, 8)::bytea), 'hex'), 'photo', $1 FROM r
        """,
        author.user_id,
    )
    report_id = uuid.uuid4()
    photo = "ab" * 32
    await conn.execute(
        """
        INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body, content_hash,
                             author_id, received_at, updated_at)
        VALUES ($1, 'hazard', 'coal_mine', '皮带机跑偏', '140431', 36.5, 112.3, now(), '{}', '\\x00', $2, now(), now())
        """,
        report_id, author.user_id,
    )
    await conn.execute(
        """INSERT INTO media (sha256, bytes, content_type, width, height, created_at, dhash)
           VALUES ($1, 1000, 'image/jpeg', 640, 480, now(), $2)""",
        photo, 0x1234_5678_9ABC << 16,  # its own low band is 0 as well
    )
    await conn.execute("INSERT INTO report_media (report_id, position, sha256, role, attached_by) "
                       "VALUES ($1, 1, $2, 'photo', $3)", report_id, photo, author.user_id)
    await conn.execute("INSERT INTO media_uploads (sha256, user_id, uploaded_at) SELECT sha256, $1, now() FROM media",
                       author.user_id)
    await conn.execute("ANALYZE media; ANALYZE report_media; ANALYZE reports")

    recording = Recording(conn)
    await q.find_candidates(recording, [report_id], [300.0], [86400.0 * 30], max_bits=16, per_signal=20, nearest=10)  # type: ignore[arg-type]
    [(sql, args)] = recording.statements
    plan = await explain(conn, sql, args)
    read = sum(examined(node) for node in scans_of(plan, "media"))
    assert read < 100, f"the similar-photo probe read {read} media rows"


async def test_the_window_probe_does_not_wade_through_other_categories_in_its_square(conn, clock) -> None:
    """Thousands of reports of other categories in the same square and month, written interleaved
    with older coal-mine reports (a busy county): the probe for a new coal-mine hazard reads its own
    category's band of the index, where the time range prunes, not pages shared with the others."""
    author = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    await conn.execute(
        f"""
        INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body, content_hash,
                             author_id, received_at, updated_at)
        SELECT gen_random_uuid(), 'hazard', c.category, 'filler ' || n, '140431', 36.5 + (n % 50) * 1e-5,
               112.3 + (n / 50) * 1e-5,
               $2::timestamptz - CASE WHEN c.category = 'coal_mine' THEN interval '200 days' ELSE interval '0' END
                   + (n % 20) * interval '1 hour',
               '{{}}', sha256(n::text::bytea), $1, now(), now()
        FROM generate_series(1, {HOT}) AS n,
             LATERAL (SELECT (ARRAY['gas', 'coal_mine', 'fire_safety', 'construction', 'metallurgy'])[1 + n % 5]
                      AS category) AS c
        """,
        author.user_id, clock.now(),
    )
    report_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body, content_hash,
                             author_id, received_at, updated_at)
        VALUES ($1, 'hazard', 'coal_mine', '皮带机跑偏', '140431', 36.5002, 112.3002, $3, '{}', '\\x01', $2, now(), now())
        """,
        report_id, author.user_id, clock.now(),
    )
    await conn.execute("ANALYZE reports")

    recording = Recording(conn)
    await q.find_candidates(recording, [report_id], [300.0], [86400.0 * 30], max_bits=16, per_signal=20, nearest=10)  # type: ignore[arg-type]
    [(sql, args)] = recording.statements
    raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    window = [n for n in scans_of(plan, "reports") if n.get("Index Name") == "reports_dedupe_window_idx"]
    assert window, "the window probe does not use its index"
    pages = sum(n["Shared Hit Blocks"] + n["Shared Read Blocks"] for n in window)
    assert pages < 12, f"the window probe read {pages} pages, wading through the other category"


async def test_a_mine_with_thousands_of_open_reports_in_one_spot_is_probed_by_its_nearest_rows(conn, clock) -> None:
    """One enterprise, one category, one spot, thousands of open reports in the window (a big mine
    over a month): the enterprise probe reads the nearest in time each way and the window probe
    the nearest in space, not every report of the mine."""
    author = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    await busy_mine(conn, author.user_id, clock.now())
    report_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO reports (id, kind, category, title, jurisdiction, lat, lon, observed_at, body, content_hash,
                             author_id, received_at, updated_at, credit_code)
        VALUES ($1, 'hazard', 'coal_mine', '皮带机跑偏', '140431', 36.50003, 112.30001, $3::timestamptz - interval '300 hours',
                '{}', '\\x01', $2, now(), now(), '91140431MA0K2B3C49')
        """,
        report_id, author.user_id, clock.now(),
    )
    await conn.execute("ANALYZE reports")

    recording = Recording(conn)
    rows = await q.find_candidates(recording, [report_id], [300.0], [86400.0 * 30], max_bits=16, per_signal=20,  # type: ignore[arg-type]
                                   nearest=10)
    [(sql, args)] = recording.statements
    plan = await explain(conn, sql, args)
    probes = [n for n in scans_of(plan, "reports") if n.get("Index Name") in
              ("reports_credit_category_idx", "reports_dedupe_window_idx")]

    assert {n["Index Name"] for n in probes} == {"reports_credit_category_idx", "reports_dedupe_window_idx"}
    read = sum(examined(n) for n in probes)
    assert read <= 50, f"the enterprise and window probes read {read} rows of reports"
    assert 20 <= len(rows) <= 30


async def test_the_generic_plan_the_worker_runs_probes_a_busy_mine_by_its_nearest_rows_too(conn, clock) -> None:
    """The near-duplicate worker runs the search on its generic plan (``generic_plans``, ADR 0019):
    planned without the searched reports in hand, it still probes the enterprise and window indexes
    per report, reads the nearest rows, not the mine's thousands, and looks each candidate up by
    key (its first version hashed all of ``reports`` to join them)."""
    author = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    await busy_mine(conn, author.user_id, clock.now())
    searched = [row["id"] for row in await conn.fetch("SELECT id FROM reports ORDER BY observed_at OFFSET 250 LIMIT 3")]
    await conn.execute("ANALYZE reports")
    recording = Recording(conn)
    await q.find_candidates(recording, searched, [300.0] * 3, [86400.0 * 30] * 3, max_bits=16, per_signal=10,  # type: ignore[arg-type]
                            nearest=5)
    [(sql, args)] = recording.statements
    plan = await explain_generic(conn, sql, args)
    probes = [n for n in scans_of(plan, "reports") if n.get("Index Name") in
              ("reports_credit_category_idx", "reports_dedupe_window_idx")]

    assert {n["Index Name"] for n in probes} == {"reports_credit_category_idx", "reports_dedupe_window_idx"}
    read = sum(examined(n) for n in probes)
    assert read <= 3 * 25, f"the generic plan's enterprise and window probes read {read} rows of reports"
    assert not [n for n in scans_of(plan, "reports") if n["Node Type"] == "Seq Scan"], "the generic plan scans reports"

    # the candidates' rows, read once each (``get_sides``), are looked up by key on the generic plan too
    others = [row["id"] for row in await conn.fetch("SELECT id FROM reports ORDER BY observed_at LIMIT 300")]
    await q.get_sides(recording, others)  # type: ignore[arg-type]
    sides_sql, sides_args = recording.statements[-1]
    scans = scans_of(await explain_generic(conn, sides_sql, sides_args), "reports")
    assert not [n for n in scans if n["Node Type"] == "Seq Scan"], "the generic plan scans reports for their sides"
    rows = [n for n in scans if "Subplan Name" not in n]  # the lookup itself (a bitmap of the keys), not its subquery
    assert sum(examined(n) for n in rows) == len(others), [(n["Node Type"], examined(n)) for n in rows]


async def test_a_report_with_stored_candidates_reads_each_candidate_once(conn, clock) -> None:
    """Each report of a busy mine paired with ten others: the stored-candidate lookups (the
    receipt's, and ``possible_duplicates`` in every read of a report) probe a candidate's row once,
    not once for every jurisdiction that might hold it."""
    author = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    await busy_mine(conn, author.user_id, clock.now())
    await conn.execute(
        """
        WITH numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM reports)
        INSERT INTO report_duplicates (report_id, candidate_id, score, reasons, found_at)
        SELECT a.id, b.id, 0.8, '[]', now() FROM numbered a JOIN numbered b ON b.n BETWEEN a.n + 1 AND a.n + 10
        """
    )
    await conn.execute("ANALYZE")
    report_id = await conn.fetchval("SELECT id FROM reports ORDER BY id OFFSET 100 LIMIT 1")
    everyone = Visibility(author_id=None, path_prefix="/")

    recording = Recording(conn)
    found = await q.candidates_for(recording, [(report_id, everyone)])  # type: ignore[arg-type]
    assert len(found[report_id]) == 20
    [(sql, args)] = recording.statements
    probes = sum(examined(node) for node in scans_of(await explain(conn, sql, args), "reports"))
    assert probes <= 2 * 20, f"the receipt's lookup probed reports {probes} times for 20 candidates"

    listed = f"SELECT {q.possible_duplicates_sql('$2', '$3')} AS found FROM reports r WHERE r.id = $1"
    args = (report_id, None, "/")
    assert len(await conn.fetchval(listed, *args)) == 20
    probes = sum(examined(node) for node in scans_of(await explain(conn, listed, args), "reports"))
    assert probes <= 2 * 20 + 1, f"possible_duplicates probed reports {probes} times for 20 candidates"


async def test_a_batch_of_neighbours_in_a_busy_mine_reads_each_candidate_once(conn, clock) -> None:
    """Twenty reports of one mine an hour or two apart, searched in one batch (a burst at one big
    mine): they find mostly the same few candidates, and each candidate's row is looked up once
    for the batch, not once for every report that found it."""
    author = await make_user(conn, role="inspector", jurisdiction="140431", now=clock.now())
    await busy_mine(conn, author.user_id, clock.now())
    searched = [row["id"] for row in await conn.fetch("SELECT id FROM reports ORDER BY observed_at OFFSET 2500 LIMIT 20")]
    await conn.execute("ANALYZE reports")

    recording = Recording(conn)
    found = await service.score_candidates(recording, searched)  # type: ignore[arg-type]
    pairs = sum(len(candidates) for candidates in found.values())
    others = {c.id for candidates in found.values() for c in candidates}.difference(searched)
    assert pairs > 2 * (len(searched) + len(others)), (pairs, len(others))  # they do share candidates

    by_key = 0
    for sql, args in recording.statements:
        by_key += sum(examined(node) for node in scans_of(await explain(conn, sql, args), "reports")
                      if node.get("Index Name") == "reports_pkey")
    assert by_key <= 2 * len(searched) + len(others), f"{by_key} lookups by key for {pairs} pairs"
