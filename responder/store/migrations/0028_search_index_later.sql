-- New messages go into the full-text index (0023) in the store's background step
-- (store/checkpoint.py, `index_new_messages`), not in the transaction that writes them: the
-- index's insert trigger was most of a message insert's cost (bench/search_insert.py: 67 µs
-- of CPU a row with it, 16 without, at 2 rows a transaction; 30 and 3 at 200), paid twice
-- per webhook (the message and its reply) on the event loop. FTS5's cost is mostly a segment
-- per transaction: the step indexes up to 500 messages per transaction (1.2 µs each), on the
-- checkpointer's thread.
-- `meta.fts_indexed_id` is the mark: every message up to it is in the index, none after it.
-- Ids are given as MAX(id) + 1 inside the write transaction (never below an erased one,
-- `message_id_high`), so the messages after the mark are exactly those still to index; a
-- search reads them from the table (store/sqlite_search.py), so none is ever missing.
-- Every message there now was indexed by the insert trigger.
DROP TRIGGER messages_fts_insert;
INSERT OR REPLACE INTO meta (key, value)
SELECT 'fts_indexed_id', CAST(COALESCE(MAX(id), 0) AS TEXT) FROM messages;
-- Erasure (`responder forget` deletes, the retention sweep blanks `folded`) takes words out
-- of the index only for a message the index holds: an FTS5 'delete' of a row it never took
-- in corrupts an external-content index. A message erased before the step reached it is
-- indexed as it is then (blank), or not at all (deleted): the step runs under the same write
-- lock, in a transaction of its own, and reads `folded` as it is.
DROP TRIGGER messages_fts_delete;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed_id') BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, folded) VALUES ('delete', old.id, old.folded);
END;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF folded ON messages
WHEN new.folded IS NOT old.folded
    AND old.id <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed_id') BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, folded) VALUES ('delete', old.id, old.folded);
    INSERT INTO messages_fts (rowid, folded) VALUES (new.id, new.folded);
END;
