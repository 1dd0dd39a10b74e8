-- Queue depth (issue 22), found by measuring each thread's CPU at depth.
--
-- The delay-notice pass reads only the messages not yet notified, in
-- arrival order. Without this, every message already notified was walked
-- again on every pass of the engine.
CREATE INDEX messages_not_notified ON messages (received_ms) WHERE delay_notified = 0;

-- (status, next_attempt_ms) served no query the engine needs: the
-- scheduler reads a queue's due recipients through recipients_hop. It was
-- written on every acceptance, status change and delivery, and it led
-- SQLite to plan the expiry pass through every pending recipient.
DROP INDEX recipients_due;
