-- The webhooks' outbox: one row per event and subscription, written in the
-- same transaction as the event, sent (and retried) by the dispatcher.
-- `payload` is the event's JSON only when tracking is off (no `events` row
-- to read it from at sending time).
CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY,
    webhook         TEXT NOT NULL,
    event           INTEGER NOT NULL,
    payload         TEXT,
    created_ms      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'Pending',
    last_error      TEXT,
    done_ms         INTEGER
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (state, next_attempt_ms);
CREATE INDEX webhook_outbox_webhook ON webhook_outbox (webhook, id);
