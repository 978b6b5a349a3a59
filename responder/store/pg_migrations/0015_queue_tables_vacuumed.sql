-- Three tables are queues: rows appended by triggers and emptied every second or few by the
-- service (the dashboard's count changes, 0010; the numbers noted for their parts, 0013). A
-- deleted row's room comes back only with a vacuum, and autovacuum's default waits for 20% of
-- the table to be dead, which a queue of a few rows never reaches in proportion while its
-- file keeps growing, and each fold or sweep scans it. Vacuumed after every 10,000 dead rows
-- instead, whatever their share.
ALTER TABLE message_count_changes
    SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
ALTER TABLE conversation_count_changes
    SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
ALTER TABLE contact_number_parts_pending
    SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
