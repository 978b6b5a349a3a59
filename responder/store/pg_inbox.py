"""The team inbox on PostgreSQL (DESIGN §11): assignment, open and resolved conversations,
internal notes and who is typing. A part of PostgresStore."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from responder.store.models import (
    Conversation,
    ConversationStatus,
    Note,
    UnknownContactError,
)
from responder.store.pg_base import PgBase
from responder.store.pg_rows import clean_text, lock_phones


class PgInbox(PgBase):
    """What people do to a conversation besides writing to the customer."""

    if TYPE_CHECKING:

        async def conversation(self, phone: str) -> Conversation: ...

    async def _change_contact(self, phone: str, sql: str, *params: Any) -> None:
        async def work(conn: Any) -> str:
            # The writer rewrites whole contact rows: take the number's lock as it does.
            await lock_phones(conn, [phone])
            status: str = await conn.execute(sql, phone, *params)
            return status

        if await self._transaction(work) == "UPDATE 0":
            raise UnknownContactError(phone)

    async def assign(self, phone: str, user: str | None) -> Conversation:
        """Hands the conversation to `user` (None: to nobody)."""
        await self._change_contact(
            phone,
            "UPDATE contacts SET assigned_to = $2 WHERE phone = $1",
            None if user is None else clean_text(user),
        )
        return await self.conversation(phone)

    async def set_status(self, phone: str, status: ConversationStatus) -> Conversation:
        """Resolves or reopens the conversation; a resolved one needs no attention."""
        await self._change_contact(
            phone,
            "UPDATE contacts SET status = $2, "
            "needs_attention = CASE WHEN $2 = 'resolved' THEN false ELSE needs_attention END "
            "WHERE phone = $1",
            status,
        )
        return await self.conversation(phone)

    async def add_note(self, phone: str, author: str | None, text: str) -> Note:
        at = self.clock()

        async def work(conn: Any) -> int:
            if await conn.fetchval("SELECT 1 FROM contacts WHERE phone = $1", phone) is None:
                raise UnknownContactError(phone)
            note_id: int = await conn.fetchval(
                "INSERT INTO notes (phone, author, text, created_at) VALUES ($1, $2, $3, $4) "
                "RETURNING id",
                phone,
                None if author is None else clean_text(author),
                clean_text(text),
                at,
            )
            return note_id

        note_id: int = await self._transaction(work)
        return Note(int(note_id), phone, author, clean_text(text), at)

    async def notes(self, phone: str) -> list[Note]:
        rows = await self._fetch(
            "SELECT id, phone, author, text, created_at FROM notes WHERE phone = $1 ORDER BY id",
            phone,
        )
        return [Note(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    async def set_typing(self, phone: str, user: str, until: datetime | None) -> None:
        """`user` is typing in the conversation until `until` (None: stopped)."""
        now = self.clock()

        async def work(conn: Any) -> None:
            # Rows past their time mean nothing: whoever writes sweeps them.
            await conn.execute("DELETE FROM typing WHERE until <= $1", now)
            if until is None:
                await conn.execute(
                    'DELETE FROM typing WHERE phone = $1 AND "user" = $2', phone, user
                )
            else:
                await conn.execute(
                    'INSERT INTO typing (phone, "user", until) VALUES ($1, $2, $3) '
                    'ON CONFLICT (phone, "user") DO UPDATE SET until = excluded.until',
                    phone,
                    clean_text(user),
                    until,
                )

        await self._transaction(work)

    async def typing(self, phone: str) -> list[str]:
        """Who is typing in the conversation now, by name."""
        rows = await self._fetch(
            'SELECT "user" FROM typing WHERE phone = $1 AND until > $2 ORDER BY "user" COLLATE "C"',
            phone,
            self.clock(),
        )
        return [row[0] for row in rows]
