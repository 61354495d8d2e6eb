-- Near-duplicate scoring compares photos by a 32×32 greyscale thumbnail (``imaging.likeness``):
-- the dHash bands stay the index that finds similar photos; the thumbprint scores what was found.
-- NULL until computed (photos stored before this migration, documents, HEIC without a decoder):
-- such a photo gives no photo evidence either way.
ALTER TABLE media ADD COLUMN thumbprint bytea
    CONSTRAINT media_thumbprint_size_check CHECK (thumbprint IS NULL OR octet_length(thumbprint) = 1024);

-- The space-time window probe. GiST splits pages mostly on its first column: with the category
-- first (a few dozen values) a probe at a million reports read four times the pages it read at
-- ten thousand; with a plain point first, a flood's 10 km window waded through every other
-- category's reports in that square. So each (kind, category) gets a longitude band of its own:
-- the point is shifted by 360° × a slot from md5 (stable across PostgreSQL versions, unlike
-- hashtext), and one R-tree keeps categories apart and places local. Two categories that share
-- a slot only share pages; the query still compares kind and category.
CREATE FUNCTION dedupe_band(kind text, category text) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ('x' || substr(md5(kind || ':' || category), 1, 3))::bit(12)::integer * 360.0;
DROP INDEX reports_dedupe_window_idx;
CREATE INDEX reports_dedupe_window_idx ON reports
    USING gist (point(lon + dedupe_band(kind, category), lat), observed_at);

-- Photos stored before this migration: a background job each (``services.media``
-- ``run_one_fingerprint_job``) computes their dHash and thumbprint from the stored original and
-- runs near-duplicate detection for the reports that use them.
INSERT INTO jobs (kind, key, run_after, created_at)
SELECT 'fingerprint', sha256, now(), now() FROM media
WHERE content_type LIKE 'image/%' AND (dhash IS NULL OR thumbprint IS NULL)
ON CONFLICT ON CONSTRAINT jobs_kind_key DO NOTHING;
