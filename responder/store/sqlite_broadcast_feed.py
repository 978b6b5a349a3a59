"""The broadcast feeder's steps on SQLite (DESIGN §12; responder/workers/feeder.py): start what
is due, queue recipients (each once), hold for the quiet window, settle what is final. A part
of SQLiteStore; PostgreSQL's twin is pg_broadcast_feed."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from responder.engine import Reply
from responder.store import broadcast_sql as q
from responder.store.broadcast_models import (
    BROADCAST_ORIGIN,
    FeedItem,
    FeedState,
    SegmentContact,
    stored_fields,
)
from responder.store.sqlite_broadcasts import (
    _COLUMNS,
    SQLiteBroadcasts,
    _cancel_rest,
    _finish_messages,
)
from responder.store.sqltime import stored
from responder.text import segments


class SQLiteBroadcastFeed(SQLiteBroadcasts):
    """What the feeder asks of the store."""

    async def start_due_broadcasts(self) -> list[int]:
        """Scheduled broadcasts whose time came become running."""
        now = stored(self.clock())

        def work(db: sqlite3.Connection) -> list[int]:
            rows = db.execute(
                "UPDATE broadcasts SET status = 'running', started_at = COALESCE(started_at, ?), "
                "updated_at = ? WHERE status = 'scheduled' AND send_at <= ? RETURNING id",
                (now, now, now),
            ).fetchall()
            return [int(r[0]) for r in rows]

        started: list[int] = await self._transaction(work)
        return started

    async def broadcasts_to_feed(self) -> list[FeedState]:
        """Scheduled and running broadcasts, with how many recipients wait and how many of their
        messages are in the outbox."""
        rows = await self.reader.execute_fetchall(
            f"SELECT {_COLUMNS} FROM broadcasts WHERE status IN ('scheduled', 'running') "
            "ORDER BY id"
        )
        if not rows:
            return []
        outstanding = {
            int(r[0]): int(r[1])
            for r in await self.reader.execute_fetchall(q.OUTSTANDING_BY_BROADCAST)
        }
        states = []
        for row in rows:
            pending = await self.reader.execute_fetchall(
                "SELECT COUNT(*) FROM broadcast_recipients WHERE broadcast_id = ? "
                "AND status = 'pending'",
                (row[0],),
            )
            states.append(
                FeedState(
                    await self._broadcast(row, counts=False),
                    int(next(iter(pending))[0]),
                    outstanding.get(int(row[0]), 0),
                )
            )
        return states

    async def broadcasts_active(self, since: datetime) -> bool:
        """Whether the feeder has anything to look at: a broadcast scheduled, running or paused,
        or one cancelled since `since` (a message of it may come back from a failed try)."""
        rows = await self.reader.execute_fetchall(
            "SELECT 1 FROM broadcasts WHERE status IN ('scheduled', 'running', 'paused') "
            "OR (status = 'cancelled' AND finished_at >= ?) LIMIT 1",
            (stored(since),),
        )
        return bool(list(rows))

    async def reply_waiting(self, provider: str | None) -> bool:
        """Whether the outbox holds a message due now that is no broadcast's (a reply, staff),
        or one being sent through `provider`."""
        rows = await self.reader.execute_fetchall(
            q.REPLY_WAITING.format(now="?", provider="?"), (stored(self.clock()), provider)
        )
        return bool(list(rows))

    async def pending_recipients(self, broadcast_id: int, limit: int) -> list[SegmentContact]:
        """The next recipients to queue, with their fields as they are now, and whether they
        opted out since (or were forgotten)."""
        rows = await self.reader.execute_fetchall(
            "SELECT r.phone, c.fields, CASE WHEN c.phone IS NULL OR c.opted_out = 1 OR EXISTS "
            "(SELECT 1 FROM kept_opt_outs AS k WHERE k.phone = r.phone) THEN 1 ELSE 0 END "
            "FROM broadcast_recipients AS r LEFT JOIN contacts AS c ON c.phone = r.phone "
            "WHERE r.broadcast_id = ? AND r.status = 'pending' ORDER BY r.phone LIMIT ?",
            (broadcast_id, limit),
        )
        return [SegmentContact(r[0], stored_fields(r[1]), bool(r[2])) for r in rows]

    async def feed_broadcast(
        self,
        broadcast_id: int,
        items: Sequence[FeedItem],
        *,
        send_at: datetime | None = None,
        due: datetime | None = None,
    ) -> int:
        """Queues the items' messages (or skips them) if the broadcast is still scheduled or
        running, each recipient only while it is still pending: a recipient is queued once,
        whoever feeds. Answers how many recipients got messages."""
        now = stored(self.clock())
        scheduled = stored(send_at) if send_at else None
        due_at = stored(due) if due else now

        def work(db: sqlite3.Connection) -> int:
            from responder.store.sqlite import INSERT_MESSAGE, SQLiteStore  # imports this module

            row = db.execute("SELECT status, via FROM broadcasts WHERE id = ?", (broadcast_id,))
            found = row.fetchone()
            if found is None or found[0] not in ("scheduled", "running"):
                return 0
            via = found[1]
            fed = 0
            next_id = self._next_message_id(db)
            for item in items:
                opted = db.execute(
                    "SELECT 1 FROM contacts WHERE phone = ? AND opted_out = 1 UNION ALL "
                    "SELECT 1 FROM kept_opt_outs WHERE phone = ?",
                    (item.phone, item.phone),
                ).fetchone()
                skip = item.skip or (q.SKIPPED_OPTED_OUT if opted else None)
                status, error = ("skipped", skip) if skip else ("fed", None)
                changed = db.execute(
                    "UPDATE broadcast_recipients SET status = ?, error = ?, updated_at = ? "
                    "WHERE broadcast_id = ? AND phone = ? AND status = 'pending'",
                    (status, error, now, broadcast_id, item.phone),
                ).rowcount
                if not changed or skip:
                    continue
                rows = [
                    SQLiteStore._outbound_row(
                        next_id + i,
                        item.phone,
                        Reply(text, segments(text), via=via),
                        BROADCAST_ORIGIN,
                        None,
                        now,
                        scheduled,
                        due_at,
                    )
                    for i, text in enumerate(item.texts)
                ]
                db.executemany(INSERT_MESSAGE, rows)
                db.execute(
                    "UPDATE messages SET broadcast_id = ? WHERE id >= ?", (broadcast_id, next_id)
                )
                next_id += len(rows)
                fed += 1
            return fed

        fed: int = await self._transaction(work)
        if fed:
            self.on_outbox()
        return fed

    async def hold_broadcast(self, broadcast_id: int, until: datetime) -> None:
        """Quiet hours: the broadcast's messages waiting in the outbox wait until `until`."""
        held = stored(until)

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE messages SET next_attempt_at = ? WHERE status IN ('queued', 'scheduled') "
                "AND next_attempt_at IS NOT NULL AND next_attempt_at < ? AND broadcast_id = ?",
                (held, held, broadcast_id),
            )

        await self._transaction(work)

    async def settle_broadcasts(self) -> list[int]:
        """The feeder's bookkeeping: messages in the outbox to numbers that opted out since they
        were queued are skipped, those of cancelled broadcasts (back from a failed try) are
        cancelled, and running broadcasts whose every recipient reached a final state are
        done. Answers the ids of broadcasts just done."""
        now = stored(self.clock())

        def work(db: sqlite3.Connection) -> list[int]:
            opted = db.execute(
                "SELECT m.id, m.broadcast_id, m.phone FROM messages AS m "
                "WHERE m.status IN ('queued', 'scheduled') AND m.next_attempt_at IS NOT NULL "
                "AND m.broadcast_id IS NOT NULL AND (EXISTS (SELECT 1 FROM contacts AS c "
                "WHERE c.phone = m.phone AND c.opted_out = 1) OR EXISTS (SELECT 1 FROM "
                "kept_opt_outs AS k WHERE k.phone = m.phone))"
            ).fetchall()
            _finish_messages(db, opted, now, "skipped", q.SKIPPED_OPTED_OUT, q.MESSAGE_SKIPPED)
            cancelled = [
                int(r[0])
                for r in db.execute(
                    "SELECT DISTINCT m.broadcast_id FROM messages AS m "
                    "WHERE m.status IN ('queued', 'scheduled') AND m.next_attempt_at IS NOT NULL "
                    "AND m.broadcast_id IN (SELECT id FROM broadcasts WHERE status = 'cancelled')"
                )
            ]
            _cancel_rest(db, cancelled, now)
            rows = db.execute(
                "UPDATE broadcasts SET status = 'done', finished_at = ?, updated_at = ? "
                "WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM broadcast_recipients "
                "AS r WHERE r.broadcast_id = broadcasts.id AND r.status = 'pending') "
                "AND NOT EXISTS (SELECT 1 FROM messages WHERE broadcast_id = broadcasts.id "
                f"AND {q.OUTSTANDING}) RETURNING id",
                (now, now),
            ).fetchall()
            return [int(r[0]) for r in rows]

        done: list[int] = await self._transaction(work)
        return done
