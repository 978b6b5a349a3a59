-- Scheduled sends and failover.
ALTER TABLE messages ADD COLUMN send_at TEXT;         -- when the customer should get it
ALTER TABLE messages ADD COLUMN failover_from TEXT;   -- the provider that could not take it
DROP INDEX messages_outbox;
CREATE INDEX messages_outbox ON messages (next_attempt_at) WHERE status IN ('queued', 'scheduled');
