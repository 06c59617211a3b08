-- The ingest baseline: pgbench -M prepared -D devices=N -D payload=BYTES -f pgbench_ingest.sql
-- One webhook per transaction, writing the rows the daemon's group commit writes for it: the
-- inbox event (the daemon's dedupe key, timestamp and SHA-256; a raw body of the same size),
-- the message (payload taken from the body) and the push-state upsert (for the registered
-- device, with its token and the summary of pending messages, schema 6, as the daemon's ingest
-- statement does).
\set k random(1, :devices)
WITH v AS (
    SELECT 'w' || :k::bigint AS wallet_id, 'd' || :k::bigint AS device_id, :k::bigint AS k,
           :payload::int AS payload, nextval('bench.pgbench_seq') AS s),
b AS (
    SELECT v.*,
           format('{"type":"NCW_DEVICE_MESSAGE","tenantId":"pgbench","timestamp":%s,'
                  '"walletId":"w%s","deviceId":"d%s","message":{"seq":%s,"data":"%s"}}',
                  ts, k, k, s, substr(repeat(md5(s::text), payload / 32 + 1), 1, payload)) AS raw
    FROM (SELECT v.*, 1764000000000 + s AS ts FROM v) v),
ev AS (
    INSERT INTO mpcpush.webhook_events
        (dedupe_key, api_version, event_type, wallet_id, device_id, raw_body)
    SELECT 'v1:' || lpad(to_hex(ts), 16, '0') || ':'
               || encode(sha256(convert_to(raw, 'UTF8')), 'hex'),
           1, 'NCW_DEVICE_MESSAGE', wallet_id, device_id, raw
    FROM b
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, wallet_id, device_id, raw_body),
msg AS (
    INSERT INTO mpcpush.messages (wallet_id, device_id, id, source, event_id, payload, expires_at)
    SELECT wallet_id, device_id, nextval('mpcpush.messages_id_seq'), 'webhook', id,
           raw_body::jsonb -> 'message', now() + interval '86400 seconds'
    FROM ev
    RETURNING wallet_id, device_id, id)
INSERT INTO mpcpush.pushes AS p (wallet_id, device_id, wanted_id, fcm_token, platform, token_active,
                                 pending_count, pending_latest_id, pending_first_expiry,
                                 pending_last_expiry)
SELECT m.wallet_id, m.device_id, m.id, dv.fcm_token, dv.platform, true,
       1, m.id, now() + interval '86400 seconds', now() + interval '86400 seconds' FROM msg m
JOIN mpcpush.devices dv ON dv.wallet_id = m.wallet_id AND dv.device_id = m.device_id
    AND dv.token_status = 'active'
ON CONFLICT (wallet_id, device_id) DO UPDATE SET
    wanted_id = greatest(p.wanted_id, EXCLUDED.wanted_id),
    pending_count = p.pending_count + 1,
    pending_latest_id = greatest(p.pending_latest_id, EXCLUDED.pending_latest_id),
    pending_first_expiry = least(p.pending_first_expiry, EXCLUDED.pending_first_expiry),
    pending_last_expiry = greatest(p.pending_last_expiry, EXCLUDED.pending_last_expiry),
    due_at = CASE WHEN p.wanted_id > p.covered_id THEN p.due_at ELSE clock_timestamp() END,
    state = CASE WHEN p.wanted_id > p.covered_id THEN p.state ELSE 'ready' END,
    attempts = CASE WHEN p.wanted_id > p.covered_id THEN p.attempts ELSE 0 END;
