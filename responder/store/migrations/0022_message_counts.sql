-- The dashboard's numbers, kept by the writer (DESIGN §13): messages per UTC hour of their
-- creation × direction × provider × status × rule, for any period without reading messages.
-- UTC hours, not shop days: a day in any whole-hour time zone is 24 of them, so a changed
-- `timezone` setting still counts right. Kept by triggers, so every statement that writes or
-- changes a message (webhooks, the outbox, reports, retries, broadcasts...) keeps them in its
-- own transaction (see below). Erasure (retention, `responder forget`) keeps the counts: no
-- DELETE trigger.
-- A migration that rebuilds `messages` drops these triggers with it: it must create them again.
CREATE TABLE message_counts (
    hour TEXT NOT NULL,             -- 'YYYY-MM-DDTHH', UTC: the first 13 characters of created_at
    direction TEXT NOT NULL,
    provider TEXT NOT NULL,         -- '' when none
    status TEXT NOT NULL,
    rule TEXT NOT NULL,             -- '' when none
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, direction, provider, status, rule)
) WITHOUT ROWID;
-- What the triggers append (below); folded into the tables above before each commit.
CREATE TABLE message_count_changes (
    hour TEXT NOT NULL,
    direction TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    rule TEXT NOT NULL,
    n INTEGER NOT NULL
);
-- The same counts per UTC day (a long period reads its whole days here, only its first and
-- last hours from message_counts), and messages per hour and direction (the daily chart).
CREATE TABLE message_days (
    day TEXT NOT NULL,              -- 'YYYY-MM-DD', UTC
    direction TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    rule TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (day, direction, provider, status, rule)
) WITHOUT ROWID;
CREATE TABLE message_hours (
    hour TEXT NOT NULL,
    direction TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, direction)
) WITHOUT ROWID;
INSERT INTO message_counts (hour, direction, provider, status, rule, n)
SELECT substr(created_at, 1, 13), direction, COALESCE(provider, ''), status, COALESCE(rule, ''),
    COUNT(*)
FROM messages GROUP BY 1, 2, 3, 4, 5;
INSERT INTO message_days (day, direction, provider, status, rule, n)
SELECT substr(hour, 1, 10), direction, provider, status, rule, SUM(n)
FROM message_counts GROUP BY 1, 2, 3, 4, 5;
INSERT INTO message_hours (hour, direction, n)
SELECT hour, direction, SUM(n) FROM message_counts GROUP BY 1, 2;
-- The triggers only append +1/-1 rows to message_count_changes (an append to a table with
-- no index: a fraction of the cost of updating three tables for each message and status
-- change); every write transaction of the store folds them into the three tables before it
-- commits (store/sqlite_counts.py: fold), so they are empty between transactions. Readers add
-- any left there (a write that did not go through the store).
CREATE TRIGGER message_counts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO message_count_changes (hour, direction, provider, status, rule, n)
    VALUES (substr(NEW.created_at, 1, 13), NEW.direction, COALESCE(NEW.provider, ''),
        NEW.status, COALESCE(NEW.rule, ''), 1);
END;
CREATE TRIGGER message_counts_update
AFTER UPDATE OF status, provider, rule, direction, created_at ON messages
WHEN OLD.status IS NOT NEW.status OR OLD.provider IS NOT NEW.provider
    OR OLD.rule IS NOT NEW.rule OR OLD.direction IS NOT NEW.direction
    OR substr(OLD.created_at, 1, 13) IS NOT substr(NEW.created_at, 1, 13)
BEGIN
    INSERT INTO message_count_changes (hour, direction, provider, status, rule, n)
    VALUES (substr(OLD.created_at, 1, 13), OLD.direction, COALESCE(OLD.provider, ''),
        OLD.status, COALESCE(OLD.rule, ''), -1),
        (substr(NEW.created_at, 1, 13), NEW.direction, COALESCE(NEW.provider, ''),
        NEW.status, COALESCE(NEW.rule, ''), 1);
END;

-- The inbox's tab counts, kept the same way (one row; a person's own "mine" is read through
-- contacts_by_assignee): reading them no longer counts every contact on each poll. Only
-- conversations count: an imported contact that never wrote nor was written to (no
-- last_activity_at, last_message_at at 1970: migration 0020) is not one.
CREATE TABLE conversation_counts (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    total INTEGER NOT NULL,
    human INTEGER NOT NULL,
    needs_attention INTEGER NOT NULL,
    opted_out INTEGER NOT NULL,
    unread INTEGER NOT NULL,
    unassigned INTEGER NOT NULL,
    resolved INTEGER NOT NULL
);
-- PostgreSQL's appended changes (see message_count_changes); empty here.
CREATE TABLE conversation_count_changes (
    total INTEGER NOT NULL,
    human INTEGER NOT NULL,
    needs_attention INTEGER NOT NULL,
    opted_out INTEGER NOT NULL,
    unread INTEGER NOT NULL,
    unassigned INTEGER NOT NULL,
    resolved INTEGER NOT NULL
);
INSERT INTO conversation_counts
SELECT 1, COALESCE(SUM((last_activity_at IS NOT NULL AND last_message_at > '1970-01-01T00:00:00.000000Z')), 0), COALESCE(SUM(((last_activity_at IS NOT NULL AND last_message_at > '1970-01-01T00:00:00.000000Z') AND mode = 'human')), 0), COALESCE(SUM(((last_activity_at IS NOT NULL AND last_message_at > '1970-01-01T00:00:00.000000Z') AND needs_attention <> 0)), 0), COALESCE(SUM(((last_activity_at IS NOT NULL AND last_message_at > '1970-01-01T00:00:00.000000Z') AND opted_out <> 0)), 0), COALESCE(SUM(((last_activity_at IS NOT NULL AND last_message_at > '1970-01-01T00:00:00.000000Z') AND unread > 0)), 0), COALESCE(SUM(((last_activity_at IS NOT NULL AND last_message_at > '1970-01-01T00:00:00.000000Z') AND assigned_to IS NULL)), 0), COALESCE(SUM(((last_activity_at IS NOT NULL AND last_message_at > '1970-01-01T00:00:00.000000Z') AND status = 'resolved')), 0)
FROM contacts;
CREATE TRIGGER conversation_counts_insert AFTER INSERT ON contacts
BEGIN
    UPDATE conversation_counts SET
        total = total + (NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z'),
        human = human + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.mode = 'human'),
        needs_attention = needs_attention + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.needs_attention <> 0),
        opted_out = opted_out + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.opted_out <> 0),
        unread = unread + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.unread > 0),
        unassigned = unassigned + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.assigned_to IS NULL),
        resolved = resolved + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.status = 'resolved');
END;
CREATE TRIGGER conversation_counts_update
AFTER UPDATE OF mode, needs_attention, opted_out, unread, assigned_to, status, last_activity_at,
    last_message_at ON contacts
WHEN (OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') IS NOT (NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.mode = 'human') IS NOT ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.mode = 'human') OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.needs_attention <> 0) IS NOT ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.needs_attention <> 0) OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.opted_out <> 0) IS NOT ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.opted_out <> 0) OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.unread > 0) IS NOT ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.unread > 0) OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.assigned_to IS NULL) IS NOT ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.assigned_to IS NULL) OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.status = 'resolved') IS NOT ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.status = 'resolved')
BEGIN
    UPDATE conversation_counts SET
        total = total - (OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') + (NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z'),
        human = human - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.mode = 'human') + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.mode = 'human'),
        needs_attention = needs_attention - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.needs_attention <> 0) + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.needs_attention <> 0),
        opted_out = opted_out - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.opted_out <> 0) + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.opted_out <> 0),
        unread = unread - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.unread > 0) + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.unread > 0),
        unassigned = unassigned - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.assigned_to IS NULL) + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.assigned_to IS NULL),
        resolved = resolved - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.status = 'resolved') + ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00.000000Z') AND NEW.status = 'resolved');
END;
CREATE TRIGGER conversation_counts_delete AFTER DELETE ON contacts
BEGIN
    UPDATE conversation_counts SET
        total = total - (OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z'),
        human = human - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.mode = 'human'),
        needs_attention = needs_attention - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.needs_attention <> 0),
        opted_out = opted_out - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.opted_out <> 0),
        unread = unread - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.unread > 0),
        unassigned = unassigned - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.assigned_to IS NULL),
        resolved = resolved - ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00.000000Z') AND OLD.status = 'resolved');
END;

-- Keyset pages of conversations (newest first, then by number) and the few in a state: each
-- filter of the inbox reads its own short index instead of walking every contact.
DROP INDEX contacts_by_last_message;
CREATE INDEX contacts_by_last_message ON contacts (last_message_at DESC, phone);
CREATE INDEX contacts_needing_attention ON contacts (last_message_at DESC, phone)
    WHERE needs_attention = 1;
CREATE INDEX contacts_with_people ON contacts (last_message_at DESC, phone)
    WHERE mode = 'human';
CREATE INDEX contacts_opted_out ON contacts (last_message_at DESC, phone) WHERE opted_out = 1;
CREATE INDEX contacts_resolved ON contacts (last_message_at DESC, phone)
    WHERE status = 'resolved';
