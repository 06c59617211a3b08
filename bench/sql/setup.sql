-- Bench helpers and devices. psql -v first=K -v last=K -v project=ID -f setup.sql
-- Device k is wallet 'w<k>', device 'd<k>', with the FCM-like token bench.token(k) (163
-- characters; mpcpush-bench match finds k again from the "bench<9 digits>:" prefix).
\set ON_ERROR_STOP on
CREATE SCHEMA IF NOT EXISTS bench;
CREATE OR REPLACE FUNCTION bench.token(k bigint) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN 'bench' || lpad(k::text, 9, '0') || ':APA91b' || repeat('x', 143);
CREATE SEQUENCE IF NOT EXISTS bench.pgbench_seq START 1000000000000;

INSERT INTO mpcpush.devices (wallet_id, device_id, platform, fcm_token)
SELECT 'w' || k, 'd' || k, 'android', bench.token(k)
FROM generate_series(:first::bigint, :last::bigint) k
ON CONFLICT (wallet_id, device_id) DO NOTHING;

-- The dispatcher stays paused (the project-wide pause every dispatcher honours) until a
-- scenario lets it go: ingest is measured alone, and dispatch starts with a full queue.
INSERT INTO mpcpush.fcm_pauses (project_id, paused_until, reason)
VALUES (:'project', now() + interval '1 day', 'bench')
ON CONFLICT (project_id) DO UPDATE SET paused_until = EXCLUDED.paused_until, reason = 'bench';
ANALYZE mpcpush.devices;
