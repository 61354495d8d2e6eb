-- reports_credit_code_idx (credit_code) is a prefix of reports_credit_category_idx
-- (credit_code, category), which answers every lookup by credit code as well; each insert and
-- each non-HOT update of a report (a sync restamp) maintained both (issue 12, ingest cost).
DROP INDEX IF EXISTS reports_credit_code_idx;
