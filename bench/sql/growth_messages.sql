-- Scenario 5, part 2: the older messages of webhooks i in [lo, hi): 10 per device k = i/10+1,
-- the first 8 acknowledged a second after they arrived, the last 2 still pending (unexpired),
-- and the devices' push state: every wakeup owed for them was delivered (covered_id = the
-- newest message), as after a drained queue. Rows go in in primary-key order (wallet_id text
-- order) to keep the load fast. lo and hi are multiples of 10.
-- -v lo=I -v hi=I -v rows=N -v payload=BYTES
\set ON_ERROR_STOP on
SET work_mem = '256MB';
WITH m AS (
    INSERT INTO mpcpush.messages
        (wallet_id, device_id, source, payload, received_at, expires_at, acked_at)
    SELECT 'w' || k, 'd' || k, 'webhook',
           jsonb_build_object('seq', i, 'data',
                              substr(repeat(md5(i::text), :payload / 32 + 1), 1, :payload)),
           at, at + interval '1 day', CASE WHEN j < 8 THEN at + interval '1 second' END
    FROM (SELECT i, i / 10 + 1 AS k, i % 10 AS j,
                 now() - interval '50 minutes' * (1 - i::float8 / :rows) AS at
          FROM generate_series(:lo::bigint, :hi::bigint - 1) i) g
    ORDER BY 'w' || k, j
    RETURNING wallet_id, device_id, id)
INSERT INTO mpcpush.pushes AS p
    (wallet_id, device_id, wanted_id, covered_id, state, last_sent_at, due_at)
SELECT wallet_id, device_id, max(id), max(id), 'sent', now() - interval '10 minutes',
       now() - interval '10 minutes'
FROM m GROUP BY wallet_id, device_id
ON CONFLICT (wallet_id, device_id) DO UPDATE SET
    wanted_id = greatest(p.wanted_id, EXCLUDED.wanted_id),
    covered_id = greatest(p.wanted_id, EXCLUDED.wanted_id), state = 'sent';
