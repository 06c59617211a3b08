-- mpcpush schema, version 1: devices, the webhook inbox, messages, push state and API keys.
-- Wallet-owned tables lead their keys with wallet_id so the schema can later be distributed
-- by wallet (Citus-style); every query the daemon runs is backed by one of these indexes.

CREATE SCHEMA IF NOT EXISTS mpcpush;

-- A device of a wallet and the FCM registration token that wakes it.
CREATE TABLE mpcpush.devices (
    wallet_id            text        NOT NULL,
    device_id            text        NOT NULL,
    physical_device_id   text,
    platform             text        NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    fcm_token            text        NOT NULL,
    token_status         text        NOT NULL DEFAULT 'active'
                                     CHECK (token_status IN ('active', 'invalid')),
    token_invalid_reason text,
    token_invalidated_at timestamptz,
    registered_at        timestamptz NOT NULL DEFAULT now(),
    refreshed_at         timestamptz NOT NULL DEFAULT now(),
    last_push_at         timestamptz,
    PRIMARY KEY (wallet_id, device_id)
);

-- Every webhook event accepted from Fireblocks, exactly as received. dedupe_key is the v2
-- event id ("v2:<id>") or the SHA-256 of the raw body ("sha256:<hex>") for v1.
CREATE TABLE mpcpush.webhook_events (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedupe_key  text        NOT NULL UNIQUE,
    api_version smallint    NOT NULL CHECK (api_version IN (1, 2)),
    event_type  text        NOT NULL,
    wallet_id   text,
    device_id   text,
    raw_body    text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_received ON mpcpush.webhook_events (received_at);
CREATE INDEX webhook_events_wallet ON mpcpush.webhook_events (wallet_id, received_at)
    WHERE wallet_id IS NOT NULL;

-- A message waiting for one device: an MPC message from Fireblocks, a wakeup made from an
-- event, or a message enqueued through the API. The payload is what the device fetches.
CREATE TABLE mpcpush.messages (
    wallet_id   text        NOT NULL,
    device_id   text        NOT NULL,
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    source      text        NOT NULL CHECK (source IN ('webhook', 'event', 'api')),
    event_id    bigint,
    payload     jsonb       NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    acked_at    timestamptz,
    PRIMARY KEY (wallet_id, device_id, id)
) WITH (fillfactor = 90);
-- The pending set of a device, in order: fetch, count and ack all read it.
CREATE INDEX messages_pending ON mpcpush.messages (wallet_id, device_id, id)
    WHERE acked_at IS NULL;
-- Pruning: acknowledged rows by age, and rows past their expiry.
CREATE INDEX messages_acked ON mpcpush.messages (acked_at) WHERE acked_at IS NOT NULL;
CREATE INDEX messages_expires ON mpcpush.messages (expires_at);

-- Push state, one row per device with something to wake it for, kept apart from the payloads
-- so the table the dispatcher polls stays small. A wakeup is owed while wanted_id > covered_id:
-- wanted_id is the newest message that needs one, covered_id the newest a delivered (or
-- abandoned) wakeup covered. due_at is when the row may next be claimed: now for new work,
-- later for a retry, and the lease expiry while a dispatcher holds it, so an expired lease is
-- simply claimable again.
CREATE TABLE mpcpush.pushes (
    wallet_id        text        NOT NULL,
    device_id        text        NOT NULL,
    wanted_id        bigint      NOT NULL,
    covered_id       bigint      NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL DEFAULT now(),
    state            text        NOT NULL DEFAULT 'ready'
                                 CHECK (state IN ('ready', 'leased', 'retry', 'sent', 'failed')),
    lease_id         bigint,
    leased_by        text,
    claimed_id       bigint,
    attempts         integer     NOT NULL DEFAULT 0,
    last_attempt_at  timestamptz,
    last_error       text,
    last_sent_at     timestamptz,
    fcm_message_name text,
    PRIMARY KEY (wallet_id, device_id)
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_analyze_scale_factor = 0.02);
-- Exactly the claim predicate.
CREATE INDEX pushes_due ON mpcpush.pushes (due_at) WHERE wanted_id > covered_id;

CREATE SEQUENCE mpcpush.lease_ids;

-- Keys for the /v1 API. Only the SHA-256 of each key is stored.
CREATE TABLE mpcpush.api_keys (
    name       text        PRIMARY KEY,
    key_hash   bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
