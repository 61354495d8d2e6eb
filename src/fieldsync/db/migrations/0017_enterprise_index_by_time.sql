-- Near-duplicate search by enterprise (issue 12, ingest cost). reports_credit_code_idx
-- (credit_code) was a prefix of reports_credit_category_idx and answered nothing the other could
-- not, while every insert and restamp of a report maintained both. The enterprise signal now takes
-- the reports nearest in time before and after a report (an ordered range scan each way), so the
-- composite index gains observed_at: in a dense cell (one big mine) the search reads ten rows each
-- way, not every report the enterprise ever had.
DROP INDEX IF EXISTS reports_credit_code_idx;
DROP INDEX IF EXISTS reports_credit_category_idx;
CREATE INDEX reports_credit_category_idx ON reports (credit_code, category, observed_at)
    WHERE credit_code IS NOT NULL;
