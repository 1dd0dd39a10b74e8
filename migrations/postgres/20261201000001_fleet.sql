-- A fleet's shared configuration (`--config-store postgres://…`). Each
-- node keeps its own SQLite copy (the last good snapshot, which it runs
-- on while PostgreSQL is away); this is the journal they all follow.
-- `ferry_rows` holds the rows of the shared tables verbatim (sealed
-- secrets as sealed: never in clear), each with the fleet revision of its
-- last change; a deleted row stays as a tombstone so a node that was away
-- learns of it. `ferry_head` is the revision, locked by every write.
CREATE TABLE ferry_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    revision    BIGINT NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    changed_by  TEXT
);
INSERT INTO ferry_head (id, revision) VALUES (1, 0);

CREATE TABLE ferry_rows (
    tbl         TEXT NOT NULL,
    key         TEXT NOT NULL,
    name        TEXT,
    version     BIGINT NOT NULL,
    spec        TEXT NOT NULL,
    secret      BYTEA,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    deleted     BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (tbl, key)
);
CREATE INDEX ferry_rows_revision ON ferry_rows (revision);

-- The node registry: every node's heartbeat and queue totals.
CREATE TABLE ferry_servers (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    version     TEXT NOT NULL,
    fqdn        TEXT NOT NULL,
    api         TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    queue       TEXT NOT NULL
);
