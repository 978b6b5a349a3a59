-- Privacy (DESIGN §13): a number whose person was forgotten while opted out stays opted out.
-- Its contact row is gone (the conversation is 404); this list alone keeps sends refused, and
-- a contact the number starts again begins opted out.
CREATE TABLE kept_opt_outs (
    phone TEXT PRIMARY KEY,
    opted_out_at TEXT NOT NULL
) WITHOUT ROWID;
