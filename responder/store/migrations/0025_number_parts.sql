-- Part of a number (README "Inbox search"): every suffix of three characters or more
-- (store/search.py PART_FROM) of each contact's number, with the number. A number holds the
-- digits typed when one of its suffixes begins with them, so the numbers holding `0001` are a
-- range of this table's key (`part >= '0001' AND part < '0002'`): read without reading every
-- number. Derived from `contacts` alone and kept by its triggers (insert, delete, a change of
-- number), so `responder forget` takes a number out in the same transaction; `migrate-to`
-- does not copy it (the target's triggers fill it as the contacts arrive).
-- Triggers cannot use WITH, so the suffixes' starting positions are a small fixed table:
-- numbers are at most 15 digits (responder/phone.py), 30 positions leave room.
CREATE TABLE contact_number_positions (n INTEGER PRIMARY KEY);
INSERT INTO contact_number_positions (n)
VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12), (13), (14), (15),
    (16), (17), (18), (19), (20), (21), (22), (23), (24), (25), (26), (27), (28), (29), (30);
CREATE TABLE contact_number_parts (
    part TEXT NOT NULL,
    phone TEXT NOT NULL,
    PRIMARY KEY (part, phone)
) WITHOUT ROWID;
-- In the key's order: the rows go in at the end of the table, never in the middle.
INSERT INTO contact_number_parts (part, phone)
SELECT substr(c.phone, p.n), c.phone FROM contacts AS c
JOIN contact_number_positions AS p ON p.n <= length(c.phone) - 2
ORDER BY 1, 2;
CREATE TRIGGER contact_number_parts_insert AFTER INSERT ON contacts BEGIN
    INSERT OR IGNORE INTO contact_number_parts (part, phone)
    SELECT substr(new.phone, n), new.phone FROM contact_number_positions
    WHERE n <= length(new.phone) - 2;
END;
CREATE TRIGGER contact_number_parts_delete AFTER DELETE ON contacts BEGIN
    DELETE FROM contact_number_parts WHERE phone = old.phone AND part IN (
        SELECT substr(old.phone, n) FROM contact_number_positions
        WHERE n <= length(old.phone) - 2
    );
END;
CREATE TRIGGER contact_number_parts_update AFTER UPDATE OF phone ON contacts
WHEN new.phone IS NOT old.phone BEGIN
    DELETE FROM contact_number_parts WHERE phone = old.phone AND part IN (
        SELECT substr(old.phone, n) FROM contact_number_positions
        WHERE n <= length(old.phone) - 2
    );
    INSERT OR IGNORE INTO contact_number_parts (part, phone)
    SELECT substr(new.phone, n), new.phone FROM contact_number_positions
    WHERE n <= length(new.phone) - 2;
END;
