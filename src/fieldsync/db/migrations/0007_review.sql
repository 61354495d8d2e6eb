-- Review: the workflow's state on each report, comments, and the append-only, hash-chained
-- audit trail. Search and spatial indexes for the supervisors' list.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE reports
    ADD COLUMN verified_at timestamptz,
    -- assign_rectification: the five implementations (五落实) and the deadline
    ADD COLUMN rectification jsonb,
    ADD COLUMN rectification_deadline timestamptz,
    -- submit_rectification: the note and when; accept_rectification: when it was closed (销号)
    ADD COLUMN rectified_at timestamptz,
    ADD COLUMN rectification_note text,
    ADD COLUMN closed_at timestamptz,
    -- list_supervision (挂牌督办): the supervising bureau and its deadline
    ADD COLUMN listed_level text CONSTRAINT reports_listed_level_fkey REFERENCES jurisdictions (code),
    ADD COLUMN listed_deadline timestamptz,
    ADD CONSTRAINT reports_listing_check CHECK ((listed_level IS NULL) = (listed_deadline IS NULL)),
    ADD CONSTRAINT reports_merge_check CHECK ((status = 'merged') = (duplicate_of IS NOT NULL)),
    ADD CONSTRAINT reports_not_own_duplicate CHECK (duplicate_of <> id);

CREATE INDEX reports_status_idx ON reports (status, updated_at);
CREATE INDEX reports_overdue_idx ON reports (rectification_deadline) WHERE status = 'rectifying';
CREATE INDEX reports_observed_idx ON reports (observed_at, id);
CREATE INDEX reports_list_idx ON reports (updated_at DESC, id DESC);
CREATE INDEX reports_point_idx ON reports USING gist (point(lon, lat));
CREATE INDEX reports_text_trgm_idx ON reports USING gin ((title || ' ' || description) gin_trgm_ops);
CREATE INDEX reports_duplicate_of_idx ON reports (duplicate_of) WHERE duplicate_of IS NOT NULL;

CREATE TABLE comments (
    id uuid CONSTRAINT comments_pkey PRIMARY KEY DEFAULT gen_random_uuid(),
    report_id uuid NOT NULL CONSTRAINT comments_report_fkey REFERENCES reports (id),
    author_id uuid NOT NULL CONSTRAINT comments_author_fkey REFERENCES users (id),
    device_id uuid CONSTRAINT comments_device_fkey REFERENCES devices (id),
    body text NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT comments_body_check CHECK (length(body) BETWEEN 1 AND 20000)
);
CREATE INDEX comments_report_idx ON comments (report_id, created_at);

-- The audit trail. Events form hash chains, one per subject (a report, or a photo for media
-- access): each row carries the hash of its chain's previous row, and audit_heads holds each
-- chain's last hash and length, so an edit, a deletion in the middle or at the end is detected.
-- One chain per subject keeps writers of different reports from serialising on a global lock.
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT events_pkey PRIMARY KEY,
    chain text NOT NULL,
    position integer NOT NULL,
    report_id uuid CONSTRAINT events_report_fkey REFERENCES reports (id),
    actor_id uuid CONSTRAINT events_actor_fkey REFERENCES users (id),
    device_id uuid CONSTRAINT events_device_fkey REFERENCES devices (id),
    action text NOT NULL,
    from_status text,
    to_status text,
    version integer,
    -- canonical JSON text, hashed verbatim (jsonb would renormalise numbers and break the hash)
    detail text NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    prev_hash bytea NOT NULL,
    row_hash bytea NOT NULL,
    CONSTRAINT events_chain_position_key UNIQUE (chain, position)
);
CREATE INDEX events_report_idx ON events (report_id, id) WHERE report_id IS NOT NULL;

CREATE TABLE audit_heads (
    chain text CONSTRAINT audit_heads_pkey PRIMARY KEY,
    length integer NOT NULL,
    head_hash bytea NOT NULL
);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on events is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

-- A disaster's chain has exactly one initial report (初报) and at most one final one (核报).
CREATE UNIQUE INDEX reports_incident_initial_key ON reports (incident_id)
    WHERE stage = 'initial' AND status <> 'merged';
CREATE UNIQUE INDEX reports_incident_final_key ON reports (incident_id)
    WHERE stage = 'final' AND status <> 'merged';
