-- Views that answer "what is waiting for whom, and why hasn't it gone out" in one query.

-- Every pending message (unacknowledged, unexpired) with the push state of its device.
CREATE VIEW mpcpush.pending_messages AS
SELECT m.wallet_id,
       m.device_id,
       m.id                                  AS message_id,
       m.source,
       m.payload,
       m.received_at,
       m.expires_at,
       CASE
           WHEN d.device_id IS NULL THEN 'no_device'
           WHEN d.token_status <> 'active' THEN 'token_invalid'
           WHEN p.device_id IS NULL THEN 'not_queued'
           WHEN m.id <= p.covered_id THEN 'woken'
           WHEN p.state = 'leased' AND p.due_at > now() THEN 'sending'
           WHEN p.state = 'retry' THEN 'retrying'
           ELSE 'queued'
       END                                   AS push_state,
       p.attempts,
       p.last_error,
       p.last_sent_at                        AS last_pushed_at,
       CASE WHEN p.wanted_id > p.covered_id THEN p.due_at END          AS next_attempt_at
FROM mpcpush.messages m
LEFT JOIN mpcpush.devices d ON d.wallet_id = m.wallet_id AND d.device_id = m.device_id
LEFT JOIN mpcpush.pushes p ON p.wallet_id = m.wallet_id AND p.device_id = m.device_id
WHERE m.acked_at IS NULL AND m.expires_at > now();

-- One row per device: its token, what is pending, and how its pushes are going.
CREATE VIEW mpcpush.device_status AS
SELECT d.wallet_id,
       d.device_id,
       d.platform,
       '...' || right(d.fcm_token, 6)        AS token_suffix,
       d.token_status,
       d.token_invalid_reason,
       d.token_invalidated_at,
       d.refreshed_at                        AS token_refreshed_at,
       d.last_push_at,
       (SELECT count(*) FROM mpcpush.messages m
         WHERE m.wallet_id = d.wallet_id AND m.device_id = d.device_id
           AND m.acked_at IS NULL AND m.expires_at > now())            AS pending,
       (SELECT min(m.received_at) FROM mpcpush.messages m
         WHERE m.wallet_id = d.wallet_id AND m.device_id = d.device_id
           AND m.acked_at IS NULL AND m.expires_at > now())            AS oldest_pending_at,
       p.state                               AS push_state,
       p.attempts                            AS push_attempts,
       p.last_error                          AS push_last_error,
       CASE WHEN p.wanted_id > p.covered_id THEN p.due_at END          AS next_attempt_at,
       p.fcm_message_name                    AS last_fcm_message
FROM mpcpush.devices d
LEFT JOIN mpcpush.pushes p ON p.wallet_id = d.wallet_id AND p.device_id = d.device_id;

-- Devices whose pushes are failing or whose token was retired, newest problem first.
CREATE VIEW mpcpush.push_problems AS
SELECT wallet_id, device_id, token_status, token_invalid_reason, push_state, push_attempts,
       push_last_error, next_attempt_at, pending
FROM mpcpush.device_status
WHERE token_status <> 'active' OR push_state IN ('retry', 'failed')
ORDER BY coalesce(token_invalidated_at, next_attempt_at) DESC NULLS LAST;
