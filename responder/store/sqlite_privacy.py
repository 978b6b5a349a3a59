"""Privacy on SQLite (DESIGN §13): forgetting a person, and clearing old message texts.
A part of SQLiteStore."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from responder.clock import Clock
from responder.store.broadcast_sql import FORGOTTEN_RECIPIENT
from responder.store.models import Forgotten
from responder.store.recent import RecentRows
from responder.store.sqltime import stored

T = TypeVar("T")

# A counter in `meta` that every erasure moves: another process on the same file sees it move
# and forgets what RecentRows holds (it assumes messages are never changed or deleted).
ERASURES_KEY = "erasures"


def bump_erasures(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') "
        "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (ERASURES_KEY,),
    )


# The highest message id ever given, kept before messages are deleted: SQLite gives
# MAX(id) + 1, so erasing the newest messages would hand their ids out again (an outcome or
# a claim still naming an erased message must never reach a new one).
ID_HIGH_KEY = "message_id_high"


def keep_id_high(db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO meta (key, value) SELECT ?, CAST(COALESCE(MAX(id), 0) AS TEXT) "
        "FROM messages WHERE true ON CONFLICT (key) DO UPDATE SET value = "
        "CAST(MAX(CAST(meta.value AS INTEGER), CAST(excluded.value AS INTEGER)) AS TEXT)",
        (ID_HIGH_KEY,),
    )


def read_erasures(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (ERASURES_KEY,)).fetchone()
    return str(row[0]) if row else None


class SQLitePrivacy:
    """Erasing what a person wrote, on request or once it is old enough."""

    if TYPE_CHECKING:
        _recent: RecentRows
        clock: Clock

        async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    async def forget_contact(self, phone: str) -> Forgotten | None:
        """Erases the number's messages (with their attempts and early reports), notes,
        typing, fields and labels: its contact row goes. A number that had opted out stays
        opted out (kept_opt_outs). None: nothing was known of it."""

        def work(db: sqlite3.Connection) -> Forgotten | None:
            row = db.execute(
                "SELECT opted_out, opted_out_at FROM contacts WHERE phone = ?", (phone,)
            ).fetchone()
            ids = [r[0] for r in db.execute("SELECT id FROM messages WHERE phone = ?", (phone,))]
            kept = db.execute(
                "SELECT opted_out_at FROM kept_opt_outs WHERE phone = ?", (phone,)
            ).fetchone()
            if row is None and not ids:
                return Forgotten(0, True) if kept else None
            db.execute(
                "DELETE FROM early_reports WHERE EXISTS (SELECT 1 FROM messages AS m "
                "WHERE m.phone = ? AND m.provider = early_reports.provider "
                "AND m.provider_id = early_reports.provider_id)",
                (phone,),
            )
            db.execute(
                "DELETE FROM attempts WHERE message_id IN "
                "(SELECT id FROM messages WHERE phone = ?)",
                (phone,),
            )
            keep_id_high(db)
            db.execute("DELETE FROM messages WHERE phone = ?", (phone,))
            db.execute("DELETE FROM notes WHERE phone = ?", (phone,))
            db.execute("DELETE FROM typing WHERE phone = ?", (phone,))
            db.execute("DELETE FROM contact_labels WHERE phone = ?", (phone,))
            # A broadcast keeps its count, not the number (store/broadcast_sql.py).
            db.execute(
                "UPDATE broadcast_recipients "
                "SET phone = 'forgotten-' || lower(hex(randomblob(8))), "
                "status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END, "
                "error = ? WHERE phone = ?",
                (FORGOTTEN_RECIPIENT, phone),
            )
            db.execute("DELETE FROM contacts WHERE phone = ?", (phone,))
            opted_out = bool(row and row[0])
            if opted_out:
                db.execute(
                    "INSERT OR REPLACE INTO kept_opt_outs (phone, opted_out_at) VALUES (?, ?)",
                    (phone, row[1] or stored(self.clock())),
                )
            elif row is not None:
                db.execute("DELETE FROM kept_opt_outs WHERE phone = ?", (phone,))
            bump_erasures(db)
            return Forgotten(len(ids), opted_out or (row is None and kept is not None))

        forgotten = await self._transaction(work)
        self._recent.forget()
        return forgotten

    async def clear_old_texts(self, before: datetime, after_id: int, limit: int) -> int | None:
        """One bounded batch of the retention sweep: the texts of the messages among the
        `limit` after id `after_id` created before `before` become empty (the rows stay, so
        counts do). Returns the id to go on after, or None when the batch reached messages
        that are all newer (the last batch also clears old conversations' last text)."""
        cutoff = stored(before)

        def work(db: sqlite3.Connection) -> int | None:
            rows = db.execute(
                "SELECT id, created_at < ? FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (cutoff, after_id, limit),
            ).fetchall()
            old = [r[0] for r in rows if r[1]]
            if old:
                db.execute(
                    "UPDATE messages SET text = '', folded = '' WHERE id BETWEEN ? AND ? "
                    "AND created_at < ? AND text <> ''",
                    (old[0], old[-1], cutoff),
                )
                bump_erasures(db)
                return int(rows[-1][0])
            db.execute(
                "UPDATE contacts SET last_text = '' WHERE last_message_at < ? AND last_text <> ''",
                (cutoff,),
            )
            return None

        going_on = await self._transaction(work)
        self._recent.forget()
        return going_on
