-- Delivery state. Each recipient is routed to a next hop (its delivery
-- queue, spec rule 19) and carries its own retry state; each next hop has
-- a row in `queues` with the connection-failure schedule of spec rule 20.

ALTER TABLE messages ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
-- Unix seconds, so the scheduler can compare without parsing.
ALTER TABLE messages ADD COLUMN received_unix INTEGER NOT NULL DEFAULT 0;

-- NULL next_hop: not routed yet (the Submission queue).
ALTER TABLE recipients ADD COLUMN next_hop TEXT;
ALTER TABLE recipients ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN next_attempt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN last_error TEXT;
ALTER TABLE recipients ADD COLUMN remote_host TEXT;
ALTER TABLE recipients ADD COLUMN updated_unix INTEGER NOT NULL DEFAULT 0;
CREATE INDEX recipients_due ON recipients (status, next_attempt);
CREATE INDEX recipients_hop ON recipients (next_hop, status);

CREATE TABLE queues (
    next_hop        TEXT PRIMARY KEY,
    delivery_type   TEXT NOT NULL,
    display         TEXT NOT NULL,
    connector       TEXT,
    suspended       INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_retry      INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_attempt    INTEGER,
    last_success    INTEGER
);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    message     INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    at_unix     INTEGER NOT NULL,
    next_hop    TEXT NOT NULL,
    remote_host TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX attempts_message ON attempts (message);
