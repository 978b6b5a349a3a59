-- As SQLite's 0027: a new contact's number parts (0012) are written by a background step
-- (PostgresStore.index_new_numbers, every second, any instance), not in the transaction that
-- creates the contact: a number's ten or so suffixes go to as many places of an index of
-- millions of keys, about 0.25 ms of the server's time per new contact, inside the webhook's
-- transaction (README "Inbox search"). The trigger now notes the numbers; until the step has
-- moved them, a search also reads the noted numbers (store/pg_search.py).
CREATE TABLE contact_number_parts_pending (id bigserial PRIMARY KEY, phone text NOT NULL);
CREATE INDEX contact_number_parts_pending_phone ON contact_number_parts_pending (phone);
CREATE OR REPLACE FUNCTION contact_number_parts_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_number_parts_pending (phone) SELECT phone FROM contact_numbers_added;
    RETURN NULL;
END
$$;
-- The noted number first: a step moving it holds its row until it commits, and the delete
-- waits for that; the parts it wrote are then visible to the next statement, which removes
-- them (each statement of a function reads what was committed before it, READ COMMITTED).
CREATE OR REPLACE FUNCTION contact_number_parts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM contact_number_parts_pending WHERE phone = OLD.phone;
    DELETE FROM contact_number_parts WHERE phone = OLD.phone AND part = ANY (ARRAY(
        SELECT substr(OLD.phone, n) FROM generate_series(1, length(OLD.phone) - 2) AS n
    ));
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO contact_number_parts_pending (phone) VALUES (NEW.phone);
    END IF;
    RETURN NULL;
END
$$;
