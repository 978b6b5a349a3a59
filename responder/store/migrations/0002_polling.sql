-- Delivery-status polling for providers without push reports (MasSMS).
ALTER TABLE messages ADD COLUMN polls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN next_poll_at TEXT;
CREATE INDEX messages_to_poll ON messages (provider, next_poll_at)
    WHERE next_poll_at IS NOT NULL;
