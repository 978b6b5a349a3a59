-- Search that forgives (DESIGN §11): each message's text as the keyword matcher folds it
-- (accents, case and punctuation; responder.text.normalize), written with the message. The
-- rows already there are filled by pg_schema.FILL_AFTER (Python, so both engines fold alike).
ALTER TABLE messages ADD COLUMN folded text NOT NULL DEFAULT '';
-- Conversations with unread messages: the tab title and the notifications read them every poll.
-- Only those waiting for a person (few): the conversations the bot answers, every message
-- moving their last_message_at, never enter it.
CREATE INDEX contacts_waiting ON contacts (last_message_at)
    WHERE unread > 0 AND status <> 'resolved' AND (mode = 'human' OR needs_attention);
