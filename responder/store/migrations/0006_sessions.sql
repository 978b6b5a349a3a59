-- Staff sign-ins, kept here rather than in the cookie: the cookie holds only a random id, and
-- signing out deletes the row, so a copied cookie stops working at once, on every instance.
-- `key` is the SHA-256 of that id: a copy of the database opens no session.
-- `credential` fingerprints what the person signed in with (today the admin token): a session
-- whose credential no longer matches the current one is over.
CREATE TABLE sessions (
    key TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    csrf TEXT NOT NULL,
    credential TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX sessions_by_user ON sessions (user, last_seen_at);
