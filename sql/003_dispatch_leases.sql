-- mpcpush schema, version 3: a claim and a delivery write less, and a claim reads less.
--
-- Until now a claim leased a row by moving due_at (indexed by pushes_due) to the lease expiry,
-- so every claim was an update that inserted into both of pushes' indexes, and every delivered
-- wakeup also updated devices.last_push_at, a second row in a second table whose pages fill up.
-- Now the lease lives in leased_until, a column no index covers, so a claim is a HOT update
-- (the new row version stays on its page, no index entry is added), and the time of the last
-- delivery is read from pushes.last_sent_at, which the delivery writes anyway.
--
-- A row is claimable when it owes a wakeup (wanted_id > covered_id), is due (due_at <= now())
-- and is not leased (leased_until is NULL or past: an expired lease is simply claimable
-- again). Leases taken before this migration moved due_at; they expire as they did.

ALTER TABLE mpcpush.pushes ADD COLUMN leased_until timestamptz;

-- Every claim counts the device's pending messages and finds when the last of them expires.
-- With expires_at in the pending index that is an index-only scan wherever the table's pages
-- are all-visible (everything but the newest rows), instead of one heap page per pending
-- message. Rebuilding the index takes a few seconds per million pending messages, during
-- which writes to messages wait.
-- Messages are never updated in place (an acknowledgement changes acked_at, which partial
-- indexes cover, so it can never be a HOT update): the 10 % kept free on each page served
-- nothing, and let new rows scatter into old pages, clearing their all-visible bits and
-- sending the claim's count back to the heap. New rows now fill pages, then go to the end.
ALTER TABLE mpcpush.messages SET (fillfactor = 100);

DROP INDEX mpcpush.messages_pending;
CREATE INDEX messages_pending ON mpcpush.messages (wallet_id, device_id, id) INCLUDE (expires_at)
    WHERE acked_at IS NULL;

CREATE OR REPLACE FUNCTION mpcpush.device_state(p_wallet text, p_device text) RETURNS json
    LANGUAGE sql STABLE
    RETURN (
        SELECT json_build_object(
            'walletId', d.wallet_id, 'deviceId', d.device_id,
            'physicalDeviceId', d.physical_device_id, 'platform', d.platform,
            'tokenSuffix', right(d.fcm_token, 6), 'tokenStatus', d.token_status,
            'tokenInvalidReason', d.token_invalid_reason,
            'registeredAt', mpcpush.iso_time(d.registered_at),
            'refreshedAt', mpcpush.iso_time(d.refreshed_at),
            'lastPushAt', mpcpush.iso_time((
                SELECT p.last_sent_at FROM mpcpush.pushes p
                WHERE p.wallet_id = d.wallet_id AND p.device_id = d.device_id)),
            'pendingMessages', (
                SELECT count(*) FROM mpcpush.messages m
                WHERE m.wallet_id = d.wallet_id AND m.device_id = d.device_id
                  AND m.acked_at IS NULL AND m.expires_at > now()))
        FROM mpcpush.devices d
        WHERE d.wallet_id = p_wallet AND d.device_id = p_device);

CREATE OR REPLACE VIEW mpcpush.pending_messages AS
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
           WHEN p.state = 'leased' AND greatest(p.due_at, p.leased_until) > now() THEN 'sending'
           WHEN p.state = 'retry' THEN 'retrying'
           ELSE 'queued'
       END                                   AS push_state,
       p.attempts,
       p.last_error,
       p.last_sent_at                        AS last_pushed_at,
       CASE WHEN p.wanted_id > p.covered_id
            THEN greatest(p.due_at, p.leased_until) END                AS next_attempt_at
FROM mpcpush.messages m
LEFT JOIN mpcpush.devices d ON d.wallet_id = m.wallet_id AND d.device_id = m.device_id
LEFT JOIN mpcpush.pushes p ON p.wallet_id = m.wallet_id AND p.device_id = m.device_id
WHERE m.acked_at IS NULL AND m.expires_at > now();

CREATE OR REPLACE VIEW mpcpush.device_status AS
SELECT d.wallet_id,
       d.device_id,
       d.platform,
       '...' || right(d.fcm_token, 6)        AS token_suffix,
       d.token_status,
       d.token_invalid_reason,
       d.token_invalidated_at,
       d.refreshed_at                        AS token_refreshed_at,
       p.last_sent_at                        AS last_push_at,
       (SELECT count(*) FROM mpcpush.messages m
         WHERE m.wallet_id = d.wallet_id AND m.device_id = d.device_id
           AND m.acked_at IS NULL AND m.expires_at > now())            AS pending,
       (SELECT min(m.received_at) FROM mpcpush.messages m
         WHERE m.wallet_id = d.wallet_id AND m.device_id = d.device_id
           AND m.acked_at IS NULL AND m.expires_at > now())            AS oldest_pending_at,
       p.state                               AS push_state,
       p.attempts                            AS push_attempts,
       p.last_error                          AS push_last_error,
       CASE WHEN p.wanted_id > p.covered_id
            THEN greatest(p.due_at, p.leased_until) END                AS next_attempt_at,
       p.fcm_message_name                    AS last_fcm_message
FROM mpcpush.devices d
LEFT JOIN mpcpush.pushes p ON p.wallet_id = d.wallet_id AND p.device_id = d.device_id;

-- Keep the last delivery time of devices pushed before this migration.
UPDATE mpcpush.pushes p SET last_sent_at = d.last_push_at
FROM mpcpush.devices d
WHERE d.wallet_id = p.wallet_id AND d.device_id = p.device_id
  AND d.last_push_at IS NOT NULL AND p.last_sent_at IS NULL;

ALTER TABLE mpcpush.devices DROP COLUMN last_push_at;
