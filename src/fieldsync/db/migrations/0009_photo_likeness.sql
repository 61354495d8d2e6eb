-- Near-duplicate scoring compares photos by a 32×32 greyscale thumbnail (``imaging.likeness``):
-- the dHash bands stay the index that finds similar photos; the thumbprint scores what was found.
-- NULL until computed (photos stored before this migration, documents, HEIC without a decoder):
-- such a photo gives no photo evidence either way.
ALTER TABLE media ADD COLUMN thumbprint bytea
    CONSTRAINT media_thumbprint_size_check CHECK (thumbprint IS NULL OR octet_length(thumbprint) = 1024);

-- The space-time window probe: GiST splits pages mostly on its first column, and with the
-- category first (a few dozen values) a probe at a million reports read four times the pages it
-- read at ten thousand. With the point first, pages are spatial and the probe stays local.
DROP INDEX reports_dedupe_window_idx;
CREATE INDEX reports_dedupe_window_idx ON reports USING gist (point(lon, lat), observed_at, category);

-- Photos stored before this migration: a background job each (``services.media``
-- ``run_one_fingerprint_job``) computes their dHash and thumbprint from the stored original and
-- runs near-duplicate detection for the reports that use them.
INSERT INTO jobs (kind, key, run_after, created_at)
SELECT 'fingerprint', sha256, now(), now() FROM media
WHERE content_type LIKE 'image/%' AND (dhash IS NULL OR thumbprint IS NULL)
ON CONFLICT ON CONSTRAINT jobs_kind_key DO NOTHING;
