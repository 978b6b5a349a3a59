-- Contacts imported from CSV (DESIGN §12) that never wrote are contacts without a conversation:
-- `last_activity_at` stays NULL until a message goes either way, and the inbox, its counts and
-- its search ask for `last_activity_at IS NOT NULL`. Conversations from before 0003 had none.
UPDATE contacts SET last_activity_at = last_message_at WHERE last_activity_at IS NULL;
