-- Recent history is read by (phone, id) now (newest first, bounded): one index less to keep
-- up to date on every insert.
DROP INDEX messages_by_phone_time;
