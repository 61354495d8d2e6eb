-- Reports: one row per client-generated id (the idempotency key), every version kept.

CREATE TABLE reports (
    id uuid CONSTRAINT reports_pkey PRIMARY KEY,
    kind text NOT NULL,
    category text NOT NULL,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    jurisdiction text NOT NULL CONSTRAINT reports_jurisdiction_fkey REFERENCES jurisdictions (code),
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    accuracy_m double precision,
    observed_at timestamptz NOT NULL,
    severity text,
    -- kind-specific projections, for filters and duplicate detection
    grade text,
    credit_code text,
    incident_id uuid,
    stage text,
    -- the canonical content as the client sent it (without id and base_version) and its hash
    body jsonb NOT NULL,
    content_hash bytea NOT NULL,
    author_id uuid NOT NULL CONSTRAINT reports_author_fkey REFERENCES users (id),
    device_id uuid CONSTRAINT reports_device_fkey REFERENCES devices (id),
    received_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version integer NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'submitted',
    duplicate_of uuid CONSTRAINT reports_duplicate_of_fkey REFERENCES reports (id),
    CONSTRAINT reports_kind_check CHECK (kind IN ('hazard', 'disaster', 'accident')),
    CONSTRAINT reports_category_fkey FOREIGN KEY (kind, category) REFERENCES categories (kind, code),
    CONSTRAINT reports_lat_check CHECK (lat BETWEEN -90 AND 90),
    CONSTRAINT reports_lon_check CHECK (lon BETWEEN -180 AND 180),
    CONSTRAINT reports_severity_check CHECK (severity IN ('red', 'orange', 'yellow', 'blue')),
    CONSTRAINT reports_grade_check CHECK (grade IN ('general', 'major')),
    CONSTRAINT reports_stage_check CHECK (stage IN ('initial', 'update', 'final')),
    CONSTRAINT reports_version_check CHECK (version >= 1),
    CONSTRAINT reports_status_check CHECK (
        status IN ('submitted', 'needs_info', 'verified', 'rejected', 'merged',
                   'rectifying', 'rectified', 'closed')
    )
);
CREATE INDEX reports_author_idx ON reports (author_id, updated_at);
CREATE INDEX reports_jurisdiction_idx ON reports (jurisdiction, updated_at);
CREATE INDEX reports_incident_idx ON reports (incident_id) WHERE incident_id IS NOT NULL;
CREATE INDEX reports_credit_code_idx ON reports (credit_code) WHERE credit_code IS NOT NULL;

-- Every accepted version of every report, for evidence and for recognising late replays.
CREATE TABLE report_versions (
    report_id uuid NOT NULL CONSTRAINT report_versions_report_fkey REFERENCES reports (id),
    version integer NOT NULL,
    body jsonb NOT NULL,
    content_hash bytea NOT NULL,
    author_id uuid NOT NULL CONSTRAINT report_versions_author_fkey REFERENCES users (id),
    device_id uuid CONSTRAINT report_versions_device_fkey REFERENCES devices (id),
    created_at timestamptz NOT NULL,
    CONSTRAINT report_versions_pkey PRIMARY KEY (report_id, version)
);
CREATE INDEX report_versions_hash_idx ON report_versions (report_id, content_hash);

-- The photos a report's current version references. A photo may arrive before or after its
-- report; there is deliberately no foreign key to media.
CREATE TABLE report_media (
    report_id uuid NOT NULL CONSTRAINT report_media_report_fkey REFERENCES reports (id),
    position integer NOT NULL,
    sha256 text NOT NULL,
    role text NOT NULL,
    caption text,
    CONSTRAINT report_media_pkey PRIMARY KEY (report_id, position),
    CONSTRAINT report_media_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT report_media_role_check CHECK (role IN ('photo', 'before', 'after', 'document'))
);
CREATE INDEX report_media_sha256_idx ON report_media (sha256);
