-- The full-text index's segments are merged in small steps by the store's background task
-- (store/checkpoint.py), not inside the inserts: with FTS5's automatic merging, every few
-- seconds one webhook's insert merged a level of segments and held the writer for 0.4-0.6 s
-- (bench/steady.py at 1,000 webhooks/s: p99 107-204 ms with it, 30 ms without the index).
INSERT INTO messages_fts (messages_fts, rank) VALUES ('automerge', 0);
