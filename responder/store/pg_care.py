"""What the inbox's people do to messages on PostgreSQL: retry a failed one, cancel a queued
one, see which conversations have a failure left; and the saved replies. A part of
PostgresStore, as SQLite's sqlite_care."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from responder.store.models import (
    CANCELLABLE,
    CANCELLED_BY,
    RETRIABLE,
    Message,
    MessageStateError,
    OptedOutError,
    SavedReply,
    SavedReplyExists,
    UnknownMessageError,
)
from responder.store.pg_base import OUTBOX_CHANNEL, PgBase
from responder.store.pg_rows import MESSAGE_COLUMNS, clean_text, lock_phones, message

# As SQLite's FAILED_PHONES: failures not cancelled nor a broadcast's, with nothing sent since
# (after the last).
FAILED_PHONES = f"""
SELECT f.phone FROM (
    SELECT phone, max(id) AS last FROM messages
    WHERE phone = ANY($1::text[]) AND status = 'failed' AND direction = 'out'
    AND (error IS NULL OR error NOT LIKE '{CANCELLED_BY}%') AND broadcast_id IS NULL
    GROUP BY phone
) AS f
WHERE NOT EXISTS (
    SELECT 1 FROM messages AS n WHERE n.phone = f.phone AND n.id > f.last
    AND n.direction = 'out' AND n.status IN ('sent', 'delivered')
)
"""
_SAVED = "SELECT id, name, text, author, created_at FROM saved_replies"


def _saved(row: Any) -> SavedReply:
    return SavedReply(row[0], row[1], row[2], row[3], row[4])


async def _locked(conn: Any, message_id: int) -> Any:
    """The outbound message's row, locked (its number's lock first, as every writer takes it);
    UnknownMessageError if none."""
    phone = await conn.fetchval(
        "SELECT phone FROM messages WHERE id = $1 AND direction = 'out'", message_id
    )
    if phone is None:
        raise UnknownMessageError(message_id)
    await lock_phones(conn, [phone])
    return await conn.fetchrow(
        "SELECT status, phone, provider_id, COALESCE(rule, '') FROM messages "
        "WHERE id = $1 FOR UPDATE",
        message_id,
    )


class PgMessageCare(PgBase):
    """Retries, cancellations, failure flags and saved replies."""

    async def retry_message(self, message_id: int, actor: str) -> Message:
        """Queues a failed message again, due now, as a new attempt on the record; the number
        must not have opted out since (the opt-out confirmation itself may go)."""
        now = self.clock()

        async def work(conn: Any) -> Message:
            status, phone, _, rule = await _locked(conn, message_id)
            if status not in RETRIABLE:
                raise MessageStateError(message_id, status, f"message {message_id} is {status}")
            opted = await conn.fetchval("SELECT opted_out FROM contacts WHERE phone = $1", phone)
            if opted and rule != "opt_out":
                raise OptedOutError(f"{phone} has opted out; it must send ALTA to receive again")
            # Its send time is now: the age limits count from the person's decision.
            row = await conn.fetchrow(
                "UPDATE messages SET status = 'queued', error = NULL, provider_id = NULL, "
                "next_attempt_at = $2, send_at = $2, next_poll_at = NULL, polls = 0, "
                f"failover_from = NULL, updated_at = $2 WHERE id = $1 RETURNING {MESSAGE_COLUMNS}",
                message_id,
                now,
            )
            await conn.execute(
                "INSERT INTO attempts (message_id, at, provider, outcome, error) "
                "SELECT id, $2, COALESCE(provider, ''), 'requeued', $3 FROM messages "
                "WHERE id = $1",
                message_id,
                now,
                clean_text(f"retried by {actor}"),
            )
            await self._notify(conn, OUTBOX_CHANNEL)
            return message(row)

        retried: Message = await self._transaction(work)
        self.on_outbox()
        return retried

    async def cancel_message(self, message_id: int, actor: str) -> Message:
        """A queued or scheduled message that no provider holds yet is never sent: it fails
        with `CANCELLED_BY` and the person's name."""
        now = self.clock()
        error = clean_text(f"{CANCELLED_BY}{actor}")

        async def work(conn: Any) -> Message:
            status, _, provider_id, _ = await _locked(conn, message_id)
            if status not in CANCELLABLE:
                raise MessageStateError(message_id, status, f"message {message_id} is {status}")
            if provider_id is not None:  # in the provider's own scheduler (MasSMS)
                raise MessageStateError(
                    message_id, status, f"message {message_id} is scheduled at the provider"
                )
            row = await conn.fetchrow(
                "UPDATE messages SET status = 'failed', error = $2, next_attempt_at = NULL, "
                f"updated_at = $3 WHERE id = $1 RETURNING {MESSAGE_COLUMNS}",
                message_id,
                error,
                now,
            )
            await conn.execute(
                "INSERT INTO attempts (message_id, at, provider, outcome, error) "
                "SELECT id, $2, COALESCE(provider, ''), 'cancelled', $3 FROM messages "
                "WHERE id = $1",
                message_id,
                now,
                error,
            )
            # A broadcast's message: its recipient counts as cancelled (store/broadcast_sql.py).
            await conn.execute(
                "UPDATE broadcast_recipients AS r SET status = 'cancelled', error = $2, "
                "updated_at = $3 FROM messages AS m WHERE m.id = $1 "
                "AND r.broadcast_id = m.broadcast_id AND r.phone = m.phone AND r.status = 'fed'",
                message_id,
                error,
                now,
            )
            return message(row)

        cancelled: Message = await self._transaction(work)
        return cancelled

    async def failed_phones(self, phones: Sequence[str]) -> set[str]:
        """Which of `phones` have a failed outbound message nobody retried or cancelled, with
        nothing sent to them since."""
        if not phones:
            return set()
        rows = await self._fetch(FAILED_PHONES, sorted(set(phones)))
        return {row[0] for row in rows}

    # -- saved replies ------------------------------------------------------------------------

    async def saved_replies(self) -> list[SavedReply]:
        return [_saved(row) for row in await self._fetch(f"{_SAVED} ORDER BY name")]

    async def add_saved_reply(self, name: str, text: str, author: str | None) -> SavedReply:
        """Stores a saved reply (SavedReplyExists when the name is taken)."""
        at = self.clock()

        async def work(conn: Any) -> SavedReply:
            row = await conn.fetchrow(
                "INSERT INTO saved_replies (name, text, author, created_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING "
                "RETURNING id, name, text, author, created_at",
                clean_text(name),
                clean_text(text),
                author,
                at,
            )
            if row is None:
                raise SavedReplyExists(name)
            return _saved(row)

        added: SavedReply = await self._transaction(work)
        return added

    async def delete_saved_reply(self, reply_id: int) -> SavedReply | None:
        """Deletes one; None when there was no such reply."""

        async def work(conn: Any) -> SavedReply | None:
            row = await conn.fetchrow(
                "DELETE FROM saved_replies WHERE id = $1 "
                "RETURNING id, name, text, author, created_at",
                reply_id,
            )
            return None if row is None else _saved(row)

        deleted: SavedReply | None = await self._transaction(work)
        return deleted
