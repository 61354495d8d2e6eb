-- The sync feed. Every change to a report stamps the row with the writing transaction's id
-- (xid8); a pull returns the rows whose stamp is visible in the current snapshot but was not
-- visible in the previous pull's snapshot. Transactions that took their place early but commit
-- late are therefore never skipped: visibility, not a sequence number, decides.

ALTER TABLE reports ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX reports_change_idx ON reports (change_xid, id);

-- A report that moves to another jurisdiction leaves the view of supervisors of the old one:
-- the move is kept so that their next pull can say {id, deleted: true}.
CREATE TABLE report_moves (
    report_id uuid NOT NULL CONSTRAINT report_moves_report_fkey REFERENCES reports (id),
    from_jurisdiction text NOT NULL CONSTRAINT report_moves_jurisdiction_fkey REFERENCES jurisdictions (code),
    change_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    moved_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX report_moves_change_idx ON report_moves (change_xid, report_id);

CREATE FUNCTION reports_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    IF NEW.jurisdiction IS DISTINCT FROM OLD.jurisdiction THEN
        INSERT INTO report_moves (report_id, from_jurisdiction) VALUES (OLD.id, OLD.jurisdiction);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER reports_stamp_change BEFORE UPDATE ON reports
    FOR EACH ROW EXECUTE FUNCTION reports_stamp_change();

-- The first result of every pushed mutation, so that a replay answers it again.
CREATE TABLE sync_mutations (
    user_id uuid NOT NULL CONSTRAINT sync_mutations_user_fkey REFERENCES users (id),
    mutation_id uuid NOT NULL,
    result jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT sync_mutations_pkey PRIMARY KEY (user_id, mutation_id)
);
