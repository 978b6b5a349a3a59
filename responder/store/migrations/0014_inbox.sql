-- The team inbox (DESIGN §11): who handles a conversation, whether it is resolved, internal
-- notes (a table of their own: the outbox never reads it, so a note can never be sent), and
-- who is typing where (rows that expire after a few seconds, shared by every instance).
ALTER TABLE contacts ADD COLUMN assigned_to TEXT;
ALTER TABLE contacts ADD COLUMN status TEXT NOT NULL DEFAULT 'open'
    CHECK (status IN ('open', 'resolved'));
-- Partial: most conversations are nobody's, and every message moves last_message_at.
CREATE INDEX contacts_by_assignee ON contacts (assigned_to, last_message_at)
    WHERE assigned_to IS NOT NULL;
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    phone TEXT NOT NULL REFERENCES contacts (phone) ON DELETE CASCADE,
    author TEXT,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX notes_by_phone ON notes (phone, id);
CREATE TABLE typing (
    phone TEXT NOT NULL,
    user TEXT NOT NULL,
    until TEXT NOT NULL,
    PRIMARY KEY (phone, user)
) WITHOUT ROWID;
