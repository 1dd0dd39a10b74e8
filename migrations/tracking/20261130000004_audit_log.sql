-- The admin audit log (Exchange's Search-AdminAuditLog): one row per
-- mutation through the API — who (the API token's name), when, from where,
-- what (method, path, the object), the result, and the fields it changed
-- with their old and new values, secrets masked. Kept 90 days, as
-- Exchange's AdminAuditLogAgeLimit, whatever the tracking retention.

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY,
    time_ms       INTEGER NOT NULL,
    token_id      TEXT NOT NULL,
    token_name    TEXT NOT NULL,
    role          TEXT NOT NULL,
    client_ip     TEXT,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    object_type   TEXT NOT NULL,
    object_id     TEXT,
    status        INTEGER NOT NULL,
    succeeded     INTEGER NOT NULL,
    detail        TEXT,
    changes       TEXT NOT NULL,              -- JSON array of FieldChange
    more_changes  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX audit_log_time ON audit_log (time_ms);
CREATE INDEX audit_log_object ON audit_log (object_type, object_id);
CREATE INDEX audit_log_token ON audit_log (token_name COLLATE NOCASE);
