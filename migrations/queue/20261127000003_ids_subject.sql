-- Internal ids are never reused: SQLite hands out MAX(id)+1, so deleting
-- the newest message would give its id to the next one, and message
-- tracking would mix two messages' histories. The writer takes ids from
-- this counter instead.
CREATE TABLE id_counter (
    one   INTEGER PRIMARY KEY CHECK (one = 1),
    last  INTEGER NOT NULL
);
INSERT INTO id_counter (one, last) VALUES (1, COALESCE((SELECT MAX(id) FROM messages), 0));

-- The Subject header, for message tracking (NULL when subject logging is off).
ALTER TABLE messages ADD COLUMN subject TEXT;
