-- Saved replies (DESIGN §11): texts the owners keep for the team, picked with `/` in the reply
-- box and filled in with the contact's fields. `name` is what an agent types.
CREATE TABLE saved_replies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    author TEXT,
    created_at TEXT NOT NULL
);
-- Failed messages by number: the inbox flags conversations whose last failure was not
-- retried (a partial index: failures are few next to the messages that went out).
CREATE INDEX messages_failed ON messages (phone, created_at) WHERE status = 'failed';
