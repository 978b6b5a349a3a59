-- The dashboard's numbers, kept by the writer (DESIGN §13), as SQLite's 0022: messages per UTC
-- hour of their creation × direction × provider × status × rule ('YYYY-MM-DDTHH' text, as on
-- SQLite). Kept by a trigger, in the transaction of every statement that writes or changes a
-- message; erasure (retention, `responder forget`) keeps the counts.
--
-- Several instances write at once: had each transaction updated the shared count rows, they
-- would queue behind one another's row locks (and deadlock when two took the same rows in
-- different orders). So the trigger only appends +1/-1 rows to message_count_changes, which
-- locks nothing shared, and a sweep (PostgresStore.fold_counts, every few seconds) moves them
-- into message_counts. Readers add both, so a count is right the moment its message commits.
CREATE TABLE message_counts (
    hour text NOT NULL,
    direction text NOT NULL,
    provider text NOT NULL,         -- '' when none
    status text NOT NULL,
    rule text NOT NULL,             -- '' when none
    n bigint NOT NULL,
    PRIMARY KEY (hour, direction, provider, status, rule)
);
CREATE TABLE message_count_changes (
    hour text NOT NULL,
    direction text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    rule text NOT NULL,
    n bigint NOT NULL
);
CREATE INDEX message_count_changes_by_hour ON message_count_changes (hour);
-- The same counts per UTC day (a long period reads its whole days here, only its first and
-- last hours from message_counts), and per hour and direction (the daily chart); the sweep
-- folds the changes into all three.
CREATE TABLE message_days (
    day text NOT NULL,
    direction text NOT NULL,
    provider text NOT NULL,
    status text NOT NULL,
    rule text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (day, direction, provider, status, rule)
);
CREATE TABLE message_hours (
    hour text NOT NULL,
    direction text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (hour, direction)
);

CREATE FUNCTION message_counts_hour(at timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24');

CREATE FUNCTION message_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.status IS NOT DISTINCT FROM NEW.status
            AND OLD.provider IS NOT DISTINCT FROM NEW.provider
            AND OLD.rule IS NOT DISTINCT FROM NEW.rule
            AND OLD.direction IS NOT DISTINCT FROM NEW.direction
            AND message_counts_hour(OLD.created_at) = message_counts_hour(NEW.created_at) THEN
            RETURN NULL;
        END IF;
        INSERT INTO message_count_changes (hour, direction, provider, status, rule, n)
        VALUES (message_counts_hour(OLD.created_at), OLD.direction, COALESCE(OLD.provider, ''),
            OLD.status, COALESCE(OLD.rule, ''), -1),
            (message_counts_hour(NEW.created_at), NEW.direction, COALESCE(NEW.provider, ''),
            NEW.status, COALESCE(NEW.rule, ''), 1);
    ELSE
        INSERT INTO message_count_changes (hour, direction, provider, status, rule, n)
        VALUES (message_counts_hour(NEW.created_at), NEW.direction, COALESCE(NEW.provider, ''),
            NEW.status, COALESCE(NEW.rule, ''), 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER message_counts_insert AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION message_counts_changed();
CREATE TRIGGER message_counts_update
    AFTER UPDATE OF status, provider, rule, direction, created_at ON messages
    FOR EACH ROW EXECUTE FUNCTION message_counts_changed();

INSERT INTO message_counts (hour, direction, provider, status, rule, n)
SELECT message_counts_hour(created_at), direction, COALESCE(provider, ''), status,
    COALESCE(rule, ''), COUNT(*)
FROM messages GROUP BY 1, 2, 3, 4, 5;
INSERT INTO message_days (day, direction, provider, status, rule, n)
SELECT substr(hour, 1, 10), direction, provider, status, rule, sum(n)
FROM message_counts GROUP BY 1, 2, 3, 4, 5;
INSERT INTO message_hours (hour, direction, n)
SELECT hour, direction, sum(n) FROM message_counts GROUP BY 1, 2;

-- The inbox's tab counts, kept the same way (SQLite's 0022): one row, and appended changes
-- folded into it by the same sweep. A person's own "mine" is read through contacts_by_assignee.
-- Only conversations count: an imported contact that never wrote nor was written to (no
-- last_activity_at, last_message_at at 1970: migration 0008) is not one.
CREATE TABLE conversation_counts (
    id integer PRIMARY KEY CHECK (id = 1),
    total bigint NOT NULL,
    human bigint NOT NULL,
    needs_attention bigint NOT NULL,
    opted_out bigint NOT NULL,
    unread bigint NOT NULL,
    unassigned bigint NOT NULL,
    resolved bigint NOT NULL
);
CREATE TABLE conversation_count_changes (
    total bigint NOT NULL,
    human bigint NOT NULL,
    needs_attention bigint NOT NULL,
    opted_out bigint NOT NULL,
    unread bigint NOT NULL,
    unassigned bigint NOT NULL,
    resolved bigint NOT NULL
);
INSERT INTO conversation_counts
SELECT 1, count(*) FILTER (WHERE (c.last_activity_at IS NOT NULL AND c.last_message_at > '1970-01-01T00:00:00+00:00')), count(*) FILTER (WHERE ((c.last_activity_at IS NOT NULL AND c.last_message_at > '1970-01-01T00:00:00+00:00') AND c.mode = 'human')), count(*) FILTER (WHERE ((c.last_activity_at IS NOT NULL AND c.last_message_at > '1970-01-01T00:00:00+00:00') AND c.needs_attention)), count(*) FILTER (WHERE ((c.last_activity_at IS NOT NULL AND c.last_message_at > '1970-01-01T00:00:00+00:00') AND c.opted_out)), count(*) FILTER (WHERE ((c.last_activity_at IS NOT NULL AND c.last_message_at > '1970-01-01T00:00:00+00:00') AND c.unread > 0)), count(*) FILTER (WHERE ((c.last_activity_at IS NOT NULL AND c.last_message_at > '1970-01-01T00:00:00+00:00') AND c.assigned_to IS NULL)), count(*) FILTER (WHERE ((c.last_activity_at IS NOT NULL AND c.last_message_at > '1970-01-01T00:00:00+00:00') AND c.status = 'resolved'))
FROM contacts AS c;

CREATE FUNCTION conversation_counts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO conversation_count_changes VALUES (
            -(OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00')::int,
            -((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.mode = 'human')::int,
            -((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.needs_attention)::int,
            -((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.opted_out)::int,
            -((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.unread > 0)::int,
            -((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.assigned_to IS NULL)::int,
            -((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.status = 'resolved')::int);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO conversation_count_changes VALUES (
            (NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00')::int,
            ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.mode = 'human')::int,
            ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.needs_attention)::int,
            ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.opted_out)::int,
            ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.unread > 0)::int,
            ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.assigned_to IS NULL)::int,
            ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.status = 'resolved')::int);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversation_counts_insert_delete AFTER INSERT OR DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION conversation_counts_changed();
CREATE TRIGGER conversation_counts_update AFTER UPDATE ON contacts FOR EACH ROW
    WHEN ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') IS DISTINCT FROM (NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00')
        OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.mode = 'human') IS DISTINCT FROM ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.mode = 'human')
        OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.needs_attention) IS DISTINCT FROM ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.needs_attention)
        OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.opted_out) IS DISTINCT FROM ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.opted_out)
        OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.unread > 0) IS DISTINCT FROM ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.unread > 0)
        OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.assigned_to IS NULL) IS DISTINCT FROM ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.assigned_to IS NULL)
        OR ((OLD.last_activity_at IS NOT NULL AND OLD.last_message_at > '1970-01-01T00:00:00+00:00') AND OLD.status = 'resolved') IS DISTINCT FROM ((NEW.last_activity_at IS NOT NULL AND NEW.last_message_at > '1970-01-01T00:00:00+00:00') AND NEW.status = 'resolved'))
    EXECUTE FUNCTION conversation_counts_changed();

-- The few conversations in a state, each filter of the inbox on its own short index.
CREATE INDEX contacts_needing_attention ON contacts (last_message_at DESC, phone)
    WHERE needs_attention;
CREATE INDEX contacts_with_people ON contacts (last_message_at DESC, phone)
    WHERE mode = 'human';
CREATE INDEX contacts_opted_out ON contacts (last_message_at DESC, phone) WHERE opted_out;
CREATE INDEX contacts_resolved ON contacts (last_message_at DESC, phone)
    WHERE status = 'resolved';

-- A conversation opens at its newest messages and pages back by id (`before`), as SQLite's
-- messages_by_phone has always allowed; (phone, created_at) would sort a busy number's
-- every message for each page.
CREATE INDEX messages_by_phone ON messages (phone, id);
