-- Near-duplicate detection: a perceptual hash per photo, the candidate pairs found at ingest, and
-- the indexes that keep a candidate search flat as the table grows (docs/DEDUPE.md).

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- 64-bit difference hash (dHash) of the decoded photo, NULL until computed (documents, HEIC
-- without a decoder). Four 16-bit bands, each an expression index: two photos within a small
-- Hamming distance share at least one band exactly in the common case (pigeonhole for d <= 3,
-- and measured beyond that), so a lookup reads four index ranges instead of the table.
ALTER TABLE media ADD COLUMN dhash bigint;
CREATE INDEX media_dhash_b0_idx ON media (((dhash >> 48) & 65535)) WHERE dhash IS NOT NULL;
CREATE INDEX media_dhash_b1_idx ON media (((dhash >> 32) & 65535)) WHERE dhash IS NOT NULL;
CREATE INDEX media_dhash_b2_idx ON media (((dhash >> 16) & 65535)) WHERE dhash IS NOT NULL;
CREATE INDEX media_dhash_b3_idx ON media ((dhash & 65535)) WHERE dhash IS NOT NULL;

-- Same kind and category near in space and time: one GiST over (category, observed_at, point),
-- so the window query narrows on all three at once (btree_gist supplies the scalar columns).
CREATE INDEX reports_dedupe_window_idx ON reports USING gist (category, observed_at, point(lon, lat));
CREATE INDEX reports_credit_category_idx ON reports (credit_code, category) WHERE credit_code IS NOT NULL;

-- One row per unordered pair, stored as (newer report, older candidate) when found; read in both
-- directions. Only pairs at or above the threshold in force when found are kept; a recomputation
-- (a photo arriving later, a revision) replaces the pair's score and reasons.
CREATE TABLE report_duplicates (
    report_id uuid NOT NULL CONSTRAINT report_duplicates_report_fkey REFERENCES reports (id),
    candidate_id uuid NOT NULL CONSTRAINT report_duplicates_candidate_fkey REFERENCES reports (id),
    score real NOT NULL,
    reasons jsonb NOT NULL,
    found_at timestamptz NOT NULL,
    CONSTRAINT report_duplicates_pkey PRIMARY KEY (report_id, candidate_id),
    CONSTRAINT report_duplicates_not_self CHECK (report_id <> candidate_id),
    CONSTRAINT report_duplicates_score_check CHECK (score >= 0 AND score <= 1),
    CONSTRAINT report_duplicates_reasons_check CHECK (jsonb_typeof(reasons) = 'array')
);
CREATE INDEX report_duplicates_candidate_idx ON report_duplicates (candidate_id, report_id);
