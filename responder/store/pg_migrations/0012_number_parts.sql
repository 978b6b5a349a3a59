-- Part of a number (README "Inbox search"), as SQLite's 0025: every suffix of three characters
-- or more (store/search.py PART_FROM) of each contact's number, with the number; the numbers
-- holding `0001` are a range of the key (`part >= '0001' AND part < '0002'`). `part` compares
-- bytewise (COLLATE "C") whatever the database's collation, so that range is the index's.
-- Derived from `contacts` alone and kept by its triggers (insert, delete, a change of number);
-- `migrate-to` does not copy it (the triggers fill it as the contacts arrive). No extension:
-- pg_trgm would need CREATE EXTENSION (README "Inbox search").
CREATE TABLE contact_number_parts (part text COLLATE "C" NOT NULL, phone text NOT NULL);
INSERT INTO contact_number_parts (part, phone)
SELECT substr(c.phone, n), c.phone FROM contacts AS c
CROSS JOIN LATERAL generate_series(1, length(c.phone) - 2) AS n;
-- The key after the rows: one sorted build, not an index insertion per row.
ALTER TABLE contact_number_parts ADD PRIMARY KEY (part, phone);
-- Once per statement, over the rows it inserted or deleted (transition tables): an import or
-- a copy of many contacts is one INSERT here, not one call per contact.
CREATE FUNCTION contact_number_parts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_number_parts (part, phone)
    SELECT substr(a.phone, n), a.phone FROM contact_numbers_added AS a
    CROSS JOIN LATERAL generate_series(1, length(a.phone) - 2) AS n
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE FUNCTION contact_number_parts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_number_parts AS p USING contact_numbers_removed AS r
    CROSS JOIN LATERAL generate_series(1, length(r.phone) - 2) AS n
    WHERE p.part = substr(r.phone, n) AND p.phone = r.phone;
    RETURN NULL;
END
$$;
CREATE TRIGGER contact_number_parts_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS contact_numbers_added
    FOR EACH STATEMENT EXECUTE FUNCTION contact_number_parts_added();
CREATE TRIGGER contact_number_parts_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS contact_numbers_removed
    FOR EACH STATEMENT EXECUTE FUNCTION contact_number_parts_removed();
-- A change of number (nothing changes one today): a row trigger, as a trigger on a column
-- cannot have transition tables.
CREATE FUNCTION contact_number_parts_renumbered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_number_parts WHERE phone = OLD.phone AND part IN (
        SELECT substr(OLD.phone, n) FROM generate_series(1, length(OLD.phone) - 2) AS n
    );
    INSERT INTO contact_number_parts (part, phone)
    SELECT substr(NEW.phone, n), NEW.phone FROM generate_series(1, length(NEW.phone) - 2) AS n
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER contact_number_parts_update AFTER UPDATE OF phone ON contacts
    FOR EACH ROW WHEN (NEW.phone IS DISTINCT FROM OLD.phone)
    EXECUTE FUNCTION contact_number_parts_renumbered();
