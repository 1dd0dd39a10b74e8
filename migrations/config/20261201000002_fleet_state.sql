-- The shared configuration's revision this node last applied or wrote
-- (`--config-store postgres://…`); 0: never joined a fleet.
CREATE TABLE fleet_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    revision    INTEGER NOT NULL
);
INSERT INTO fleet_state (id, revision) VALUES (1, 0);
