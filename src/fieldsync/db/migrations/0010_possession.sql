-- Knowing a hash grants nothing (SPEC §3 media). A report's photo reference counts as present
-- only once the user who attached it (the author, or the supervisor or inspector who added
-- rectification evidence) has uploaded those bytes themselves: ``media_uploads`` holds that proof.
-- Before this migration any reference to a stored hash counted, so a report could name someone
-- else's photo and read its original (with its GPS) by that.
ALTER TABLE report_media ADD COLUMN attached_by uuid CONSTRAINT report_media_attached_by_fkey REFERENCES users (id);

UPDATE report_media rm SET attached_by = r.author_id FROM reports r WHERE r.id = rm.report_id;

-- Rectification evidence was appended by whoever submitted the rectification: its audit event
-- names the actor and the hashes.
UPDATE report_media rm SET attached_by = e.actor_id
FROM events e
WHERE e.report_id = rm.report_id AND e.action = 'submit_rectification' AND e.actor_id IS NOT NULL
  AND (e.detail::jsonb -> 'media') ? rm.sha256 AND rm.role = 'after';

ALTER TABLE report_media ALTER COLUMN attached_by SET NOT NULL;

-- A presence check is (sha256, attached_by) against media_uploads' primary key; the reverse
-- lookup (which references did this upload complete?) needs this index.
CREATE INDEX report_media_attached_idx ON report_media (sha256, attached_by);

-- When an object was last uploaded: a re-upload of a known photo restarts its gc grace period,
-- so a device that sends the photo first and the report later is not raced by gc.
ALTER TABLE media ADD COLUMN touched_at timestamptz DEFAULT now();
UPDATE media SET touched_at = created_at;
ALTER TABLE media ALTER COLUMN touched_at SET NOT NULL;
