-- Scenario 2: exactly :count wakeups owed, one per device first .. first+count-1, each for one
-- new pending message (what the ingest statement leaves behind, down to due_at: each row its
-- own clock_timestamp()). Everything owed before is marked covered so that only these are
-- sent. The devices fall due in random order, as messages arrive in service: unrelated to
-- where their push rows sit in the table (in device order, the rows a claim takes were
-- neighbours, the most favourable case, and it hid a plan that read the whole backlog per
-- claim). -v first=K -v count=N
\set ON_ERROR_STOP on
-- The messages already there are as autovacuum leaves them in service (schema 5 has it follow a
-- large table's inserts): visible to all, so counting a device's pending messages (a row's
-- first claim does) needs no visit to the table. The new ones are not, as in service, where
-- they are seconds old.
VACUUM mpcpush.messages;
BEGIN;
UPDATE mpcpush.pushes SET covered_id = wanted_id, state = 'sent', lease_id = NULL,
    leased_until = NULL
WHERE wanted_id > covered_id;
WITH m AS (
    INSERT INTO mpcpush.messages (wallet_id, device_id, source, payload, expires_at)
    SELECT 'w' || k, 'd' || k, 'api', jsonb_build_object('bench', k), now() + interval '1 day'
    FROM generate_series(:first::bigint, :first::bigint + :count - 1) k
    RETURNING wallet_id, device_id, id, expires_at)
INSERT INTO mpcpush.pushes AS p (wallet_id, device_id, wanted_id, due_at, pending_count,
                                 pending_latest_id, pending_first_expiry, pending_last_expiry)
SELECT wallet_id, device_id, id, clock_timestamp(), 1, id, expires_at, expires_at
FROM (SELECT * FROM m ORDER BY random()) r
ON CONFLICT (wallet_id, device_id) DO UPDATE SET
    wanted_id = greatest(p.wanted_id, EXCLUDED.wanted_id), due_at = clock_timestamp(), state = 'ready',
    attempts = 0, lease_id = NULL, leased_until = NULL,
    -- the summary of pending messages, kept as the ingest keeps it (schema 6): a row's first
    -- claim counts, later ones read it
    pending_count = p.pending_count + 1,
    pending_latest_id = greatest(p.pending_latest_id, EXCLUDED.pending_latest_id),
    pending_first_expiry = least(p.pending_first_expiry, EXCLUDED.pending_first_expiry),
    pending_last_expiry = greatest(p.pending_last_expiry, EXCLUDED.pending_last_expiry);
COMMIT;
VACUUM ANALYZE mpcpush.pushes;
