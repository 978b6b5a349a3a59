-- A new contact's parts (0025) are written by the store's background step
-- (store/checkpoint.py, `index_new_numbers`), not in the transaction that creates the contact:
-- a number's ten or so suffixes go to as many places of a table of millions of keys, and on a
-- database of 500,000 contacts that cost each webhook from a new number about 0.26 ms of CPU
-- on the event loop (bench note in README "Part of a number"). The trigger now only notes the
-- number, at the end of a small table; the step moves the noted numbers' parts into the index
-- a few at a time, on the checkpointer's thread. Until then a search also reads the noted
-- numbers themselves (store/sqlite_search.py), so nothing is ever missing from a result.
CREATE TABLE contact_number_parts_pending (id INTEGER PRIMARY KEY, phone TEXT NOT NULL);
DROP TRIGGER contact_number_parts_insert;
CREATE TRIGGER contact_number_parts_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contact_number_parts_pending (phone) VALUES (new.phone);
END;
DROP TRIGGER contact_number_parts_delete;
CREATE TRIGGER contact_number_parts_delete AFTER DELETE ON contacts BEGIN
    DELETE FROM contact_number_parts WHERE phone = old.phone AND part IN (
        SELECT substr(old.phone, n) FROM contact_number_positions
        WHERE n <= length(old.phone) - 2
    );
    DELETE FROM contact_number_parts_pending WHERE phone = old.phone;
END;
DROP TRIGGER contact_number_parts_update;
CREATE TRIGGER contact_number_parts_update AFTER UPDATE OF phone ON contacts
WHEN new.phone IS NOT old.phone BEGIN
    DELETE FROM contact_number_parts WHERE phone = old.phone AND part IN (
        SELECT substr(old.phone, n) FROM contact_number_positions
        WHERE n <= length(old.phone) - 2
    );
    DELETE FROM contact_number_parts_pending WHERE phone = old.phone;
    INSERT INTO contact_number_parts_pending (phone) VALUES (new.phone);
END;
