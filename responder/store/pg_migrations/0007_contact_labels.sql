-- Contact labels (DESIGN §12): set by a rule's `label:`/`unlabel:` and by the API, in the
-- same transaction as the message that decided them. `responder forget` deletes them.
CREATE TABLE contact_labels (
    phone text NOT NULL,
    label text NOT NULL,
    PRIMARY KEY (phone, label)
);
CREATE INDEX contact_labels_by_label ON contact_labels (label, phone);
