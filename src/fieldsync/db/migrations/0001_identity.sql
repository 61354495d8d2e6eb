-- Reference data and identity: jurisdictions, categories, users, sessions, devices, enrollments.

CREATE TABLE jurisdictions (
    code text CONSTRAINT jurisdictions_pkey PRIMARY KEY,
    parent_code text CONSTRAINT jurisdictions_parent_fkey REFERENCES jurisdictions (code),
    name_zh text NOT NULL,
    name_en text,
    level text NOT NULL,
    -- '/140000/140400/140431/': a node's subtree is every row whose path starts with its path.
    path text NOT NULL,
    CONSTRAINT jurisdictions_code_format CHECK (code ~ '^[0-9]{6}([0-9]{6})?$'),
    CONSTRAINT jurisdictions_level_check CHECK (level IN ('province', 'city', 'county', 'township')),
    CONSTRAINT jurisdictions_path_check CHECK (path LIKE '%/' || code || '/')
);
CREATE INDEX jurisdictions_path_idx ON jurisdictions (path text_pattern_ops);
CREATE INDEX jurisdictions_parent_idx ON jurisdictions (parent_code);

CREATE TABLE categories (
    kind text NOT NULL,
    code text NOT NULL,
    name_zh text NOT NULL,
    name_en text NOT NULL,
    sort_order integer NOT NULL DEFAULT 0,
    CONSTRAINT categories_pkey PRIMARY KEY (kind, code),
    CONSTRAINT categories_kind_check CHECK (kind IN ('hazard', 'disaster', 'accident'))
);

CREATE TABLE users (
    id uuid CONSTRAINT users_pkey PRIMARY KEY DEFAULT gen_random_uuid(),
    username text NOT NULL,
    display_name text,
    role text NOT NULL,
    jurisdiction text NOT NULL CONSTRAINT users_jurisdiction_fkey REFERENCES jurisdictions (code),
    password_hash text,
    created_by uuid CONSTRAINT users_created_by_fkey REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    CONSTRAINT users_role_check CHECK (role IN ('admin', 'supervisor', 'inspector')),
    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$')
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE INDEX users_jurisdiction_idx ON users (jurisdiction);

-- Login sessions of users. Only the SHA-256 of a token is stored.
CREATE TABLE sessions (
    token_hash bytea CONSTRAINT sessions_pkey PRIMARY KEY,
    user_id uuid NOT NULL CONSTRAINT sessions_user_fkey REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Devices act for one inspector user; their tokens live until the device is revoked.
CREATE TABLE devices (
    id uuid CONSTRAINT devices_pkey PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL CONSTRAINT devices_user_fkey REFERENCES users (id),
    label text NOT NULL,
    platform text,
    token_hash bytea NOT NULL CONSTRAINT devices_token_hash_key UNIQUE,
    enrolled_by uuid CONSTRAINT devices_enrolled_by_fkey REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz,
    revoked_at timestamptz,
    revoked_by uuid CONSTRAINT devices_revoked_by_fkey REFERENCES users (id)
);
CREATE INDEX devices_user_idx ON devices (user_id);

-- One-time codes a supervisor issues so that an inspector's device can enroll.
CREATE TABLE enrollments (
    code_hash bytea CONSTRAINT enrollments_pkey PRIMARY KEY,
    user_id uuid NOT NULL CONSTRAINT enrollments_user_fkey REFERENCES users (id),
    created_by uuid NOT NULL CONSTRAINT enrollments_created_by_fkey REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    device_id uuid CONSTRAINT enrollments_device_fkey REFERENCES devices (id),
    CONSTRAINT enrollments_used_check CHECK ((used_at IS NULL) = (device_id IS NULL))
);

-- Failed password and enrollment-code attempts, counted per key inside a sliding window.
CREATE TABLE auth_failures (
    scope text NOT NULL,
    key text NOT NULL,
    failures integer NOT NULL,
    window_started_at timestamptz NOT NULL,
    CONSTRAINT auth_failures_pkey PRIMARY KEY (scope, key)
);
