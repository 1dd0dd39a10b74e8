-- Queue depth (issue 22): nothing the scheduler does on every pass, and
-- nothing the queue viewer's first page does, may grow with the queue.

-- A queue's due recipients in order: the scheduler reads the first few of
-- each queue and status, not every pending recipient of the queue.
DROP INDEX recipients_hop;
CREATE INDEX recipients_hop ON recipients (next_hop, status, next_attempt_ms);

-- Expiry and delay notices look only at messages older than their cutoff.
CREATE INDEX messages_received ON messages (received_ms);

-- The number of messages, kept by the database itself: the viewer's total
-- without counting a million rows.
CREATE TABLE message_count (n INTEGER NOT NULL);
INSERT INTO message_count SELECT COUNT(*) FROM messages;
CREATE TRIGGER message_count_insert AFTER INSERT ON messages
BEGIN
    UPDATE message_count SET n = n + 1;
END;
CREATE TRIGGER message_count_delete AFTER DELETE ON messages
BEGIN
    UPDATE message_count SET n = n - 1;
END;
