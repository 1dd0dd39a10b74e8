-- ACME certificates: names Ferry keeps a certificate for from an ACME CA.
-- `secret` holds the sealed ACME account credentials once registered.
-- Issued certificates are rows of `certificates` whose spec names the
-- ACME certificate (`acme`).
CREATE TABLE acme_certificates (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
