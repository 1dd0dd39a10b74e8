-- The durable queue: one row per accepted message, its body beside it, and
-- one row per recipient. A message is here, fsynced, before its "250".
-- This database is separate from the configuration so that queue traffic
-- never waits on configuration writes (and the other way round).

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    message_id        TEXT NOT NULL,
    sender            TEXT NOT NULL,           -- '' for the null sender <>
    received_at       TEXT NOT NULL,
    size              INTEGER NOT NULL,
    receive_connector TEXT NOT NULL,
    client_ip         TEXT NOT NULL,
    client_helo       TEXT,
    auth_user         TEXT,
    env_id            TEXT,
    ret               TEXT,                    -- 'FULL' / 'HDRS' / NULL (RFC 3461)
    body_type         TEXT,                    -- '7BIT' / '8BITMIME' / 'BINARYMIME'
    smtputf8          INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL DEFAULT 'Ready'
);

CREATE TABLE bodies (
    message  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    body     BLOB NOT NULL
);

CREATE TABLE recipients (
    message  INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    address  TEXT NOT NULL,
    orcpt    TEXT,
    notify   INTEGER NOT NULL DEFAULT 0,
    status   TEXT NOT NULL DEFAULT 'Ready',
    PRIMARY KEY (message, idx)
);
