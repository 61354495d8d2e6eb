-- The pull feed's epoch. A cursor carries xid8 snapshots, which mean something only on the
-- cluster whose transactions they count. A restore (fieldsync restore) loads the rows into
-- another cluster, whose transaction ids start again near zero: an old cursor's snapshot would
-- then call every new change already seen. The restore therefore starts a new epoch (and
-- restamps the restored rows with its own transaction), and a cursor of another epoch is
-- answered as a first pull: everything the caller may see, nothing skipped.
CREATE TABLE sync_feed (
    singleton boolean CONSTRAINT sync_feed_pkey PRIMARY KEY DEFAULT true,
    epoch uuid NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sync_feed_singleton CHECK (singleton)
);
INSERT INTO sync_feed (epoch) VALUES (gen_random_uuid());
