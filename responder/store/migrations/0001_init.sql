-- Contacts: one row per phone number, holding the conversation's state.
CREATE TABLE contacts (
    phone TEXT PRIMARY KEY,
    mode TEXT NOT NULL DEFAULT 'bot' CHECK (mode IN ('bot', 'human')),
    opted_out INTEGER NOT NULL DEFAULT 0,
    opted_out_at TEXT,
    opt_out_message_id INTEGER,
    fields TEXT NOT NULL DEFAULT '{}',
    unread INTEGER NOT NULL DEFAULT 0,
    needs_attention INTEGER NOT NULL DEFAULT 0,
    first_seen_at TEXT NOT NULL,
    last_message_at TEXT NOT NULL,
    last_text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX contacts_by_last_message ON contacts (last_message_at DESC);

-- Messages in both directions. Outbound rows in 'queued' are the outbox.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    phone TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    text TEXT NOT NULL,
    status TEXT NOT NULL CHECK (
        status IN ('received', 'queued', 'sending', 'sent', 'delivered', 'failed', 'scheduled')
    ),
    origin TEXT NOT NULL,          -- in: the provider; out: 'auto', 'agent' or 'cli'
    rule TEXT,
    provider TEXT,
    provider_id TEXT,
    line TEXT,                     -- in: the gateway line it reached; out: the line that delivered it
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX messages_by_phone ON messages (phone, id);
CREATE INDEX messages_outbox ON messages (next_attempt_at) WHERE status = 'queued';
CREATE INDEX messages_by_provider_id ON messages (provider, provider_id)
    WHERE provider_id IS NOT NULL;

-- Every attempt to hand an outbound message to a provider.
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages (id),
    at TEXT NOT NULL,
    provider TEXT NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT
);
CREATE INDEX attempts_by_message ON attempts (message_id);

-- Webhook requests that could not be used, kept raw so nothing a provider sent is lost.
CREATE TABLE rejected_webhooks (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT,
    reason TEXT NOT NULL
);

-- Generated secrets and other process-wide values.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
