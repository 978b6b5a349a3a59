-- Part of a number (README "Inbox search"), as SQLite's 0025: every suffix of three characters
-- or more (store/search.py PART_FROM) of each contact's number, with the number; the numbers
-- holding `0001` are a range of the key (`part >= '0001' AND part < '0002'`). `part` compares
-- bytewise (COLLATE "C") whatever the database's collation, so that range is the index's.
-- Derived from `contacts` alone and kept by its triggers (insert, delete, a change of number);
-- `migrate-to` does not copy it (the triggers fill it as the contacts arrive). No extension:
-- pg_trgm would need CREATE EXTENSION (README "Inbox search").
CREATE TABLE contact_number_parts (part text COLLATE "C" NOT NULL, phone text NOT NULL);
-- New contacts once per statement, over the rows it inserted (a transition table): an import
-- or a copy of many contacts is one INSERT here, not one call per contact.
CREATE FUNCTION contact_number_parts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_number_parts (part, phone)
    SELECT substr(a.phone, n), a.phone FROM contact_numbers_added AS a
    CROSS JOIN LATERAL generate_series(1, length(a.phone) - 2) AS n
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER contact_number_parts_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS contact_numbers_added
    FOR EACH STATEMENT EXECUTE FUNCTION contact_number_parts_added();
-- A contact deleted (`responder forget`), or a change of number (nothing changes one today):
-- once per row, each of its parts by the key. (A statement's join with its transition table,
-- planned without statistics, read the whole table: 50-200 ms a forget at 100,000 rows.)
CREATE FUNCTION contact_number_parts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_number_parts WHERE phone = OLD.phone AND part = ANY (ARRAY(
        SELECT substr(OLD.phone, n) FROM generate_series(1, length(OLD.phone) - 2) AS n
    ));
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO contact_number_parts (part, phone)
        SELECT substr(NEW.phone, n), NEW.phone
        FROM generate_series(1, length(NEW.phone) - 2) AS n
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER contact_number_parts_delete AFTER DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION contact_number_parts_removed();
CREATE TRIGGER contact_number_parts_update AFTER UPDATE OF phone ON contacts
    FOR EACH ROW WHEN (NEW.phone IS DISTINCT FROM OLD.phone)
    EXECUTE FUNCTION contact_number_parts_removed();
-- The contacts already there, once the triggers are in place: creating them locked the table
-- of contacts against writes until this migration commits, so none is missed by both.
INSERT INTO contact_number_parts (part, phone)
SELECT substr(c.phone, n), c.phone FROM contacts AS c
CROSS JOIN LATERAL generate_series(1, length(c.phone) - 2) AS n;
-- The key after the rows: one sorted build, not an index insertion per row.
ALTER TABLE contact_number_parts ADD PRIMARY KEY (part, phone);
-- Statistics now, not at autovacuum's next pass: the planner's ranges of `part` from the first
-- search on.
ANALYZE contact_number_parts;
