-- Named API tokens (issue 19): each with a role, an optional expiry, and
-- the time and address of its last use. Only the SHA-256 of the secret is
-- kept (tokens are 256 random bits, so no slow hash is needed). The
-- bootstrap admin token (from --admin-token or the generated admin-token
-- file) is one of them, `bootstrap = 1`; revoked tokens stay listed. A
-- token may be bound to a client certificate (mutual TLS over --api-tls).

CREATE TABLE api_tokens (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role            TEXT NOT NULL CHECK (role IN ('View-Only', 'Operator', 'Administrator')),
    token_sha256    TEXT NOT NULL UNIQUE,
    bootstrap       INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    last_used_at    TEXT,
    last_used_from  TEXT,
    -- Mutual TLS: the SHA-256 (hex) of a client certificate that stands
    -- for this token over HTTPS.
    client_certificate_sha256 TEXT UNIQUE
);

INSERT INTO api_tokens (id, name, role, token_sha256, bootstrap, created_at)
    SELECT '00000000-0000-0000-0000-00000000a001', 'admin', 'Administrator', admin_token_sha256, 1, created_at
    FROM server WHERE id = 1;
