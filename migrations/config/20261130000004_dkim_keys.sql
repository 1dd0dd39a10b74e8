-- DKIM signing keys: `name` is `<selector>._domainkey.<domain>`, where the
-- key's record is published; `secret` holds the sealed private key.
CREATE TABLE dkim_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
