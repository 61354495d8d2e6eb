-- Uploads any replica can continue (SPEC §10, docs/decisions/0016-upload-parts-in-the-object-store.md).
--
-- The upload's lock moves from a file lock on one host to a lease on its row: lease_token names
-- the request that holds it until lease_until (the database's clock, the one every replica
-- shares). It is taken and renewed by short statements, never held by an open transaction, so a
-- body that streams for minutes pins no pooled connection, and a crashed replica's lease runs out
-- by itself. Every write of an upload's state names its lease token, so a request that lost its
-- lease cannot record anything.
--
-- With an S3 media store the bytes live in the object store: multipart_key / multipart_id name
-- the upload's S3 multipart upload, segments lists the recorded parts and tail pieces (JSON
-- array of {first_byte, size, part_number, etag, key}, contiguous from byte 0 to upload_offset),
-- and parts_allocated hands out part numbers that no two writers ever share.

ALTER TABLE uploads
    ADD COLUMN lease_token uuid,
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN parts_allocated integer NOT NULL DEFAULT 0,
    ADD COLUMN multipart_key text,
    ADD COLUMN multipart_id text,
    ADD COLUMN segments jsonb NOT NULL DEFAULT '[]',
    ADD CONSTRAINT uploads_lease_check CHECK ((lease_token IS NULL) = (lease_until IS NULL)),
    ADD CONSTRAINT uploads_parts_allocated_check CHECK (parts_allocated BETWEEN 0 AND 10000),
    ADD CONSTRAINT uploads_multipart_check CHECK ((multipart_key IS NULL) = (multipart_id IS NULL)),
    ADD CONSTRAINT uploads_segments_check CHECK (jsonb_typeof(segments) = 'array');
