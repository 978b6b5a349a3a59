"""The team inbox on SQLite (DESIGN §11): assignment, open and resolved conversations,
internal notes and who is typing. A part of SQLiteStore."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from responder.store.models import (
    Conversation,
    ConversationStatus,
    Note,
    UnknownContactError,
)
from responder.store.sqltime import moment, stored

if TYPE_CHECKING:
    import aiosqlite

    from responder.clock import Clock

T = TypeVar("T")


class SQLiteInbox:
    """What people do to a conversation besides writing to the customer."""

    if TYPE_CHECKING:
        clock: Clock

        @property
        def reader(self) -> aiosqlite.Connection: ...

        async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

        async def conversation(self, phone: str) -> Conversation: ...

    async def _change_contact(self, phone: str, sql: str, params: tuple[object, ...]) -> None:
        def work(db: sqlite3.Connection) -> int:
            return db.execute(sql, (*params, phone)).rowcount

        if not await self._transaction(work):
            raise UnknownContactError(phone)

    async def assign(self, phone: str, user: str | None) -> Conversation:
        """Hands the conversation to `user` (None: to nobody)."""
        await self._change_contact(
            phone, "UPDATE contacts SET assigned_to = ? WHERE phone = ?", (user,)
        )
        return await self.conversation(phone)

    async def set_status(self, phone: str, status: ConversationStatus) -> Conversation:
        """Resolves or reopens the conversation; a resolved one needs no attention."""
        await self._change_contact(
            phone,
            "UPDATE contacts SET status = ?, "
            "needs_attention = CASE WHEN ? = 'resolved' THEN 0 ELSE needs_attention END "
            "WHERE phone = ?",
            (status, status),
        )
        return await self.conversation(phone)

    async def add_note(self, phone: str, author: str | None, text: str) -> Note:
        at = self.clock()

        def work(db: sqlite3.Connection) -> int:
            if db.execute("SELECT 1 FROM contacts WHERE phone = ?", (phone,)).fetchone() is None:
                raise UnknownContactError(phone)
            cursor = db.execute(
                "INSERT INTO notes (phone, author, text, created_at) VALUES (?, ?, ?, ?)",
                (phone, author, text, stored(at)),
            )
            return int(cursor.lastrowid or 0)

        note_id: int = await self._transaction(work)
        return Note(note_id, phone, author, text, at)

    async def notes(self, phone: str) -> list[Note]:
        rows = await self.reader.execute_fetchall(
            "SELECT id, phone, author, text, created_at FROM notes WHERE phone = ? ORDER BY id",
            (phone,),
        )
        return [Note(row[0], row[1], row[2], row[3], moment(row[4])) for row in rows]

    async def set_typing(self, phone: str, user: str, until: datetime | None) -> None:
        """`user` is typing in the conversation until `until` (None: stopped)."""

        def work(db: sqlite3.Connection) -> None:
            now = stored(self.clock())
            # Rows past their time mean nothing: whoever writes sweeps them.
            db.execute("DELETE FROM typing WHERE until <= ?", (now,))
            if until is None:
                db.execute("DELETE FROM typing WHERE phone = ? AND user = ?", (phone, user))
            else:
                db.execute(
                    "INSERT INTO typing (phone, user, until) VALUES (?, ?, ?) "
                    "ON CONFLICT (phone, user) DO UPDATE SET until = excluded.until",
                    (phone, user, stored(until)),
                )

        await self._transaction(work)

    async def typing(self, phone: str) -> list[str]:
        """Who is typing in the conversation now, by name."""
        rows = await self.reader.execute_fetchall(
            "SELECT user FROM typing WHERE phone = ? AND until > ? ORDER BY user",
            (phone, stored(self.clock())),
        )
        return [row[0] for row in rows]
