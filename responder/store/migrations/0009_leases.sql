-- Outbox claims carry the instance that holds them and a lease: only an expired lease is
-- taken over, so a starting or stopping process never re-queues another live one's sends.
ALTER TABLE messages ADD COLUMN claimed_by TEXT;
ALTER TABLE messages ADD COLUMN lease_until TEXT;
-- Sends left 'sending' before leases existed have no owner: expired at once.
UPDATE messages SET lease_until = '' WHERE status = 'sending';
CREATE INDEX messages_in_flight ON messages (lease_until) WHERE status = 'sending';
