-- mpcpush schema, version 4: a claim reads only pushes and messages, starts where the last one
-- stopped, and the inbox keeps one index fewer.

-- 1. Wakeups owed are due at distinct times. A dispatcher claims in due_at order and keeps a
-- cursor, the due_at where its last claim stopped, so that the next claim starts there instead
-- of walking again past every row still in flight at the head of the queue
-- (src/store/pushes.c). The cursor is only as good as due_at is fine-grained: with now(), every
-- row a statement touches shares the statement's start time. clock_timestamp() gives each row
-- its own microsecond.
ALTER TABLE mpcpush.pushes ALTER COLUMN due_at SET DEFAULT clock_timestamp();

-- 2. Each push row carries a copy of what a wakeup needs from its device (token, platform,
-- whether the token is usable), so that a claim does not look the device up: that lookup was
-- a sixth of the database's work per wakeup, and more on a large, cold devices table. Triggers
-- keep the copy exact whatever changes a device (the API, an invalidation by the dispatcher,
-- an operator's SQL): a new push row takes it from the device unless its writer gives it (the
-- ingest statement has the device at hand), and a device's change or removal is copied to its
-- push row in the same transaction. fcm_token NULL means there is no device.
ALTER TABLE mpcpush.pushes
    ADD COLUMN fcm_token text,
    ADD COLUMN platform text,
    ADD COLUMN token_active boolean NOT NULL DEFAULT false;

UPDATE mpcpush.pushes p
SET fcm_token = d.fcm_token, platform = d.platform, token_active = d.token_status = 'active'
FROM mpcpush.devices d
WHERE d.wallet_id = p.wallet_id AND d.device_id = p.device_id;

CREATE FUNCTION mpcpush.push_takes_device() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    SELECT d.fcm_token, d.platform, d.token_status = 'active'
    INTO NEW.fcm_token, NEW.platform, NEW.token_active
    FROM mpcpush.devices d
    WHERE d.wallet_id = NEW.wallet_id AND d.device_id = NEW.device_id;
    NEW.token_active := coalesce(NEW.token_active, false);
    RETURN NEW;
END $$;

CREATE TRIGGER push_takes_device BEFORE INSERT ON mpcpush.pushes
    FOR EACH ROW WHEN (NEW.fcm_token IS NULL) EXECUTE FUNCTION mpcpush.push_takes_device();

CREATE FUNCTION mpcpush.device_to_push() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE mpcpush.pushes SET fcm_token = NULL, platform = NULL, token_active = false
        WHERE wallet_id = OLD.wallet_id AND device_id = OLD.device_id;
        RETURN OLD;
    END IF;
    UPDATE mpcpush.pushes
    SET fcm_token = NEW.fcm_token, platform = NEW.platform,
        token_active = NEW.token_status = 'active'
    WHERE wallet_id = NEW.wallet_id AND device_id = NEW.device_id
      AND (fcm_token, platform, token_active)
          IS DISTINCT FROM (NEW.fcm_token, NEW.platform, NEW.token_status = 'active');
    RETURN NEW;
END $$;

CREATE TRIGGER device_to_push AFTER INSERT OR DELETE OR UPDATE OF fcm_token, platform, token_status
    ON mpcpush.devices FOR EACH ROW EXECUTE FUNCTION mpcpush.device_to_push();

-- 3. No statement mpcpush runs reads the inbox by wallet, and every webhook paid for this index
-- with an insert at a random place in it (with ten million events, a page written for the
-- first time since the last checkpoint, logged whole). A wallet's events are still found
-- through its messages (messages.event_id), or by scanning the inbox by time.
DROP INDEX mpcpush.webhook_events_wallet;
