-- The dashboard's numbers, kept by the writer (DESIGN §13): messages per UTC hour of their
-- creation × direction × provider × status × rule, for any period without reading messages.
-- UTC hours, not shop days: a day in any whole-hour time zone is 24 of them, so a changed
-- `timezone` setting still counts right. Kept by triggers, so every statement that writes or
-- changes a message (webhooks, the outbox, reports, retries, broadcasts...) keeps them in its
-- own transaction. Erasure (retention, `responder forget`) keeps the counts: no DELETE trigger.
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
-- PostgreSQL's writers append to this one and a sweep folds it into message_counts (no row
-- lock shared by concurrent writers); SQLite has one writer and updates message_counts in
-- place, so here it stays empty. It exists so that both schemas have the same tables.
CREATE TABLE message_count_changes (
    hour TEXT NOT NULL,
    direction TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    rule TEXT NOT NULL,
    n INTEGER NOT NULL
);
INSERT INTO message_counts (hour, direction, provider, status, rule, n)
SELECT substr(created_at, 1, 13), direction, COALESCE(provider, ''), status, COALESCE(rule, ''),
    COUNT(*)
FROM messages GROUP BY 1, 2, 3, 4, 5;
CREATE TRIGGER message_counts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO message_counts (hour, direction, provider, status, rule, n)
    VALUES (substr(NEW.created_at, 1, 13), NEW.direction, COALESCE(NEW.provider, ''),
        NEW.status, COALESCE(NEW.rule, ''), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER message_counts_update
AFTER UPDATE OF status, provider, rule, direction, created_at ON messages
WHEN OLD.status IS NOT NEW.status OR OLD.provider IS NOT NEW.provider
    OR OLD.rule IS NOT NEW.rule OR OLD.direction IS NOT NEW.direction
    OR substr(OLD.created_at, 1, 13) IS NOT substr(NEW.created_at, 1, 13)
BEGIN
    UPDATE message_counts SET n = n - 1
    WHERE hour = substr(OLD.created_at, 1, 13) AND direction = OLD.direction
        AND provider = COALESCE(OLD.provider, '') AND status = OLD.status
        AND rule = COALESCE(OLD.rule, '');
    INSERT INTO message_counts (hour, direction, provider, status, rule, n)
    VALUES (substr(NEW.created_at, 1, 13), NEW.direction, COALESCE(NEW.provider, ''),
        NEW.status, COALESCE(NEW.rule, ''), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
