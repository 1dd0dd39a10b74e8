-- Performance (issue 22): an event's recipients are one b-tree, keyed by
-- what they are searched by. Before, each recipient row went into a rowid
-- table and two indexes (address, event) and (event): three b-tree writes
-- per recipient of every event, three events a message. Pruning, which
-- used the (event) index, now finds the rows from the old events' own
-- recipient lists (`events.recipients`, the same strings).
CREATE TABLE event_recipients_by_address (
    address  TEXT NOT NULL COLLATE NOCASE,
    event    INTEGER NOT NULL,
    PRIMARY KEY (address, event)
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_recipients_by_address (address, event)
    SELECT address, event FROM event_recipients;
DROP TABLE event_recipients;
ALTER TABLE event_recipients_by_address RENAME TO event_recipients;
