-- Resumable (tus 1.0.0) uploads: one row per upload, owned by the user who created it. The bytes
-- received so far live in <data_dir>/uploads/<id>.part; upload_offset counts only bytes that were
-- fsynced there. A finished upload keeps its row (completed_at set, offset = length, no file) until
-- it expires, so a client whose last PATCH answer was lost can still HEAD it and see it complete.

CREATE TABLE uploads (
    id uuid CONSTRAINT uploads_pkey PRIMARY KEY,
    user_id uuid NOT NULL CONSTRAINT uploads_user_fkey REFERENCES users (id) ON DELETE CASCADE,
    device_id uuid CONSTRAINT uploads_device_fkey REFERENCES devices (id) ON DELETE SET NULL,
    upload_length bigint NOT NULL,
    upload_offset bigint NOT NULL DEFAULT 0,
    metadata text NOT NULL,
    sha256 text NOT NULL,
    content_type text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    completed_at timestamptz,
    CONSTRAINT uploads_length_check CHECK (upload_length >= 0),
    CONSTRAINT uploads_offset_check CHECK (upload_offset >= 0 AND upload_offset <= upload_length),
    CONSTRAINT uploads_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT uploads_completed_check CHECK (completed_at IS NULL OR upload_offset = upload_length)
);

CREATE INDEX uploads_expires_at_idx ON uploads (expires_at);
CREATE INDEX uploads_user_idx ON uploads (user_id);
