-- Every published version of the rules, newest in force on every instance.
CREATE TABLE rule_versions (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    author TEXT,
    source TEXT NOT NULL CHECK (source IN ('file', 'admin', 'api', 'restore')),
    note TEXT NOT NULL DEFAULT '',
    sha256 TEXT NOT NULL,
    rules TEXT NOT NULL,
    templates TEXT NOT NULL DEFAULT '{}'    -- JSON: file name -> text
);
CREATE INDEX rule_versions_by_sha ON rule_versions (sha256);
