-- The schema the migrations build, normalised (scripts/snapshot_schema.py writes this file).
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE FUNCTION public.dedupe_band(kind text, category text) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ((((('x'::text || substr(md5(((kind || ':'::text) || category)), 1, 3)))::bit(12))::integer)::numeric * 360.0);
CREATE FUNCTION public.events_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on events is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE FUNCTION public.reports_stamp_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    IF NEW.jurisdiction IS DISTINCT FROM OLD.jurisdiction THEN
        INSERT INTO report_moves (report_id, from_jurisdiction) VALUES (OLD.id, OLD.jurisdiction);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TABLE public.audit_heads (
    chain text NOT NULL,
    length integer NOT NULL,
    head_hash bytea NOT NULL
);
CREATE TABLE public.auth_failures (
    scope text NOT NULL,
    key text NOT NULL,
    failures integer NOT NULL,
    window_started_at timestamp with time zone NOT NULL
);
CREATE TABLE public.categories (
    kind text NOT NULL,
    code text NOT NULL,
    name_zh text NOT NULL,
    name_en text NOT NULL,
    sort_order integer DEFAULT 0 NOT NULL,
    CONSTRAINT categories_kind_check CHECK ((kind = ANY (ARRAY['hazard'::text, 'disaster'::text, 'accident'::text])))
);
CREATE TABLE public.comments (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    report_id uuid NOT NULL,
    author_id uuid NOT NULL,
    device_id uuid,
    body text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    CONSTRAINT comments_body_check CHECK (((length(body) >= 1) AND (length(body) <= 20000)))
);
CREATE TABLE public.devices (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    label text NOT NULL,
    platform text,
    token_hash bytea NOT NULL,
    enrolled_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    last_seen_at timestamp with time zone,
    revoked_at timestamp with time zone,
    revoked_by uuid
);
CREATE TABLE public.enrollments (
    code_hash bytea NOT NULL,
    user_id uuid NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    used_at timestamp with time zone,
    device_id uuid,
    CONSTRAINT enrollments_used_check CHECK (((used_at IS NULL) = (device_id IS NULL)))
);
CREATE TABLE public.events (
    id bigint NOT NULL,
    chain text NOT NULL,
    "position" integer NOT NULL,
    report_id uuid,
    actor_id uuid,
    device_id uuid,
    action text NOT NULL,
    from_status text,
    to_status text,
    version integer,
    detail text DEFAULT '{}'::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    prev_hash bytea NOT NULL,
    row_hash bytea NOT NULL
);
ALTER TABLE public.events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);
CREATE TABLE public.jobs (
    id bigint NOT NULL,
    kind text NOT NULL,
    key text NOT NULL,
    run_after timestamp with time zone NOT NULL,
    leased_until timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    created_at timestamp with time zone NOT NULL
);
ALTER TABLE public.jobs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);
CREATE TABLE public.jurisdictions (
    code text NOT NULL,
    parent_code text,
    name_zh text NOT NULL,
    name_en text,
    level text NOT NULL,
    path text NOT NULL,
    CONSTRAINT jurisdictions_code_format CHECK ((code ~ '^[0-9]{6}([0-9]{6})?$'::text)),
    CONSTRAINT jurisdictions_level_check CHECK ((level = ANY (ARRAY['province'::text, 'city'::text, 'county'::text, 'township'::text]))),
    CONSTRAINT jurisdictions_path_check CHECK ((path ~~ (('%/'::text || code) || '/'::text)))
);
CREATE TABLE public.media (
    sha256 text NOT NULL,
    bytes bigint NOT NULL,
    content_type text NOT NULL,
    width integer NOT NULL,
    height integer NOT NULL,
    taken_at timestamp with time zone,
    taken_at_local timestamp without time zone,
    lat double precision,
    lon double precision,
    make text,
    model text,
    created_at timestamp with time zone NOT NULL,
    derivatives_at timestamp with time zone,
    dhash bigint,
    thumbprint bytea,
    touched_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT media_bytes_check CHECK ((bytes > 0)),
    CONSTRAINT media_sha256_format CHECK ((sha256 ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT media_thumbprint_size_check CHECK (((thumbprint IS NULL) OR (octet_length(thumbprint) = 1024)))
);
CREATE TABLE public.media_uploads (
    sha256 text NOT NULL,
    user_id uuid NOT NULL,
    device_id uuid,
    uploaded_at timestamp with time zone NOT NULL
);
CREATE TABLE public.openrosa_attachments (
    instance_id uuid NOT NULL,
    filename text NOT NULL,
    sha256 text NOT NULL,
    received_at timestamp with time zone NOT NULL,
    CONSTRAINT openrosa_attachments_sha256_format CHECK ((sha256 ~ '^[0-9a-f]{64}$'::text))
);
CREATE TABLE public.openrosa_instances (
    instance_id uuid NOT NULL,
    form_id text NOT NULL,
    report_id uuid NOT NULL,
    deprecated_id uuid,
    user_id uuid NOT NULL,
    device_id uuid,
    xml_sha256 bytea NOT NULL,
    received_at timestamp with time zone NOT NULL,
    report_version integer,
    content_hash bytea,
    completed_at timestamp with time zone,
    CONSTRAINT openrosa_instances_completed_check CHECK (((report_version IS NULL) = (completed_at IS NULL))),
    CONSTRAINT openrosa_instances_form_check CHECK ((form_id ~ '^[a-z][a-z0-9_]{0,63}$'::text))
);
CREATE TABLE public.report_duplicates (
    report_id uuid NOT NULL,
    candidate_id uuid NOT NULL,
    score real NOT NULL,
    reasons jsonb NOT NULL,
    found_at timestamp with time zone NOT NULL,
    CONSTRAINT report_duplicates_not_self CHECK ((report_id <> candidate_id)),
    CONSTRAINT report_duplicates_reasons_check CHECK ((jsonb_typeof(reasons) = 'array'::text)),
    CONSTRAINT report_duplicates_score_check CHECK (((score >= (0)::double precision) AND (score <= (1)::double precision)))
);
CREATE TABLE public.report_media (
    report_id uuid NOT NULL,
    "position" integer NOT NULL,
    sha256 text NOT NULL,
    role text NOT NULL,
    caption text,
    attached_by uuid NOT NULL,
    CONSTRAINT report_media_role_check CHECK ((role = ANY (ARRAY['photo'::text, 'before'::text, 'after'::text, 'document'::text]))),
    CONSTRAINT report_media_sha256_format CHECK ((sha256 ~ '^[0-9a-f]{64}$'::text))
);
CREATE TABLE public.report_moves (
    report_id uuid NOT NULL,
    from_jurisdiction text NOT NULL,
    change_xid xid8 DEFAULT pg_current_xact_id() NOT NULL,
    moved_at timestamp with time zone DEFAULT now() NOT NULL
);
CREATE TABLE public.report_versions (
    report_id uuid NOT NULL,
    version integer NOT NULL,
    body jsonb NOT NULL,
    content_hash bytea NOT NULL,
    author_id uuid NOT NULL,
    device_id uuid,
    created_at timestamp with time zone NOT NULL
);
CREATE TABLE public.reports (
    id uuid NOT NULL,
    kind text NOT NULL,
    category text NOT NULL,
    title text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    jurisdiction text NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    accuracy_m double precision,
    observed_at timestamp with time zone NOT NULL,
    severity text,
    grade text,
    credit_code text,
    incident_id uuid,
    stage text,
    body jsonb NOT NULL,
    content_hash bytea NOT NULL,
    author_id uuid NOT NULL,
    device_id uuid,
    received_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    version integer DEFAULT 1 NOT NULL,
    status text DEFAULT 'submitted'::text NOT NULL,
    duplicate_of uuid,
    change_xid xid8 DEFAULT pg_current_xact_id() NOT NULL,
    verified_at timestamp with time zone,
    rectification jsonb,
    rectification_deadline timestamp with time zone,
    rectified_at timestamp with time zone,
    rectification_note text,
    closed_at timestamp with time zone,
    listed_level text,
    listed_deadline timestamp with time zone,
    CONSTRAINT reports_grade_check CHECK ((grade = ANY (ARRAY['general'::text, 'major'::text]))),
    CONSTRAINT reports_kind_check CHECK ((kind = ANY (ARRAY['hazard'::text, 'disaster'::text, 'accident'::text]))),
    CONSTRAINT reports_lat_check CHECK (((lat >= ('-90'::integer)::double precision) AND (lat <= (90)::double precision))),
    CONSTRAINT reports_listing_check CHECK (((listed_level IS NULL) = (listed_deadline IS NULL))),
    CONSTRAINT reports_lon_check CHECK (((lon >= ('-180'::integer)::double precision) AND (lon <= (180)::double precision))),
    CONSTRAINT reports_merge_check CHECK (((status = 'merged'::text) = (duplicate_of IS NOT NULL))),
    CONSTRAINT reports_not_own_duplicate CHECK ((duplicate_of <> id)),
    CONSTRAINT reports_severity_check CHECK ((severity = ANY (ARRAY['red'::text, 'orange'::text, 'yellow'::text, 'blue'::text]))),
    CONSTRAINT reports_stage_check CHECK ((stage = ANY (ARRAY['initial'::text, 'update'::text, 'final'::text]))),
    CONSTRAINT reports_status_check CHECK ((status = ANY (ARRAY['submitted'::text, 'needs_info'::text, 'verified'::text, 'rejected'::text, 'merged'::text, 'rectifying'::text, 'rectified'::text, 'closed'::text]))),
    CONSTRAINT reports_version_check CHECK ((version >= 1))
);
CREATE TABLE public.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);
CREATE TABLE public.sessions (
    token_hash bytea NOT NULL,
    user_id uuid NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);
CREATE TABLE public.sync_feed (
    singleton boolean DEFAULT true NOT NULL,
    epoch uuid NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT sync_feed_singleton CHECK (singleton)
);
CREATE TABLE public.sync_mutations (
    user_id uuid NOT NULL,
    mutation_id uuid NOT NULL,
    result jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL
);
CREATE TABLE public.uploads (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    device_id uuid,
    upload_length bigint NOT NULL,
    upload_offset bigint DEFAULT 0 NOT NULL,
    metadata text NOT NULL,
    sha256 text NOT NULL,
    content_type text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    completed_at timestamp with time zone,
    lease_token uuid,
    lease_until timestamp with time zone,
    parts_allocated integer DEFAULT 0 NOT NULL,
    multipart_key text,
    multipart_id text,
    segments jsonb DEFAULT '[]'::jsonb NOT NULL,
    CONSTRAINT uploads_completed_check CHECK (((completed_at IS NULL) OR (upload_offset = upload_length))),
    CONSTRAINT uploads_lease_check CHECK (((lease_token IS NULL) = (lease_until IS NULL))),
    CONSTRAINT uploads_length_check CHECK ((upload_length >= 0)),
    CONSTRAINT uploads_multipart_check CHECK (((multipart_key IS NULL) = (multipart_id IS NULL))),
    CONSTRAINT uploads_offset_check CHECK (((upload_offset >= 0) AND (upload_offset <= upload_length))),
    CONSTRAINT uploads_parts_allocated_check CHECK (((parts_allocated >= 0) AND (parts_allocated <= 10000))),
    CONSTRAINT uploads_segments_check CHECK ((jsonb_typeof(segments) = 'array'::text)),
    CONSTRAINT uploads_sha256_format CHECK ((sha256 ~ '^[0-9a-f]{64}$'::text))
);
CREATE TABLE public.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    username text NOT NULL,
    display_name text,
    role text NOT NULL,
    jurisdiction text NOT NULL,
    password_hash text,
    created_by uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    disabled_at timestamp with time zone,
    CONSTRAINT users_role_check CHECK ((role = ANY (ARRAY['admin'::text, 'supervisor'::text, 'inspector'::text]))),
    CONSTRAINT users_username_format CHECK ((username ~ '^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$'::text))
);
CREATE TABLE public.webhook_attempts (
    id bigint NOT NULL,
    delivery_id uuid NOT NULL,
    attempt integer NOT NULL,
    started_at timestamp with time zone NOT NULL,
    latency_ms integer NOT NULL,
    status_code integer,
    error text
);
ALTER TABLE public.webhook_attempts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.webhook_attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);
CREATE TABLE public.webhook_deliveries (
    id uuid NOT NULL,
    event_id uuid NOT NULL,
    subscription_id uuid NOT NULL,
    report_id uuid NOT NULL,
    seq bigint NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone NOT NULL,
    lease_token uuid,
    last_status integer,
    last_error text,
    created_at timestamp with time zone NOT NULL,
    delivered_at timestamp with time zone,
    dead_at timestamp with time zone,
    CONSTRAINT webhook_deliveries_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'delivered'::text, 'dead'::text])))
);
CREATE TABLE public.webhook_events (
    id uuid NOT NULL,
    seq bigint NOT NULL,
    type text NOT NULL,
    report_id uuid NOT NULL,
    jurisdiction_path text NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    data jsonb NOT NULL,
    dedupe_key text,
    created_at timestamp with time zone NOT NULL
);
ALTER TABLE public.webhook_events ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.webhook_events_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);
CREATE TABLE public.webhook_subscriptions (
    id uuid NOT NULL,
    url text NOT NULL,
    events text[] NOT NULL,
    jurisdiction text,
    jurisdiction_path text,
    secret text NOT NULL,
    created_by uuid,
    created_at timestamp with time zone NOT NULL,
    disabled_at timestamp with time zone,
    disabled_reason text,
    CONSTRAINT webhook_subscriptions_events_check CHECK (((cardinality(events) >= 1) AND (events <@ ARRAY['report.created'::text, 'report.updated'::text, 'report.status_changed'::text, 'report.merged'::text, 'incident.report_added'::text, 'incident.deadline_missed'::text, 'hazard.overdue'::text]))),
    CONSTRAINT webhook_subscriptions_path_check CHECK (((jurisdiction IS NULL) = (jurisdiction_path IS NULL))),
    CONSTRAINT webhook_subscriptions_url_check CHECK (((url ~ '^https?://'::text) AND (length(url) <= 2048)))
);
ALTER TABLE ONLY public.audit_heads
    ADD CONSTRAINT audit_heads_pkey PRIMARY KEY (chain);
ALTER TABLE ONLY public.auth_failures
    ADD CONSTRAINT auth_failures_pkey PRIMARY KEY (scope, key);
ALTER TABLE ONLY public.categories
    ADD CONSTRAINT categories_pkey PRIMARY KEY (kind, code);
ALTER TABLE ONLY public.comments
    ADD CONSTRAINT comments_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_token_hash_key UNIQUE (token_hash);
ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_pkey PRIMARY KEY (code_hash);
ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_chain_position_key UNIQUE (chain, "position");
ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_kind_key UNIQUE (kind, key);
ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.jurisdictions
    ADD CONSTRAINT jurisdictions_pkey PRIMARY KEY (code);
ALTER TABLE ONLY public.media
    ADD CONSTRAINT media_pkey PRIMARY KEY (sha256);
ALTER TABLE ONLY public.media_uploads
    ADD CONSTRAINT media_uploads_pkey PRIMARY KEY (sha256, user_id);
ALTER TABLE ONLY public.openrosa_attachments
    ADD CONSTRAINT openrosa_attachments_pkey PRIMARY KEY (instance_id, filename);
ALTER TABLE ONLY public.openrosa_instances
    ADD CONSTRAINT openrosa_instances_pkey PRIMARY KEY (instance_id);
ALTER TABLE ONLY public.report_duplicates
    ADD CONSTRAINT report_duplicates_pkey PRIMARY KEY (report_id, candidate_id);
ALTER TABLE ONLY public.report_media
    ADD CONSTRAINT report_media_pkey PRIMARY KEY (report_id, "position");
ALTER TABLE ONLY public.report_versions
    ADD CONSTRAINT report_versions_pkey PRIMARY KEY (report_id, version);
ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);
ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (token_hash);
ALTER TABLE ONLY public.sync_feed
    ADD CONSTRAINT sync_feed_pkey PRIMARY KEY (singleton);
ALTER TABLE ONLY public.sync_mutations
    ADD CONSTRAINT sync_mutations_pkey PRIMARY KEY (user_id, mutation_id);
ALTER TABLE ONLY public.uploads
    ADD CONSTRAINT uploads_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.webhook_attempts
    ADD CONSTRAINT webhook_attempts_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_event_subscription_key UNIQUE (event_id, subscription_id);
ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.webhook_events
    ADD CONSTRAINT webhook_events_dedupe_key UNIQUE (dedupe_key);
ALTER TABLE ONLY public.webhook_events
    ADD CONSTRAINT webhook_events_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.webhook_events
    ADD CONSTRAINT webhook_events_seq_key UNIQUE (seq);
ALTER TABLE ONLY public.webhook_subscriptions
    ADD CONSTRAINT webhook_subscriptions_pkey PRIMARY KEY (id);
CREATE INDEX comments_report_idx ON public.comments USING btree (report_id, created_at);
CREATE INDEX devices_user_idx ON public.devices USING btree (user_id);
CREATE INDEX events_report_idx ON public.events USING btree (report_id, id) WHERE (report_id IS NOT NULL);
CREATE INDEX jobs_due_idx ON public.jobs USING btree (run_after);
CREATE INDEX jurisdictions_parent_idx ON public.jurisdictions USING btree (parent_code);
CREATE INDEX jurisdictions_path_idx ON public.jurisdictions USING btree (path text_pattern_ops);
CREATE INDEX media_dhash_b0_idx ON public.media USING btree ((((dhash >> 48) & (65535)::bigint))) WHERE (dhash IS NOT NULL);
CREATE INDEX media_dhash_b1_idx ON public.media USING btree ((((dhash >> 32) & (65535)::bigint))) WHERE (dhash IS NOT NULL);
CREATE INDEX media_dhash_b2_idx ON public.media USING btree ((((dhash >> 16) & (65535)::bigint))) WHERE (dhash IS NOT NULL);
CREATE INDEX media_dhash_b3_idx ON public.media USING btree (((dhash & (65535)::bigint))) WHERE (dhash IS NOT NULL);
CREATE INDEX openrosa_instances_report_idx ON public.openrosa_instances USING btree (report_id);
CREATE INDEX report_duplicates_candidate_idx ON public.report_duplicates USING btree (candidate_id, report_id);
CREATE INDEX report_media_attached_idx ON public.report_media USING btree (sha256, attached_by);
CREATE INDEX report_media_sha256_idx ON public.report_media USING btree (sha256);
CREATE INDEX report_moves_change_idx ON public.report_moves USING btree (change_xid, report_id);
CREATE INDEX report_versions_hash_idx ON public.report_versions USING btree (report_id, content_hash);
CREATE INDEX reports_author_idx ON public.reports USING btree (author_id, updated_at);
CREATE INDEX reports_change_idx ON public.reports USING btree (change_xid, id);
CREATE INDEX reports_credit_category_idx ON public.reports USING btree (credit_code, category, observed_at) WHERE (credit_code IS NOT NULL);
CREATE INDEX reports_dedupe_window_idx ON public.reports USING gist (point((lon + public.dedupe_band(kind, category)), lat), observed_at);
CREATE INDEX reports_duplicate_of_idx ON public.reports USING btree (duplicate_of) WHERE (duplicate_of IS NOT NULL);
CREATE UNIQUE INDEX reports_incident_final_key ON public.reports USING btree (incident_id) WHERE ((stage = 'final'::text) AND (status <> 'merged'::text));
CREATE INDEX reports_incident_idx ON public.reports USING btree (incident_id) WHERE (incident_id IS NOT NULL);
CREATE UNIQUE INDEX reports_incident_initial_key ON public.reports USING btree (incident_id) WHERE ((stage = 'initial'::text) AND (status <> 'merged'::text));
CREATE INDEX reports_jurisdiction_idx ON public.reports USING btree (jurisdiction, updated_at);
CREATE INDEX reports_list_idx ON public.reports USING btree (updated_at DESC, id DESC);
CREATE INDEX reports_observed_idx ON public.reports USING btree (observed_at, id);
CREATE INDEX reports_overdue_idx ON public.reports USING btree (rectification_deadline) WHERE (status = 'rectifying'::text);
CREATE INDEX reports_point_idx ON public.reports USING gist (point(lon, lat));
CREATE INDEX reports_status_idx ON public.reports USING btree (status, updated_at);
CREATE INDEX reports_text_trgm_idx ON public.reports USING gin ((((title || ' '::text) || description)) public.gin_trgm_ops);
CREATE INDEX sessions_user_idx ON public.sessions USING btree (user_id);
CREATE INDEX uploads_expires_at_idx ON public.uploads USING btree (expires_at);
CREATE INDEX uploads_user_idx ON public.uploads USING btree (user_id);
CREATE INDEX users_jurisdiction_idx ON public.users USING btree (jurisdiction);
CREATE UNIQUE INDEX users_username_key ON public.users USING btree (lower(username));
CREATE INDEX webhook_attempts_delivery_idx ON public.webhook_attempts USING btree (delivery_id, id);
CREATE INDEX webhook_deliveries_due_idx ON public.webhook_deliveries USING btree (subscription_id, next_attempt_at, seq) WHERE (state = 'pending'::text);
CREATE INDEX webhook_deliveries_list_idx ON public.webhook_deliveries USING btree (subscription_id, seq DESC);
CREATE INDEX webhook_deliveries_order_idx ON public.webhook_deliveries USING btree (subscription_id, report_id, seq) WHERE (state = 'pending'::text);
CREATE INDEX webhook_events_created_idx ON public.webhook_events USING btree (created_at);
CREATE TRIGGER events_append_only BEFORE DELETE OR UPDATE ON public.events FOR EACH ROW EXECUTE FUNCTION public.events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON public.events FOR EACH STATEMENT EXECUTE FUNCTION public.events_append_only();
CREATE TRIGGER reports_stamp_change BEFORE UPDATE ON public.reports FOR EACH ROW EXECUTE FUNCTION public.reports_stamp_change();
ALTER TABLE ONLY public.comments
    ADD CONSTRAINT comments_author_fkey FOREIGN KEY (author_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.comments
    ADD CONSTRAINT comments_device_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id);
ALTER TABLE ONLY public.comments
    ADD CONSTRAINT comments_report_fkey FOREIGN KEY (report_id) REFERENCES public.reports(id);
ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_enrolled_by_fkey FOREIGN KEY (enrolled_by) REFERENCES public.users(id);
ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_revoked_by_fkey FOREIGN KEY (revoked_by) REFERENCES public.users(id);
ALTER TABLE ONLY public.devices
    ADD CONSTRAINT devices_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);
ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_device_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id);
ALTER TABLE ONLY public.enrollments
    ADD CONSTRAINT enrollments_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_actor_fkey FOREIGN KEY (actor_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_device_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id);
ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_report_fkey FOREIGN KEY (report_id) REFERENCES public.reports(id);
ALTER TABLE ONLY public.jurisdictions
    ADD CONSTRAINT jurisdictions_parent_fkey FOREIGN KEY (parent_code) REFERENCES public.jurisdictions(code);
ALTER TABLE ONLY public.media_uploads
    ADD CONSTRAINT media_uploads_device_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id);
ALTER TABLE ONLY public.media_uploads
    ADD CONSTRAINT media_uploads_media_fkey FOREIGN KEY (sha256) REFERENCES public.media(sha256) ON DELETE CASCADE;
ALTER TABLE ONLY public.media_uploads
    ADD CONSTRAINT media_uploads_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.openrosa_attachments
    ADD CONSTRAINT openrosa_attachments_instance_fkey FOREIGN KEY (instance_id) REFERENCES public.openrosa_instances(instance_id);
ALTER TABLE ONLY public.openrosa_instances
    ADD CONSTRAINT openrosa_instances_deprecated_fkey FOREIGN KEY (deprecated_id) REFERENCES public.openrosa_instances(instance_id);
ALTER TABLE ONLY public.openrosa_instances
    ADD CONSTRAINT openrosa_instances_device_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id);
ALTER TABLE ONLY public.openrosa_instances
    ADD CONSTRAINT openrosa_instances_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.report_media
    ADD CONSTRAINT report_media_attached_by_fkey FOREIGN KEY (attached_by) REFERENCES public.users(id);
ALTER TABLE ONLY public.report_media
    ADD CONSTRAINT report_media_report_fkey FOREIGN KEY (report_id) REFERENCES public.reports(id);
ALTER TABLE ONLY public.report_moves
    ADD CONSTRAINT report_moves_jurisdiction_fkey FOREIGN KEY (from_jurisdiction) REFERENCES public.jurisdictions(code);
ALTER TABLE ONLY public.report_moves
    ADD CONSTRAINT report_moves_report_fkey FOREIGN KEY (report_id) REFERENCES public.reports(id);
ALTER TABLE ONLY public.report_versions
    ADD CONSTRAINT report_versions_author_fkey FOREIGN KEY (author_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.report_versions
    ADD CONSTRAINT report_versions_device_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id);
ALTER TABLE ONLY public.report_versions
    ADD CONSTRAINT report_versions_report_fkey FOREIGN KEY (report_id) REFERENCES public.reports(id);
ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_author_fkey FOREIGN KEY (author_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_category_fkey FOREIGN KEY (kind, category) REFERENCES public.categories(kind, code);
ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_device_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id);
ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_duplicate_of_fkey FOREIGN KEY (duplicate_of) REFERENCES public.reports(id);
ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_jurisdiction_fkey FOREIGN KEY (jurisdiction) REFERENCES public.jurisdictions(code);
ALTER TABLE ONLY public.reports
    ADD CONSTRAINT reports_listed_level_fkey FOREIGN KEY (listed_level) REFERENCES public.jurisdictions(code);
ALTER TABLE ONLY public.sessions
    ADD CONSTRAINT sessions_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.sync_mutations
    ADD CONSTRAINT sync_mutations_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id);
ALTER TABLE ONLY public.uploads
    ADD CONSTRAINT uploads_device_fkey FOREIGN KEY (device_id) REFERENCES public.devices(id) ON DELETE SET NULL;
ALTER TABLE ONLY public.uploads
    ADD CONSTRAINT uploads_user_fkey FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE CASCADE;
ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);
ALTER TABLE ONLY public.users
    ADD CONSTRAINT users_jurisdiction_fkey FOREIGN KEY (jurisdiction) REFERENCES public.jurisdictions(code);
ALTER TABLE ONLY public.webhook_attempts
    ADD CONSTRAINT webhook_attempts_delivery_fkey FOREIGN KEY (delivery_id) REFERENCES public.webhook_deliveries(id) ON DELETE CASCADE;
ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_event_fkey FOREIGN KEY (event_id) REFERENCES public.webhook_events(id);
ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_subscription_fkey FOREIGN KEY (subscription_id) REFERENCES public.webhook_subscriptions(id) ON DELETE CASCADE;
ALTER TABLE ONLY public.webhook_events
    ADD CONSTRAINT webhook_events_report_fkey FOREIGN KEY (report_id) REFERENCES public.reports(id);
ALTER TABLE ONLY public.webhook_subscriptions
    ADD CONSTRAINT webhook_subscriptions_created_by_fkey FOREIGN KEY (created_by) REFERENCES public.users(id);
ALTER TABLE ONLY public.webhook_subscriptions
    ADD CONSTRAINT webhook_subscriptions_jurisdiction_fkey FOREIGN KEY (jurisdiction) REFERENCES public.jurisdictions(code);
