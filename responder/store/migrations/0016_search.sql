-- Search that forgives (DESIGN §11): each message's text as the keyword matcher folds it
-- (accents, case and punctuation; responder.text.normalize), written with the message.
-- `fold` is that function, registered on the writing connection.
ALTER TABLE messages ADD COLUMN folded TEXT NOT NULL DEFAULT '';
UPDATE messages SET folded = fold(text);
-- Conversations with unread messages: the tab title and the notifications read them every poll.
CREATE INDEX contacts_unread ON contacts (last_message_at) WHERE unread > 0;
