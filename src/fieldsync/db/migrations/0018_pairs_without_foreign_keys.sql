-- Near-duplicate pairs name their reports without foreign keys (decisions/0024). A foreign key
-- check takes a key-share lock on the referenced report: storing a pair waited for any
-- transaction holding the report for update (a revision, a review transition), which could itself
-- be waiting for the search's claim on that report's queued search, a deadlock; and in a dense
-- cell (one big mine) the two checks per pair were half of what storing it cost. Nothing they
-- guarded can happen: pairs are written only from report ids the search read in the same
-- transaction, and a report is never deleted (its versions and audit events reference it).
ALTER TABLE report_duplicates DROP CONSTRAINT report_duplicates_report_fkey;
ALTER TABLE report_duplicates DROP CONSTRAINT report_duplicates_candidate_fkey;
