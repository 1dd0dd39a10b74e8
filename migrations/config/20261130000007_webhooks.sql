-- Event webhooks: subscriptions to message tracking events, delivered as
-- signed JSON. `secret` holds the sealed HMAC key.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL CHECK (json_valid(spec)),
    secret      BLOB,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
