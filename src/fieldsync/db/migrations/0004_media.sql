-- Media: one row per sha256 (content-addressed; the object store holds one object per row),
-- the uploaders who may fetch it without a report, and a durable job queue for derivatives.

CREATE TABLE media (
    sha256 text CONSTRAINT media_pkey PRIMARY KEY,
    bytes bigint NOT NULL,
    content_type text NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    taken_at timestamptz,
    taken_at_local timestamp,
    lat double precision,
    lon double precision,
    make text,
    model text,
    created_at timestamptz NOT NULL,
    derivatives_at timestamptz,
    CONSTRAINT media_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT media_bytes_check CHECK (bytes > 0)
);

CREATE TABLE media_uploads (
    sha256 text NOT NULL CONSTRAINT media_uploads_media_fkey REFERENCES media (sha256) ON DELETE CASCADE,
    user_id uuid NOT NULL CONSTRAINT media_uploads_user_fkey REFERENCES users (id),
    device_id uuid CONSTRAINT media_uploads_device_fkey REFERENCES devices (id),
    uploaded_at timestamptz NOT NULL,
    CONSTRAINT media_uploads_pkey PRIMARY KEY (sha256, user_id)
);

-- Background jobs (derivative generation, ...), claimed with FOR UPDATE SKIP LOCKED. A job whose
-- worker died is claimed again once its lease has run out, so a crash is repaired on restart.
CREATE TABLE jobs (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT jobs_pkey PRIMARY KEY,
    kind text NOT NULL,
    key text NOT NULL,
    run_after timestamptz NOT NULL,
    leased_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL,
    CONSTRAINT jobs_kind_key UNIQUE (kind, key)
);
CREATE INDEX jobs_due_idx ON jobs (run_after);
