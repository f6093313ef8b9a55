-- Webhook endpoints and their deliveries.
--
-- Operational state, not a disposable read model: `webhook_deliveries` records what was sent to whom,
-- how often it was tried and what the endpoint answered. None of that is in the log (only a delivery
-- that exhausted its attempts is an event), so replaying the log cannot give these rows back:
-- emptying them would send every event of every workspace again. They are written by the webhook
-- fan-out (under the checkpoint `webhooks`, in the transaction that moves it) and by the senders;
-- `prism projections rebuild` never touches them.

CREATE TABLE webhooks (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    url text NOT NULL,
    event_types text[] NOT NULL,
    description text NOT NULL,
    -- pending_validation | active | deleted
    status text NOT NULL,
    -- Where the signing secret is sealed (the key store's name) and its SHA-256; never the secret.
    secret_key text NOT NULL,
    secret_fingerprint text NOT NULL,
    failed_deliveries bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    version bigint NOT NULL,
    -- The abuse-protection handshake, while the endpoint is pending: how often it was tried, when
    -- next, and what the last try met.
    handshake_attempts integer NOT NULL DEFAULT 0,
    next_handshake_at timestamptz NOT NULL DEFAULT now(),
    last_handshake_error text
);

CREATE INDEX webhooks_by_workspace ON webhooks (workspace_id, created_at, id);
CREATE INDEX webhooks_pending_handshake ON webhooks (next_handshake_at) WHERE status = 'pending_validation';

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    webhook_id uuid NOT NULL REFERENCES webhooks (id),
    event_id text NOT NULL,
    event_type text NOT NULL,
    -- Where the event is in the log: its commit's stream sequence and its index in that commit.
    sequence bigint NOT NULL,
    event_index integer NOT NULL,
    -- The CloudEvents record exactly as the log holds it: the body of every attempt. Text, not jsonb,
    -- so that not one byte changes (jsonb reorders members).
    body text NOT NULL,
    -- pending | delivered | failed
    status text NOT NULL DEFAULT 'pending',
    -- Attempts since the delivery was queued or last retried by hand.
    attempts integer NOT NULL DEFAULT 0,
    -- How many times it was put back by hand.
    retries integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status integer,
    last_error text,
    last_attempt_at timestamptz,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- At least once, but queued once: an event redelivered to the fan-out is not queued again.
    UNIQUE (webhook_id, event_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, sequence, event_index);
