-- State that decides behaviour lives here, not in one process's memory, so that several
-- processes on one database agree on it.
CREATE TABLE leases (                 -- singleton work (sweeps, balance checks): one holder
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until TEXT NOT NULL
);
CREATE TABLE send_budgets (           -- per-provider token buckets shared by every instance
    provider TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    stamp TEXT NOT NULL
);
CREATE TABLE sign_in_failures (       -- per account and per client address
    key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX sign_in_failures_by_key ON sign_in_failures (key, at);
CREATE TABLE balances (               -- the last answer of each provider
    provider TEXT PRIMARY KEY,
    credits REAL,
    error TEXT,
    checked_at TEXT NOT NULL
);
