-- The recipient directory held by Ferry: every address a recipient
-- answers to (its primary address and its aliases), lower-cased, with the
-- primary address it belongs to. Read whole into memory at start (lookups
-- are O(1) there); written through the API in one transaction per request.
CREATE TABLE recipients (
    address          TEXT PRIMARY KEY,
    primary_address  TEXT NOT NULL
);
CREATE INDEX recipients_primary ON recipients (primary_address);
