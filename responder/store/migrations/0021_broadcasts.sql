-- Broadcasts (DESIGN §12): one text (a template) to a segment of contacts. The recipients are
-- written once, when the broadcast is created, so its counts always add up. A recipient is
-- 'pending' until the feeder (one holder at a time) queues its message(s), 'fed' after (its
-- state is then its messages' state), or 'skipped' / 'cancelled' (final, with a reason).
CREATE TABLE broadcasts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    segment TEXT NOT NULL DEFAULT '{}',         -- JSON: labels, fields, active_within_days
    via TEXT NOT NULL,
    send_at TEXT,
    status TEXT NOT NULL CHECK (
        status IN ('scheduled', 'running', 'paused', 'done', 'cancelled')
    ),
    recipients INTEGER NOT NULL DEFAULT 0,
    created_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX broadcasts_by_status ON broadcasts (status) WHERE status IN ('scheduled', 'running', 'paused');
CREATE TABLE broadcast_recipients (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id),
    phone TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'fed', 'skipped', 'cancelled')),
    error TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (broadcast_id, phone)
) WITHOUT ROWID;
CREATE INDEX broadcast_recipients_pending ON broadcast_recipients (broadcast_id, phone)
    WHERE status = 'pending';
-- The messages a broadcast queued; NULL for every other message.
ALTER TABLE messages ADD COLUMN broadcast_id INTEGER;
-- Covering what a broadcast's counts read (store/broadcast_sql.py's COUNTS).
CREATE INDEX messages_by_broadcast ON messages (broadcast_id, phone, status, next_attempt_at)
    WHERE broadcast_id IS NOT NULL;
