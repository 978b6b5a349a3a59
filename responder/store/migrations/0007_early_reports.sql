-- Delivery reports for a provider id no message has yet: the gateway can deliver (and report)
-- before its answer to the send has come back. Kept 48 hours, applied when the id is recorded.
CREATE TABLE early_reports (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('delivered', 'failed')),
    detail TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX early_reports_by_id ON early_reports (provider, provider_id);
CREATE INDEX early_reports_by_age ON early_reports (received_at);
