-- The flow sweep reads the contacts in a flow every few seconds: a few among many, found here
-- instead of by a scan of all contacts (PostgreSQL has had this index since its 0001).
CREATE INDEX contacts_in_flows ON contacts (phone) WHERE flow IS NOT NULL;
