-- A new outbound status, 'unconfirmed': the provider answered a send with HTTP 200 in words
-- that could not be read, so the message may have gone out; it is neither retried nor failed.
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt with every column,
-- row and index it had (the runner turns foreign keys off around migrations and checks them
-- before committing, as SQLite's documented procedure for such changes says).
CREATE TABLE messages_rebuilt (
    id INTEGER PRIMARY KEY,
    phone TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    text TEXT NOT NULL,
    status TEXT NOT NULL CHECK (
        status IN (
            'received', 'queued', 'sending', 'sent', 'delivered', 'failed', 'scheduled',
            'unconfirmed'
        )
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
    updated_at TEXT NOT NULL,
    polls INTEGER NOT NULL DEFAULT 0,
    next_poll_at TEXT,
    send_at TEXT,                  -- when the customer should get it
    failover_from TEXT,            -- the provider that could not take it
    claimed_by TEXT,               -- the instance sending it
    lease_until TEXT               -- until when that claim holds
);
INSERT INTO messages_rebuilt (
    id, phone, direction, text, status, origin, rule, provider, provider_id, line, error,
    attempts, next_attempt_at, created_at, updated_at, polls, next_poll_at, send_at,
    failover_from, claimed_by, lease_until
)
SELECT
    id, phone, direction, text, status, origin, rule, provider, provider_id, line, error,
    attempts, next_attempt_at, created_at, updated_at, polls, next_poll_at, send_at,
    failover_from, claimed_by, lease_until
FROM messages;
DROP TABLE messages;
ALTER TABLE messages_rebuilt RENAME TO messages;
CREATE INDEX messages_by_phone ON messages (phone, id);
CREATE INDEX messages_by_provider_id ON messages (provider, provider_id)
    WHERE provider_id IS NOT NULL;
CREATE INDEX messages_to_poll ON messages (provider, next_poll_at)
    WHERE next_poll_at IS NOT NULL;
CREATE INDEX messages_outbox ON messages (next_attempt_at) WHERE status IN ('queued', 'scheduled');
CREATE INDEX messages_in_flight ON messages (lease_until) WHERE status = 'sending';
