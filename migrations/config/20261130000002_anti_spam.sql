-- The anti-spam agents' configuration.
-- `settings` holds singleton documents by kind (the transport agents'
-- order, the IP Block and Allow list configs, …), each with a version for
-- If-Match. A kind with no row yet is at its role's default (version 0).
CREATE TABLE settings (
    kind        TEXT PRIMARY KEY,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- IP Block and Allow list entries; `name` is `<list>:<range>`, so a range
-- is on a list once.
CREATE TABLE ip_list_entries (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- IP Block and Allow list providers (DNSBLs and DNS allow lists).
CREATE TABLE ip_list_providers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
