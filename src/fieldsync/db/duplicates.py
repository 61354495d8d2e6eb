"""SQL for near-duplicate candidates: one statement finds every candidate of a batch of reports,
with the features the scoring needs; others store the pairs and re-stamp the rows they change.

Every candidate generator is an index range, capped per report (``LIMIT`` inside ``LATERAL``);
where a cell is dense (one big mine) the ordered ones keep the reports most likely to be the same
event rather than an arbitrary slice:

- same photo: ``report_media_sha256_idx``;
- similar photo: the four ``media_dhash_b*_idx`` band indexes (BitmapOr), then the exact
  Hamming distance with ``bit_count``; each side's photo thumbprints come back for scoring. A
  band of all zeros or all ones (a flat sky, bare ground: thousands of photos share it) is not
  looked up, or one hot band value would make the probe read a large slice of ``media``;
- same enterprise: ``reports_credit_category_idx`` (credit_code, category, observed_at), the
  nearest in time before and after, two ordered range scans;
- same kind and category in a space-time window: ``reports_dedupe_window_idx``, a GiST over
  (point, observed_at) where the point's longitude is shifted into a band of its own per kind
  and category (``dedupe_band``, migration 0009), so the R-tree keeps categories apart; nearest
  first (a KNN scan of the same index).

Text similarity is scored on the candidates these find, not searched on its own: a matching text
far away and months apart is a different event, and the trigram index answers "contains", not
"is about the same thing".
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import msgspec

from fieldsync.db.rules import path_sql, possessed_sql, visible_sql
from fieldsync.domain.principals import Visibility

_SIDE = f"""r.id, r.kind, r.category, r.title, r.description, r.lat, r.lon, r.accuracy_m, r.observed_at,
           r.credit_code, r.status,
           coalesce((SELECT array_agg(m.thumbprint ORDER BY m.sha256) FROM report_media rm
                     JOIN media m ON m.sha256 = rm.sha256
                     WHERE rm.report_id = r.id AND rm.role IN ('photo', 'before') AND m.thumbprint IS NOT NULL
                       AND {possessed_sql("rm")}),
                    '{{}}') AS thumbprints"""


# The ``$6`` nearest open reports of the same enterprise and category on one side in time of each
# searched report: one ordered range scan of (credit_code, category, observed_at) per side.
_NEAREST_AT_ENTERPRISE = """
            SELECT s.id, o.id FROM src s
            CROSS JOIN LATERAL (
                SELECT o.id FROM reports o
                WHERE o.credit_code = s.credit_code AND o.category = s.category AND o.id <> s.id
                  AND o.status NOT IN ('merged', 'rejected', 'closed') AND o.observed_at {side} s.observed_at
                ORDER BY o.observed_at {order} LIMIT $6
            ) o
            WHERE s.credit_code IS NOT NULL"""


async def get_sides(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_SIDE} FROM reports r WHERE r.id = ANY($1::uuid[])", ids)


async def find_candidates(
    conn: asyncpg.Connection,
    ids: list[uuid.UUID],
    radii_m: list[float],
    windows_s: list[float],
    *,
    max_bits: int,
    per_signal: int,
    nearest: int,
) -> list[asyncpg.Record]:
    """(src_id, id, same_photo) for every candidate of every report in ``ids``: up to
    ``per_signal`` sharing a photo or a dHash band, the ``nearest`` of the same enterprise and
    category before and after it in time, and the ``nearest`` in space within its window. The
    candidates' sides are read once each (``get_sides``): in a dense cell a batch's fifteen pairs
    per report name about four distinct reports."""
    return await conn.fetch(
        f"""
        WITH src AS (
            SELECT r.id, r.kind, r.category, r.lat, r.lon, r.observed_at, r.credit_code, w.radius_m, w.window_s,
                   dedupe_band(r.kind, r.category) AS band
            FROM unnest($1::uuid[], $2::float8[], $3::float8[]) AS w(id, radius_m, window_s)
            JOIN reports r ON r.id = w.id
        ),
        sp AS (
            SELECT DISTINCT rm.report_id, rm.sha256, m.dhash,
                   nullif(nullif((m.dhash >> 48) & 65535, 0), 65535) AS b0,
                   nullif(nullif((m.dhash >> 32) & 65535, 0), 65535) AS b1,
                   nullif(nullif((m.dhash >> 16) & 65535, 0), 65535) AS b2,
                   nullif(nullif(m.dhash & 65535, 0), 65535) AS b3
            FROM report_media rm LEFT JOIN media m ON m.sha256 = rm.sha256
            WHERE rm.report_id = ANY($1::uuid[]) AND rm.role IN ('photo', 'before') AND {possessed_sql("rm")}
        ),
        pairs AS (
            SELECT sp.report_id AS src_id, o.report_id AS cand_id FROM sp
            CROSS JOIN LATERAL (
                SELECT rm.report_id FROM report_media rm
                WHERE rm.sha256 = sp.sha256 AND rm.report_id <> sp.report_id AND {possessed_sql("rm")} LIMIT $5
            ) o
            UNION
            SELECT sp.report_id, o.report_id FROM sp
            CROSS JOIN LATERAL (
                SELECT rm.report_id FROM media m JOIN report_media rm ON rm.sha256 = m.sha256
                WHERE m.dhash IS NOT NULL
                  AND (((m.dhash >> 48) & 65535) = sp.b0 OR ((m.dhash >> 32) & 65535) = sp.b1
                    OR ((m.dhash >> 16) & 65535) = sp.b2 OR (m.dhash & 65535) = sp.b3)
                  AND bit_count((m.dhash # sp.dhash)::bit(64)) <= $4
                  AND rm.report_id <> sp.report_id AND {possessed_sql("rm")}
                LIMIT $5
            ) o
            WHERE sp.dhash IS NOT NULL
            UNION
            {_NEAREST_AT_ENTERPRISE.format(side=">=", order="")}
            UNION
            {_NEAREST_AT_ENTERPRISE.format(side="<", order="DESC")}
            UNION
            SELECT s.id, o.id FROM src s
            CROSS JOIN LATERAL (
                SELECT o.id FROM reports o
                WHERE point(o.lon + dedupe_band(o.kind, o.category), o.lat) <@ box(
                        point(s.lon + s.band - s.radius_m / (111320.0 * greatest(cos(radians(s.lat)), 0.01)),
                              s.lat - s.radius_m / 111320.0),
                        point(s.lon + s.band + s.radius_m / (111320.0 * greatest(cos(radians(s.lat)), 0.01)),
                              s.lat + s.radius_m / 111320.0))
                  AND o.observed_at BETWEEN s.observed_at - make_interval(secs => s.window_s)
                                        AND s.observed_at + make_interval(secs => s.window_s)
                  AND o.kind = s.kind AND o.category = s.category AND o.id <> s.id
                ORDER BY point(o.lon + dedupe_band(o.kind, o.category), o.lat) <-> point(s.lon + s.band, s.lat)
                LIMIT $6
            ) o
        )
        SELECT p.src_id, p.cand_id AS id,
               (SELECT min(sp.sha256) FROM sp JOIN report_media orm
                    ON orm.sha256 = sp.sha256 AND orm.report_id = p.cand_id AND orm.role IN ('photo', 'before')
                   AND {possessed_sql("orm")}
                WHERE sp.report_id = p.src_id) AS same_photo
        FROM pairs p
        """,
        ids, radii_m, windows_s, max_bits, per_signal, nearest,
    )


async def delete_pairs(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """Delete every stored pair that involves a report of ``ids``; the rows as they were."""
    return await conn.fetch(
        """
        DELETE FROM report_duplicates WHERE report_id = ANY($1::uuid[]) OR candidate_id = ANY($1::uuid[])
        RETURNING report_id, candidate_id, score, reasons
        """,
        ids,
    )


async def insert_pairs(
    conn: asyncpg.Connection, pairs: list[tuple[uuid.UUID, uuid.UUID, float, list[dict[str, Any]]]], *,
    now: dt.datetime,
) -> None:
    """Store (report, candidate, score, reasons) rows, each unordered pair once."""
    if not pairs:
        return
    await conn.execute(
        """
        INSERT INTO report_duplicates (report_id, candidate_id, score, reasons, found_at)
        SELECT p.report_id, p.candidate_id, p.score, p.reasons::jsonb, $5
        FROM unnest($1::uuid[], $2::uuid[], $3::real[], $4::text[]) AS p(report_id, candidate_id, score, reasons)
        ON CONFLICT ON CONSTRAINT report_duplicates_pkey
        DO UPDATE SET score = excluded.score, reasons = excluded.reasons, found_at = excluded.found_at
        """,
        [p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs],
        [msgspec.json.encode(p[3]).decode() for p in pairs], now,
    )


async def list_for_report(conn: asyncpg.Connection, report_id: uuid.UUID) -> list[asyncpg.Record]:
    """The stored candidates of one report (either direction), best first; merged ones left out."""
    return await conn.fetch(
        """
        SELECT d.other AS id, d.score, d.reasons, d.found_at, r.kind, r.category, r.title, r.status,
               r.observed_at, r.author_id, r.jurisdiction, j.path AS jurisdiction_path
        FROM (
            SELECT candidate_id AS other, score, reasons, found_at FROM report_duplicates WHERE report_id = $1
            UNION ALL
            SELECT report_id, score, reasons, found_at FROM report_duplicates WHERE candidate_id = $1
        ) d
        JOIN reports r ON r.id = d.other
        JOIN jurisdictions j ON j.code = r.jurisdiction
        WHERE r.status <> 'merged'
        ORDER BY d.score DESC, r.observed_at, r.id
        """,
        report_id,
    )


async def candidates_of(
    conn: asyncpg.Connection, ids: list[uuid.UUID], viewer: Visibility
) -> dict[uuid.UUID, list[asyncpg.Record]]:
    """For each report, its stored candidates that are not merged and that ``viewer`` may see:
    (report_id, id, score, reasons), best first."""
    return await candidates_for(conn, [(report_id, viewer) for report_id in ids])


async def candidates_for(
    conn: asyncpg.Connection, viewed: list[tuple[uuid.UUID, Visibility]]
) -> dict[uuid.UUID, list[asyncpg.Record]]:
    """``candidates_of`` with a viewer per report (a group commit mixes senders): for each
    (distinct) report, its stored candidates that are not merged and that its viewer may see."""
    rows = await conn.fetch(
        f"""
        WITH v AS (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS v(report_id, author, prefix))
        SELECT d.report_id, d.other AS id, d.score, d.reasons FROM (
            SELECT v.report_id, v.author, v.prefix, rd.candidate_id AS other, rd.score, rd.reasons
            FROM v JOIN report_duplicates rd ON rd.report_id = v.report_id
            UNION ALL
            SELECT v.report_id, v.author, v.prefix, rd.report_id, rd.score, rd.reasons
            FROM v JOIN report_duplicates rd ON rd.candidate_id = v.report_id
        ) d JOIN reports r ON r.id = d.other
        WHERE r.status <> 'merged' AND {visible_sql("r", path_sql("r"), "d.author", "d.prefix")}
        ORDER BY d.report_id, d.score DESC, d.other
        """,
        [report_id for report_id, _ in viewed], [v.author_id for _, v in viewed],
        [v.path_prefix for _, v in viewed],
    )
    found: dict[uuid.UUID, list[asyncpg.Record]] = {report_id: [] for report_id, _ in viewed}
    for row in rows:
        found[row["report_id"]].append(row)
    return found


async def sharing_a_photo(
    conn: asyncpg.Connection, viewed: list[tuple[uuid.UUID, Visibility]]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(report, other) pairs where both hold the same photo or 'before' bytes as a counted
    reference, the other is not merged and the report's viewer may see it: the exact signal a
    receipt can name before detection has run. Index lookups only."""
    rows = await conn.fetch(
        f"""
        SELECT DISTINCT v.report_id, o.report_id AS other
        FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS v(report_id, author, prefix)
        JOIN report_media rm ON rm.report_id = v.report_id AND rm.role IN ('photo', 'before')
        JOIN report_media o ON o.sha256 = rm.sha256 AND o.report_id <> v.report_id
        JOIN reports r ON r.id = o.report_id AND r.status <> 'merged'
        WHERE {possessed_sql("rm")} AND {possessed_sql("o")} AND {visible_sql("r", path_sql("r"), "v.author", "v.prefix")}
        """,
        [report_id for report_id, _ in viewed], [v.author_id for _, v in viewed],
        [v.path_prefix for _, v in viewed],
    )
    return {(row["report_id"], row["other"]) for row in rows}


async def reports_using(conn: asyncpg.Connection, sha256: str) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT DISTINCT report_id FROM report_media WHERE sha256 = $1 AND role IN ('photo', 'before')", sha256
    )
    return [row["report_id"] for row in rows]


async def set_fingerprints(conn: asyncpg.Connection, *, sha256: str, dhash: int | None, thumbprint: bytes | None) -> None:
    await conn.execute("UPDATE media SET dhash = $2, thumbprint = $3 WHERE sha256 = $1", sha256, dhash, thumbprint)


def possible_duplicates_sql(author: str, prefix: str) -> str:
    """The read model's ``possible_duplicates`` as the caller may see them: a scalar subquery over
    ``r`` listing stored candidates that are not merged and that the caller may see, best first."""
    return f"""
    coalesce((SELECT array_agg(d.other ORDER BY d.score DESC, d.other) FROM (
        SELECT candidate_id AS other, score FROM report_duplicates WHERE report_id = r.id
        UNION ALL
        SELECT report_id, score FROM report_duplicates WHERE candidate_id = r.id
    ) d JOIN reports dr ON dr.id = d.other
    WHERE dr.status <> 'merged' AND {visible_sql("dr", path_sql("dr"), author, prefix)}), '{{}}')
"""


def has_duplicates_sql(author: str, prefix: str) -> str:
    """The list filter ``has_duplicates``: ``possible_duplicates`` is not empty for this caller."""
    return f"""EXISTS (
        SELECT 1 FROM (
            SELECT candidate_id AS other FROM report_duplicates WHERE report_id = r.id
            UNION ALL
            SELECT report_id FROM report_duplicates WHERE candidate_id = r.id
        ) d JOIN reports dr ON dr.id = d.other
        WHERE dr.status <> 'merged' AND {visible_sql("dr", path_sql("dr"), author, prefix)})"""
