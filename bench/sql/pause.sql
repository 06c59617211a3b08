-- Pauses every dispatcher of the project until a scenario lets them go. -v project=ID
\set ON_ERROR_STOP on
INSERT INTO mpcpush.fcm_pauses (project_id, paused_until, reason)
VALUES (:'project', now() + interval '1 day', 'bench')
ON CONFLICT (project_id) DO UPDATE SET paused_until = EXCLUDED.paused_until, reason = 'bench';
