-- Message tracking (spec §1.7, rule 27): one row per event in a message's
-- life. Kept in its own database with synchronous=NORMAL: losing the last
-- events in a power cut is acceptable for a log, and its writes must never
-- slow the queue's fsyncs. Rows older than the retention are deleted.

CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    time_ms         INTEGER NOT NULL,         -- Unix milliseconds
    event           TEXT NOT NULL,            -- RECEIVE, ROUTE, SEND, DEFER, FAIL, DSN, ...
    source          TEXT NOT NULL,            -- SMTP, ROUTING, QUEUE, DSN, ADMIN, STOREDRIVER
    internal_id     INTEGER NOT NULL,
    message_id      TEXT NOT NULL,
    sender          TEXT NOT NULL,
    recipients      TEXT NOT NULL,            -- JSON array
    size            INTEGER,
    subject         TEXT,
    connector       TEXT,
    client_ip       TEXT,
    client_hostname TEXT,
    server_ip       TEXT,
    server_hostname TEXT,
    next_hop        TEXT,
    tls             TEXT,
    auth            TEXT,
    detail          TEXT,
    related         TEXT,
    session         TEXT
);
CREATE INDEX events_time ON events (time_ms);
CREATE INDEX events_message_id ON events (message_id);
CREATE INDEX events_internal_id ON events (internal_id);
CREATE INDEX events_sender ON events (sender COLLATE NOCASE);

CREATE TABLE event_recipients (
    event    INTEGER NOT NULL,
    address  TEXT NOT NULL COLLATE NOCASE
);
CREATE INDEX event_recipients_address ON event_recipients (address, event);
CREATE INDEX event_recipients_event ON event_recipients (event);
