-- kind: expand
-- Webhooks (appliance/src/webhooks): subscriptions to record and export
-- events, each delivery a job of kind 'webhook' on the V5 queue.
--
-- An event is written in the same transaction as the change it reports
-- (one INSERT … SELECT over the matching subscriptions: a transactional
-- outbox), so a rolled-back change never notifies and a committed one
-- always does. Every attempt is logged with the address it reached, the
-- status code and the latency.

CREATE TABLE webhooks (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                   text NOT NULL,
    description           text NOT NULL DEFAULT '',
    -- NULL: events of every collection.
    collection            text,
    events                text[] NOT NULL CHECK (cardinality(events) > 0),
    -- The signing secret; after a rotation the previous one signs too until
    -- previous_secret_until, so receivers can switch without losing events.
    secret                text NOT NULL,
    previous_secret       text,
    previous_secret_until timestamptz,
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text,
    -- Health: failed attempts in a row, and since when none succeeded.
    consecutive_failures  integer NOT NULL DEFAULT 0,
    failing_since         timestamptz,
    created_by            bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_enabled ON webhooks (collection) WHERE enabled;

CREATE TABLE webhook_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id   bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- The event's id (the webhook-id header): the same for a redelivery, so
    -- receivers can drop duplicates.
    event_id     uuid NOT NULL,
    event        text NOT NULL,
    payload      jsonb NOT NULL,
    job_id       bigint UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,
    -- A manual redelivery names the delivery it repeats.
    redelivery_of bigint REFERENCES webhook_deliveries (id) ON DELETE SET NULL,
    attempts     integer NOT NULL DEFAULT 0,
    last_status  integer,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    -- The URL and address last reached (after redirects).
    url         text NOT NULL,
    address     text,
    status      integer,
    latency_ms  integer NOT NULL,
    error       text,
    PRIMARY KEY (delivery_id, attempt)
);
