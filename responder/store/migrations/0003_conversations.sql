-- Conversation protections and multi-step flows.
ALTER TABLE contacts ADD COLUMN flagged INTEGER NOT NULL DEFAULT 0;   -- loop guard tripped
ALTER TABLE contacts ADD COLUMN flow TEXT;                           -- JSON state of a running flow
ALTER TABLE contacts ADD COLUMN last_activity_at TEXT;               -- last message either way
-- Recent messages of a number, for duplicate detection and reply limits.
CREATE INDEX messages_by_phone_time ON messages (phone, created_at);
