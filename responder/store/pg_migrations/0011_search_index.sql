-- Search at any size (README "Inbox search"): a GIN index of the words of each message's
-- folded text (0005): runs of letters and digits, as SQLite's FTS5 splits them (the parser
-- alone would keep "+58" or "juan@x.com" whole), with the `simple` configuration (no stemming,
-- no stop words: the text is folded already), so no extension is needed. An expression index:
-- nothing to copy or keep by hand, and erasure (retention blanks `folded`, `responder forget`
-- deletes the row) takes the words out with the row. store/pg_search.py WORDS is the same
-- expression, so that the planner uses the index.
-- IF NOT EXISTS: on a big database it can be built beforehand without stopping writes
-- (CREATE INDEX CONCURRENTLY, README "Inbox search"); this migration then only checks it.
CREATE INDEX IF NOT EXISTS messages_words ON messages
    USING gin (to_tsvector('simple', regexp_replace(folded, '[^[:alnum:]]+', ' ', 'g')));
-- Contact fields folded alike; the rows already there are filled by pg_schema.FILL_AFTER.
ALTER TABLE contacts ADD COLUMN folded text NOT NULL DEFAULT '';
CREATE INDEX contacts_with_fields ON contacts (phone) WHERE folded <> '';
