-- The team (DESIGN §11): people who sign in, their personal API tokens, and the audit trail.
-- The built-in owner `admin` (who signs in with RESPONDER_ADMIN_TOKEN) has no row here.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('owner', 'agent')),
    password_hash TEXT NOT NULL,          -- argon2id, with its parameters and salt
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
-- `hash` is the SHA-256 of the token: a copy of the database opens nothing.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_by_user ON api_tokens (user);
CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT,
    action TEXT NOT NULL,
    subject TEXT,
    detail TEXT NOT NULL DEFAULT '{}'     -- JSON object
);
-- The person who wrote an outbound message; NULL for the bot and the command line.
ALTER TABLE messages ADD COLUMN author TEXT;
