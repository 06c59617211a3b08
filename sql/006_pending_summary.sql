-- mpcpush schema, version 6: a push row keeps a summary of its device's pending messages, so
-- that a claim need not count them.
--
-- Every wakeup tells the device how many messages wait for it, the newest one's id, and lives
-- until the last of them expires (its TTL). A claim counted them in messages_pending for every
-- device it claimed: a third of the claim's work (6 µs of 18 per wakeup), and more as the
-- table grows. Now the writers keep the count in the push row they write anyway: the ingest
-- adds what it inserts, an acknowledgement subtracts what it acknowledges (src/store/ingest.c,
-- src/store/messages.c). The summary is trusted only while it is provably exact:
--   pending_exact         it was counted from messages (by a claim), and only the ingest and
--                         acknowledgements changed it since
--   pending_count         the unacknowledged messages counted
--   pending_latest_id     the newest of them
--   pending_first_expiry  none of them expires before it (a bound: an acknowledgement leaves
--                         it as it is); once it has passed, the count may hold expired
--                         messages, so the next claim counts again
--   pending_last_expiry   when the last of them expires
-- A claim uses it when pending_exact, pending_count > 0 and pending_first_expiry is still to
-- come; otherwise it counts from messages, as before, and stores what it counted. An
-- acknowledgement of the newest message, or of the one expiring last, while others remain
-- clears pending_exact (the newest of the rest is not known without counting), and so does one
-- of a message that expires before pending_first_expiry (the count did not include it). Rows
-- written before this migration start inexact, and so does every row inserted since: its first
-- claim counts.

ALTER TABLE mpcpush.pushes
    ADD COLUMN pending_count integer NOT NULL DEFAULT 0,
    ADD COLUMN pending_latest_id bigint NOT NULL DEFAULT 0,
    ADD COLUMN pending_first_expiry timestamptz NOT NULL DEFAULT 'infinity',
    ADD COLUMN pending_last_expiry timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN pending_exact boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN mpcpush.pushes.pending_exact IS
    'pending_* is the exact summary of the device''s unacknowledged messages (until '
    'pending_first_expiry); set by a claim''s count, kept by the ingest and acknowledgements. '
    'Set it to false after changing messages by hand.';
