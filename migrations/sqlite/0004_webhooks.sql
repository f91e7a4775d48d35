-- Outgoing webhooks: subscriptions to event kinds, one delivery per (subscription, event) with
-- its attempts, and the fan-out's position in the event stream (it starts at the end of the
-- stream: a new subscription receives events from its creation on).

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    filter TEXT NOT NULL,
    secret TEXT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_status BIGINT,
    last_error TEXT,
    log TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);

INSERT INTO cursors (name, position) SELECT 'webhooks', COALESCE(MAX(id), 0) FROM events;
