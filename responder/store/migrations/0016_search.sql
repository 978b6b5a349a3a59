-- Search that forgives (DESIGN §11): each message's text as the keyword matcher folds it
-- (accents, case and punctuation; responder.text.normalize), written with the message.
-- `fold` is that function, registered on the writing connection.
ALTER TABLE messages ADD COLUMN folded TEXT NOT NULL DEFAULT '';
UPDATE messages SET folded = fold(text);
-- Conversations with unread messages: the tab title and the notifications read them every poll.
-- Only those waiting for a person (few): the conversations the bot answers, every message
-- moving their last_message_at, never enter it.
CREATE INDEX contacts_waiting ON contacts (last_message_at)
    WHERE unread > 0 AND status <> 'resolved' AND (mode = 'human' OR needs_attention);
