-- Webhooks (SPEC §9): admins' subscriptions, a transactional outbox of events about reports, and
-- one delivery per (event, subscription) with every attempt kept.
--
-- The event row and its deliveries are written by the statement that records the change, in the
-- change's transaction: a rolled-back change leaves nothing to send. Workers pick deliveries by
-- state and due time (never "id > last seen": identities are handed out before commit).

CREATE TABLE webhook_subscriptions (
    id uuid CONSTRAINT webhook_subscriptions_pkey PRIMARY KEY,
    url text NOT NULL,
    events text[] NOT NULL,
    -- NULL: every jurisdiction; otherwise the subtree under this code (its path, for LIKE prefix)
    jurisdiction text CONSTRAINT webhook_subscriptions_jurisdiction_fkey REFERENCES jurisdictions (code),
    jurisdiction_path text,
    -- 'whsec_' + base64 of the key: kept in clear because the server signs with it
    secret text NOT NULL,
    created_by uuid CONSTRAINT webhook_subscriptions_created_by_fkey REFERENCES users (id),
    created_at timestamptz NOT NULL,
    disabled_at timestamptz,
    disabled_reason text,
    CONSTRAINT webhook_subscriptions_events_check CHECK (
        cardinality(events) >= 1 AND events <@ ARRAY[
            'report.created', 'report.updated', 'report.status_changed', 'report.merged',
            'incident.report_added', 'incident.deadline_missed', 'hazard.overdue'
        ]::text[]
    ),
    CONSTRAINT webhook_subscriptions_url_check CHECK (url ~ '^https?://' AND length(url) <= 2048),
    CONSTRAINT webhook_subscriptions_path_check CHECK ((jurisdiction IS NULL) = (jurisdiction_path IS NULL))
);

-- The outbox. seq orders the events of one report: writers of a report hold its row lock, so a
-- later change of the same report always draws a larger seq. dedupe_key makes the periodic
-- deadline events (hazard.overdue, incident.deadline_missed) exist at most once each.
CREATE TABLE webhook_events (
    id uuid CONSTRAINT webhook_events_pkey PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    type text NOT NULL,
    report_id uuid NOT NULL CONSTRAINT webhook_events_report_fkey REFERENCES reports (id),
    jurisdiction_path text NOT NULL,
    occurred_at timestamptz NOT NULL,
    data jsonb NOT NULL,
    dedupe_key text,
    created_at timestamptz NOT NULL,
    CONSTRAINT webhook_events_seq_key UNIQUE (seq),
    CONSTRAINT webhook_events_dedupe_key UNIQUE (dedupe_key)
);
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

-- One row per (event, subscription). state: pending (due at next_attempt_at; while a worker
-- holds it, next_attempt_at is the end of its lease and lease_token names the holder),
-- delivered, or dead (the retry schedule ran out, or the subscription was disabled).
CREATE TABLE webhook_deliveries (
    id uuid CONSTRAINT webhook_deliveries_pkey PRIMARY KEY,
    event_id uuid NOT NULL CONSTRAINT webhook_deliveries_event_fkey REFERENCES webhook_events (id),
    subscription_id uuid NOT NULL CONSTRAINT webhook_deliveries_subscription_fkey
        REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    report_id uuid NOT NULL,
    seq bigint NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_token uuid,
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz,
    dead_at timestamptz,
    CONSTRAINT webhook_deliveries_event_subscription_key UNIQUE (event_id, subscription_id),
    CONSTRAINT webhook_deliveries_state_check CHECK (state IN ('pending', 'delivered', 'dead'))
);
-- due work, per subscription, in the order the claim takes it (it stops after a few rows)
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (subscription_id, next_attempt_at, seq)
    WHERE state = 'pending';
-- "which is the earliest pending event of this report for this subscription?"
CREATE INDEX webhook_deliveries_order_idx ON webhook_deliveries (subscription_id, report_id, seq)
    WHERE state = 'pending';
-- the deliveries list of a subscription, newest first
CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (subscription_id, seq DESC);

CREATE TABLE webhook_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT webhook_attempts_pkey PRIMARY KEY,
    delivery_id uuid NOT NULL CONSTRAINT webhook_attempts_delivery_fkey
        REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    started_at timestamptz NOT NULL,
    latency_ms integer NOT NULL,
    status_code integer,
    error text
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id);
