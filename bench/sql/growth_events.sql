-- Scenario 5, part 1: older inbox events, webhooks i in [lo, hi) of the :rows older ones
-- (10 per device, device k = i / 10 + 1), received over the last 50 minutes, under keys of the
-- form this version stores (timestamp first, then a stand-in for the body's SHA-256).
-- -v lo=I -v hi=I -v rows=N -v payload=BYTES
\set ON_ERROR_STOP on
SET synchronous_commit = on;
INSERT INTO mpcpush.webhook_events
    (dedupe_key, api_version, event_type, wallet_id, device_id, raw_body, received_at)
SELECT 'v1:' || lpad(to_hex(1700000000000 + i), 16, '0') || ':' || md5('old-event-' || i)
           || md5('tneve-dlo-' || i), 1, 'NCW_DEVICE_MESSAGE',
       'w' || (i / 10 + 1), 'd' || (i / 10 + 1),
       format('{"type":"NCW_DEVICE_MESSAGE","tenantId":"old","timestamp":%s,'
              '"walletId":"w%s","deviceId":"d%s","message":{"seq":%s,"data":"%s"}}',
              1700000000000 + i, i / 10 + 1, i / 10 + 1, i,
              substr(repeat(md5(i::text), :payload / 32 + 1), 1, :payload)),
       now() - interval '50 minutes' * (1 - i::float8 / :rows)
FROM generate_series(:lo::bigint, :hi::bigint - 1) i;
