"""What the inbox's people do to messages on SQLite: retry a failed one, cancel a queued one,
see which conversations have a failure left; and the saved replies. A part of SQLiteStore."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

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
from responder.store.sqltime import moment, stored

if TYPE_CHECKING:
    import aiosqlite

    from responder.clock import Clock

T = TypeVar("T")
MAX_PARAMS = 500
# Failed outbound messages that still matter: not cancelled by a person, not a broadcast's
# (its own page shows those), and not followed by a message that got through (the
# conversation went on). `?` marks are the phones. Only each number's last such failure is
# compared, with what was written after it (higher ids, along (phone, id)): comparing each
# failure with every message of a busy number took seconds.
FAILED_PHONES = f"""
SELECT f.phone FROM (
    SELECT phone, MAX(id) AS last FROM messages
    WHERE phone IN ({{marks}}) AND status = 'failed' AND direction = 'out'
    AND (error IS NULL OR error NOT LIKE '{CANCELLED_BY}%') AND broadcast_id IS NULL
    GROUP BY phone
) AS f
WHERE NOT EXISTS (
    SELECT 1 FROM messages AS n WHERE n.phone = f.phone AND n.id > f.last
    AND n.direction = 'out' AND n.status IN ('sent', 'delivered')
)
"""


def _saved(row: Any) -> SavedReply:
    return SavedReply(row[0], row[1], row[2], row[3], moment(row[4]))


def _read(db: sqlite3.Connection, message_id: int) -> Message:
    """The message as this transaction sees it (the worker may claim it right after)."""
    from responder.store.sqlite import MESSAGE_COLUMNS, _message  # sqlite.py imports this module

    cursor = db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,))
    return _message(cursor.fetchone())


def _status_of(db: sqlite3.Connection, message_id: int) -> tuple[str, str, str | None, str]:
    """(status, phone, provider_id, rule) of an outbound message; UnknownMessageError if none."""
    row = db.execute(
        "SELECT status, phone, provider_id, COALESCE(rule, '') FROM messages "
        "WHERE id = ? AND direction = 'out'",
        (message_id,),
    ).fetchone()
    if row is None:
        raise UnknownMessageError(message_id)
    return row[0], row[1], row[2], row[3]


class SQLiteMessageCare:
    """Retries, cancellations, failure flags and saved replies; SQLiteStore provides the rest."""

    if TYPE_CHECKING:
        clock: Clock
        on_outbox: Callable[[], None]

        @property
        def reader(self) -> aiosqlite.Connection: ...

        async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    async def retry_message(self, message_id: int, actor: str) -> Message:
        """Queues a failed message again, due now, as a new attempt on the record; the number
        must not have opted out since (the opt-out confirmation itself may go)."""
        now = stored(self.clock())

        def work(db: sqlite3.Connection) -> Message:
            status, phone, _, rule = _status_of(db, message_id)
            if status not in RETRIABLE:
                raise MessageStateError(message_id, status, f"message {message_id} is {status}")
            opted = db.execute(
                "SELECT 1 FROM contacts WHERE phone = ? AND opted_out = 1", (phone,)
            ).fetchone()
            if opted and rule != "opt_out":
                raise OptedOutError(f"{phone} has opted out; it must send ALTA to receive again")
            # Its send time is now: the age limits count from the person's decision.
            db.execute(
                "UPDATE messages SET status = 'queued', error = NULL, provider_id = NULL, "
                "next_attempt_at = ?, send_at = ?, next_poll_at = NULL, polls = 0, "
                "failover_from = NULL, updated_at = ? WHERE id = ?",
                (now, now, now, message_id),
            )
            db.execute(
                "INSERT INTO attempts (message_id, at, provider, outcome, error) "
                "SELECT id, ?, COALESCE(provider, ''), 'requeued', ? FROM messages WHERE id = ?",
                (now, f"retried by {actor}", message_id),
            )
            return _read(db, message_id)

        retried: Message = await self._transaction(work)
        self.on_outbox()
        return retried

    async def cancel_message(self, message_id: int, actor: str) -> Message:
        """A queued or scheduled message that no provider holds yet is never sent: it fails
        with `CANCELLED_BY` and the person's name."""
        now = stored(self.clock())
        error = f"{CANCELLED_BY}{actor}"

        def work(db: sqlite3.Connection) -> Message:
            status, _, provider_id, _ = _status_of(db, message_id)
            if status not in CANCELLABLE:
                raise MessageStateError(message_id, status, f"message {message_id} is {status}")
            if provider_id is not None:  # in the provider's own scheduler (MasSMS)
                raise MessageStateError(
                    message_id, status, f"message {message_id} is scheduled at the provider"
                )
            db.execute(
                "UPDATE messages SET status = 'failed', error = ?, next_attempt_at = NULL, "
                "updated_at = ? WHERE id = ?",
                (error, now, message_id),
            )
            db.execute(
                "INSERT INTO attempts (message_id, at, provider, outcome, error) "
                "SELECT id, ?, COALESCE(provider, ''), 'cancelled', ? FROM messages WHERE id = ?",
                (now, error, message_id),
            )
            # A broadcast's message: its recipient counts as cancelled (store/broadcast_sql.py).
            db.execute(
                "UPDATE broadcast_recipients SET status = 'cancelled', error = ?, updated_at = ? "
                "WHERE status = 'fed' AND (broadcast_id, phone) IN "
                "(SELECT broadcast_id, phone FROM messages WHERE id = ?)",
                (error, now, message_id),
            )
            return _read(db, message_id)

        cancelled: Message = await self._transaction(work)
        return cancelled

    async def failed_phones(self, phones: Sequence[str]) -> set[str]:
        """Which of `phones` have a failed outbound message nobody retried or cancelled, with
        nothing sent to them since."""
        found: set[str] = set()
        unique = sorted(set(phones))
        for start in range(0, len(unique), MAX_PARAMS):
            chunk = unique[start : start + MAX_PARAMS]
            sql = FAILED_PHONES.format(marks=", ".join("?" * len(chunk)))
            rows = await self.reader.execute_fetchall(sql, chunk)
            found.update(row[0] for row in rows)
        return found

    # -- saved replies ------------------------------------------------------------------------

    async def saved_replies(self) -> list[SavedReply]:
        rows = await self.reader.execute_fetchall(
            "SELECT id, name, text, author, created_at FROM saved_replies ORDER BY name"
        )
        return [_saved(row) for row in rows]

    async def add_saved_reply(self, name: str, text: str, author: str | None) -> SavedReply:
        """Stores a saved reply (SavedReplyExists when the name is taken)."""
        at = self.clock()

        def work(db: sqlite3.Connection) -> int:
            if db.execute("SELECT 1 FROM saved_replies WHERE name = ?", (name,)).fetchone():
                raise SavedReplyExists(name)
            cursor = db.execute(
                "INSERT INTO saved_replies (name, text, author, created_at) VALUES (?, ?, ?, ?)",
                (name, text, author, stored(at)),
            )
            return int(cursor.lastrowid or 0)

        reply_id: int = await self._transaction(work)
        return SavedReply(reply_id, name, text, author, moment(stored(at)))

    async def delete_saved_reply(self, reply_id: int) -> SavedReply | None:
        """Deletes one; None when there was no such reply."""

        def work(db: sqlite3.Connection) -> SavedReply | None:
            row = db.execute(
                "DELETE FROM saved_replies WHERE id = ? "
                "RETURNING id, name, text, author, created_at",
                (reply_id,),
            ).fetchone()
            return None if row is None else _saved(row)

        deleted: SavedReply | None = await self._transaction(work)
        return deleted
