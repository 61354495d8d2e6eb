-- OpenRosa (ODK Collect, KoboCollect): every instance a device sent, and the attachments that
-- arrived for it, so that resends, split submissions and deprecatedID edits find the report an
-- instance made. The report itself lives in `reports` like any other (SPEC §7).

CREATE TABLE openrosa_instances (
    -- meta/instanceID without its 'uuid:' prefix
    instance_id uuid CONSTRAINT openrosa_instances_pkey PRIMARY KEY,
    form_id text NOT NULL,
    report_id uuid NOT NULL,
    -- meta/deprecatedID: the instance this one edits (its report gets a new version)
    deprecated_id uuid CONSTRAINT openrosa_instances_deprecated_fkey REFERENCES openrosa_instances (instance_id),
    user_id uuid NOT NULL CONSTRAINT openrosa_instances_user_fkey REFERENCES users (id),
    device_id uuid CONSTRAINT openrosa_instances_device_fkey REFERENCES devices (id),
    -- SHA-256 of the submission XML bytes: the same instanceID with other XML is a conflict
    xml_sha256 bytea NOT NULL,
    received_at timestamptz NOT NULL,
    -- the report version this instance made and that version's content hash; NULL while only
    -- parts marked *isIncomplete* have arrived
    report_version integer,
    content_hash bytea,
    completed_at timestamptz,
    CONSTRAINT openrosa_instances_form_check CHECK (form_id ~ '^[a-z][a-z0-9_]{0,63}$'),
    CONSTRAINT openrosa_instances_completed_check CHECK ((report_version IS NULL) = (completed_at IS NULL))
);
CREATE INDEX openrosa_instances_report_idx ON openrosa_instances (report_id);

-- One row per attachment file name of an instance, the last bytes received under that name.
-- No foreign key to media: `fieldsync gc` may remove an object no report references yet, and the
-- report then lists its hash in missing_media until a resend brings the bytes again.
CREATE TABLE openrosa_attachments (
    instance_id uuid NOT NULL
        CONSTRAINT openrosa_attachments_instance_fkey REFERENCES openrosa_instances (instance_id),
    filename text NOT NULL,
    sha256 text NOT NULL,
    received_at timestamptz NOT NULL,
    CONSTRAINT openrosa_attachments_pkey PRIMARY KEY (instance_id, filename),
    CONSTRAINT openrosa_attachments_sha256_format CHECK (sha256 ~ '^[0-9a-f]{64}$')
);
