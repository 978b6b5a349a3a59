-- Part of a number (README "Inbox search") by a trigram index over a table of the numbers, one
-- row each, in place of 0012's table of every suffix of every number and 0013's sweep writing
-- them. On `large` (500,000 contacts) at 1,000 webhooks/s, the sweep wrote 500 new numbers'
-- suffixes in 128 ms (ten keys each at random places of a key of 526 MB, most of them a full
-- page image in the WAL): a third of a core. A number here is one row, written by the trigger
-- in the transaction that creates the contact (5 ms for 500), and its trigrams wait in the GIN
-- index's pending list until the service's sweep moves them (gin_clean_pending_list, 10-13 ms
-- for 500, as the words index's); on `large` the index is 16 MB and the key 15 MB.
-- `phone LIKE '%41212%'` reads the numbers holding those digits through the index, the
-- pending list included: nothing is left unfound while the sweep has not run.
--
-- pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it, as
-- `responder` does here when it is not there yet. A user who may not gets a message saying
-- what to run instead, and nothing of this migration is applied.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE EXCEPTION USING
        ERRCODE = SQLSTATE,
        MESSAGE = format('the inbox search needs the extension pg_trgm, which this user cannot '
            'create here (%s)', SQLERRM),
        HINT = 'Connected as a superuser or as the database''s owner, run '
            '"CREATE EXTENSION pg_trgm;" in this database once (Debian: the postgresql-contrib '
            'package holds it), then start responder again.';
END
$$;

-- The contacts first, whatever else waits: every statement that reads the parts (a search, the
-- sweep of an instance still running the release before) reads the contacts first or never,
-- so none waits for this migration while holding what it needs next. Until it commits, the
-- contacts can be neither read nor written.
LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE;
DROP TRIGGER contact_number_parts_insert ON contacts;
DROP TRIGGER contact_number_parts_delete ON contacts;
DROP TRIGGER contact_number_parts_update ON contacts;
DROP FUNCTION contact_number_parts_added(), contact_number_parts_removed();
DROP TABLE contact_number_parts, contact_number_parts_pending;

CREATE TABLE contact_numbers (phone text NOT NULL);
-- New contacts once per statement, over the rows it inserted (a transition table): an import
-- or a copy of many contacts is one INSERT here.
CREATE FUNCTION contact_numbers_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_numbers (phone) SELECT phone FROM added;
    RETURN NULL;
END
$$;
CREATE TRIGGER contact_numbers_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION contact_numbers_added();
-- A contact deleted (`responder forget`), or a change of number (nothing changes one today):
-- once per row, by the key.
CREATE FUNCTION contact_numbers_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_numbers WHERE phone = OLD.phone;
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO contact_numbers (phone) VALUES (NEW.phone);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER contact_numbers_delete AFTER DELETE ON contacts
    FOR EACH ROW EXECUTE FUNCTION contact_numbers_removed();
CREATE TRIGGER contact_numbers_update AFTER UPDATE OF phone ON contacts
    FOR EACH ROW WHEN (NEW.phone IS DISTINCT FROM OLD.phone)
    EXECUTE FUNCTION contact_numbers_removed();
-- The contacts already there, once the triggers are in place: the table of contacts is locked
-- until this migration commits, so none is missed by both. The
-- indexes after the rows: one build each, not an insertion per row.
INSERT INTO contact_numbers (phone) SELECT phone FROM contacts;
ALTER TABLE contact_numbers ADD PRIMARY KEY (phone);
CREATE INDEX contact_numbers_trigrams ON contact_numbers USING gin (phone gin_trgm_ops);
ANALYZE contact_numbers;
