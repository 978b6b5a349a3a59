-- Search at any size (README "Inbox search"): a full-text index over each message's folded
-- text (0016), kept by triggers in the transaction that writes the message. It holds no copy
-- of the text (external content: it reads `messages`) and no sizes (nothing is ranked).
-- Erasure blanks `folded` (retention) or deletes the row (`responder forget`): the triggers
-- take the words out of the index in the same transaction.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    folded, content = 'messages', content_rowid = 'id', columnsize = 0
);
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, folded) VALUES (new.id, new.folded);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, folded) VALUES ('delete', old.id, old.folded);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF folded ON messages
WHEN new.folded IS NOT old.folded BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, folded) VALUES ('delete', old.id, old.folded);
    INSERT INTO messages_fts (rowid, folded) VALUES (new.id, new.folded);
END;
-- Contact fields folded alike (`fold_fields`, registered on the writer), searched by the
-- contacts that have some: a partial index holds only those.
ALTER TABLE contacts ADD COLUMN folded TEXT NOT NULL DEFAULT '';
UPDATE contacts SET folded = fold_fields(fields) WHERE fields <> '{}';
CREATE INDEX contacts_with_fields ON contacts (folded) WHERE folded <> '';
