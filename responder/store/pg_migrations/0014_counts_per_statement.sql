-- The dashboard's count changes (0010) once per statement, not once per row: a statement
-- that writes many messages (a group of webhooks, a batch of send outcomes) appends one change
-- per count it moves, summed, instead of one INSERT per message (28% of the time of a group's
-- insert of ten messages, measured on `large`: README "Steady latency"). The rows a statement
-- wrote or changed are read from its transition tables. An update counts -1 for each row as
-- it was and +1 as it is, summed per key: a row whose counted columns did not change nets to
-- nothing, and so does the statement.
DROP TRIGGER message_counts_insert ON messages;
DROP TRIGGER message_counts_update ON messages;
DROP FUNCTION message_counts_changed();

CREATE FUNCTION message_counts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_count_changes (hour, direction, provider, status, rule, n)
    SELECT message_counts_hour(created_at), direction, COALESCE(provider, ''), status,
        COALESCE(rule, ''), count(*)
    FROM messages_added GROUP BY 1, 2, 3, 4, 5;
    RETURN NULL;
END
$$;

CREATE FUNCTION message_counts_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_count_changes (hour, direction, provider, status, rule, n)
    SELECT hour, direction, provider, status, rule, sum(n) FROM (
        SELECT message_counts_hour(created_at) AS hour, direction,
            COALESCE(provider, '') AS provider, status, COALESCE(rule, '') AS rule, -1 AS n
        FROM messages_before
        UNION ALL
        SELECT message_counts_hour(created_at), direction, COALESCE(provider, ''), status,
            COALESCE(rule, ''), 1
        FROM messages_after
    ) AS moved
    GROUP BY hour, direction, provider, status, rule
    HAVING sum(n) <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER message_counts_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS messages_added
    FOR EACH STATEMENT EXECUTE FUNCTION message_counts_added();
CREATE TRIGGER message_counts_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS messages_before NEW TABLE AS messages_after
    FOR EACH STATEMENT EXECUTE FUNCTION message_counts_moved();
