-- Ferry's configuration: one row per server, one table per kind of object.
-- Each object keeps its validated model as JSON in `spec` (the model types in
-- src/model are the schema's single source of truth), a `version` for
-- optimistic concurrency (the API's ETag), and, where it has one, a sealed
-- `secret`: an argon2 hash for logins, an AEAD ciphertext for smart-host
-- passwords and private keys. Names are unique per kind, case-insensitively.

CREATE TABLE server (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    role            TEXT NOT NULL CHECK (role IN ('Edge', 'Hub')),
    server_name     TEXT NOT NULL,
    admin_token_sha256 TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

CREATE TABLE transport_settings (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE receive_connectors (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE send_connectors (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE accepted_domains (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX accepted_domains_domain ON accepted_domains (json_extract(spec, '$.domainName'));

CREATE TABLE credentials (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- `name` is the SHA-256 thumbprint: a certificate is stored once.
CREATE TABLE certificates (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
