-- Scenario 5, part 0: the devices of the :rows older messages (10 per device), registered
-- ten minutes ago. -v rows=N
\set ON_ERROR_STOP on
INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token, registered_at,
                             refreshed_at)
SELECT 'w' || k, 'd' || k, 'android', bench.token(k), now() - interval '1 hour',
       now() - interval '1 hour'
FROM generate_series(1::bigint, (:rows::bigint + 9) / 10) k
ON CONFLICT (wallet_id, device_id) DO NOTHING;
ANALYZE mpcpush.devices;
