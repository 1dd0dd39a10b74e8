-- One unit for time in the queue: every time column holds Unix
-- milliseconds (UTC), and its name ends in _ms. Before this migration
-- messages.received_at was RFC 3339 text, received_unix, updated_unix,
-- at_unix, last_attempt and last_success were seconds, and next_attempt
-- and next_retry were already milliseconds.

ALTER TABLE messages ADD COLUMN received_ms INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET received_ms = COALESCE(
    CAST(ROUND((julianday(received_at) - 2440587.5) * 86400000.0) AS INTEGER),
    received_unix * 1000);
ALTER TABLE messages DROP COLUMN received_at;
ALTER TABLE messages DROP COLUMN received_unix;

-- messages.status was never read: a message's state is its recipients'
-- (and `suspended`).
ALTER TABLE messages DROP COLUMN status;

ALTER TABLE recipients RENAME COLUMN next_attempt TO next_attempt_ms;
ALTER TABLE recipients RENAME COLUMN updated_unix TO updated_ms;
UPDATE recipients SET updated_ms = updated_ms * 1000;

ALTER TABLE queues RENAME COLUMN next_retry TO next_retry_ms;
ALTER TABLE queues RENAME COLUMN last_attempt TO last_attempt_ms;
ALTER TABLE queues RENAME COLUMN last_success TO last_success_ms;
UPDATE queues SET last_attempt_ms = last_attempt_ms * 1000,
                  last_success_ms = last_success_ms * 1000;

ALTER TABLE attempts RENAME COLUMN at_unix TO at_ms;
UPDATE attempts SET at_ms = at_ms * 1000;

-- Kept for the DSN extension (RFC 3461), whose MAIL and RCPT parameters
-- are refused today: messages.env_id (ENVID), messages.ret (RET=FULL/HDRS),
-- recipients.orcpt (ORCPT) and recipients.notify (NOTIFY, smtp-proto's
-- RCPT_NOTIFY_* bits). They are written from the envelope and stay empty
-- until the extension is offered. messages.body_type and smtputf8 record
-- BODY= and SMTPUTF8 as received.
