"""Privacy on PostgreSQL (DESIGN §13): forgetting a person, and clearing old message texts.
A part of PostgresStore."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from responder.store.broadcast_sql import FORGOTTEN_RECIPIENT
from responder.store.models import Forgotten
from responder.store.pg_base import PgBase
from responder.store.pg_rows import lock_phones

ERASE_TRIES = 3


class PgPrivacy(PgBase):
    """Erasing what a person wrote, on request or once it is old enough."""

    async def forget_contact(self, phone: str) -> Forgotten | None:
        """Erases the number's messages (with their attempts and early reports), notes,
        typing, fields and labels: its contact row goes. A number that had opted out stays
        opted out (kept_opt_outs). None: nothing was known of it."""
        now = self.clock()

        async def work(conn: Any) -> Forgotten | None:
            await lock_phones(conn, [phone])  # the writer's lock on the number
            row = await conn.fetchrow(
                "SELECT opted_out, opted_out_at FROM contacts WHERE phone = $1", phone
            )
            kept = await conn.fetchval("SELECT 1 FROM kept_opt_outs WHERE phone = $1", phone)
            # A broadcast keeps its count, not the number (store/broadcast_sql.py). Before the
            # messages go: a feeder queueing to this recipient right now has committed first
            # (its messages are erased below), and one that comes later finds no recipient;
            # nothing else adds messages to the number without its lock.
            await conn.execute(
                "UPDATE broadcast_recipients SET phone = 'forgotten-' || md5(random()::text), "
                "status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END, "
                "error = $1 WHERE phone = $2",
                FORGOTTEN_RECIPIENT,
                phone,
            )
            # A send's outcome or a report being recorded for one of its messages ends before
            # anything goes (one that comes later finds the message gone: pg_batch.py).
            await lock_messages_of(conn, phone)
            await conn.execute(
                "DELETE FROM early_reports AS e USING messages AS m WHERE m.phone = $1 "
                "AND m.provider = e.provider AND m.provider_id = e.provider_id",
                phone,
            )
            await conn.execute(
                "DELETE FROM attempts WHERE message_id IN "
                "(SELECT id FROM messages WHERE phone = $1)",
                phone,
            )
            status = await conn.execute("DELETE FROM messages WHERE phone = $1", phone)
            erased = int(status.split()[-1])
            if row is None and not erased:
                return Forgotten(0, True) if kept else None
            await conn.execute("DELETE FROM notes WHERE phone = $1", phone)
            await conn.execute("DELETE FROM typing WHERE phone = $1", phone)
            await conn.execute("DELETE FROM contact_labels WHERE phone = $1", phone)
            await conn.execute("DELETE FROM contacts WHERE phone = $1", phone)
            opted_out = bool(row and row["opted_out"])
            if opted_out:
                await conn.execute(
                    "INSERT INTO kept_opt_outs (phone, opted_out_at) VALUES ($1, $2) "
                    "ON CONFLICT (phone) DO UPDATE SET opted_out_at = excluded.opted_out_at",
                    phone,
                    row["opted_out_at"] or now,
                )
            elif row is not None:
                await conn.execute("DELETE FROM kept_opt_outs WHERE phone = $1", phone)
            return Forgotten(erased, opted_out or (row is None and kept is not None))

        for attempt in range(1, ERASE_TRIES + 1):
            try:
                result: Forgotten | None = await self._transaction(work)
            except asyncpg.DeadlockDetectedError:
                # A grouped write held one of the number's messages and waited for the number
                # (an outcome and a new message from it, in one batch): it went on; so do we.
                if attempt == ERASE_TRIES:
                    raise
                continue
            return result
        raise AssertionError("unreachable")

    async def clear_old_texts(self, before: datetime, after_id: int, limit: int) -> int | None:
        """One bounded batch of the retention sweep: the texts of the messages among the
        `limit` after id `after_id` created before `before` become empty (the rows stay, so
        counts do). Returns the id to go on after, or None when the batch reached messages
        that are all newer (the last batch also clears old conversations' last text)."""

        async def work(conn: Any) -> int | None:
            rows = await conn.fetch(
                "SELECT id, created_at < $1 AS old FROM messages WHERE id > $2 "
                "ORDER BY id LIMIT $3",
                before,
                after_id,
                limit,
            )
            old = [r["id"] for r in rows if r["old"]]
            if old:
                await conn.execute(
                    "UPDATE messages SET text = '', folded = '' WHERE id BETWEEN $1 AND $2 "
                    "AND created_at < $3 AND text <> ''",
                    old[0],
                    old[-1],
                    before,
                )
                return int(rows[-1]["id"])
            await conn.execute(
                "UPDATE contacts SET last_text = '' WHERE last_message_at < $1 AND last_text <> ''",
                before,
            )
            return None

        going_on: int | None = await self._transaction(work)
        return going_on


async def lock_messages_of(conn: Any, phone: str) -> None:
    """Locks the number's messages in id order (the order every writer locks messages in)."""
    await conn.execute("SELECT id FROM messages WHERE phone = $1 ORDER BY id FOR UPDATE", phone)
