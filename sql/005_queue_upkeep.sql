-- mpcpush schema, version 5: upkeep that stays cheap as the tables grow.

-- 1. The pruner deletes push rows that owe nothing and whose device is gone. It found them with
-- an anti-join of all of pushes against all of devices, every prune interval (60 s by default):
-- with a million devices, 1.4 s of three processes each time. Since schema 4 a push row's
-- fcm_token is NULL exactly when its device does not exist (kept by the triggers), so these
-- rows are the few this partial index holds; rows with a device never enter it, and the
-- dispatcher's updates (which do not change the token) leave it alone.
CREATE INDEX pushes_deviceless ON mpcpush.pushes (wallet_id, device_id) WHERE fcm_token IS NULL;

-- 2. A claim counts the device's pending messages from messages_pending alone (it includes
-- expires_at) when their pages are marked all-visible, which only VACUUM does. By default
-- autovacuum comes after inserts of a fifth of the table: with ten million messages, two
-- million inserts, and until then every count visits the table for each pending message
-- (measured: 15 pending messages per device, 126 µs per claimed device instead of 57).
-- A hundredth keeps the marks current; an insert-only pass skips the index scans.
ALTER TABLE mpcpush.messages SET (autovacuum_vacuum_insert_scale_factor = 0.01);

-- 3. v1 events are now stored under "v1:<timestamp>:<sha256>" (the body's timestamp in 16 hex
-- digits first, so that new events append to the unique index instead of landing at random
-- places in it: with ten million events, each webhook wrote a page not yet written since the
-- last checkpoint, 8 kB of WAL). Keys stored before stay as they are ("sha256:<sha256>"); a
-- redelivery of such an event is recognised under its old key (src/store/ingest.c).
COMMENT ON COLUMN mpcpush.webhook_events.dedupe_key IS
    'v2: "v2:<id>"; v1: "v1:<timestamp ms, 16 hex digits>:<sha256 of the body>", or '
    '"sha256:<sha256 of the body>" when it has no timestamp or was stored before schema 5';
