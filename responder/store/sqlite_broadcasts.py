"""Broadcasts on SQLite (DESIGN §12): segments, the recipients written at creation, reads,
pause/resume/cancel. The feeder's steps are in sqlite_broadcast_feed; PostgreSQL's twins are
pg_broadcasts and pg_broadcast_feed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from responder.store import broadcast_sql as q
from responder.store.broadcast_models import (
    RECIPIENT_STATUSES,
    TRANSITIONS,
    Broadcast,
    BroadcastStateError,
    BroadcastStatus,
    Recipient,
    Segment,
    SegmentContact,
    UnknownBroadcastError,
    changed_status,
    stored_fields,
)
from responder.store.sqltime import maybe_moment, moment, stored

if TYPE_CHECKING:
    import aiosqlite

    from responder.clock import Clock

T = TypeVar("T")
_COLUMNS = (
    "id, name, text, segment, via, send_at, status, recipients, created_by, created_at, "
    "started_at, finished_at"
)
NOT_OPTED_OUT = (
    "c.opted_out = 0 AND NOT EXISTS (SELECT 1 FROM kept_opt_outs AS k WHERE k.phone = c.phone)"
)


def _segment_where(segment: Segment, since: datetime | None) -> tuple[str, list[Any]]:
    """The contacts of a segment (as `c`), never an opted-out one."""
    where, params = [NOT_OPTED_OUT], []
    for label in segment.labels:
        where.append(
            "EXISTS (SELECT 1 FROM contact_labels AS l WHERE l.phone = c.phone AND l.label = ?)"
        )
        params.append(label)
    for name, value in segment.fields.items():
        where.append(
            "EXISTS (SELECT 1 FROM json_each(c.fields) AS f WHERE f.key = ? "
            "AND CAST(f.value AS TEXT) = ?)"
        )
        params.extend((name, value))
    if since is not None:
        where.append(
            "EXISTS (SELECT 1 FROM messages AS m WHERE m.phone = c.phone "
            "AND m.direction = 'in' AND m.created_at >= ?)"
        )
        params.append(stored(since))
    return " AND ".join(where), params


class SQLiteBroadcasts:
    """Broadcasts and their recipients; SQLiteStore provides the connections."""

    if TYPE_CHECKING:
        clock: Clock
        on_outbox: Callable[[], None]

        @property
        def reader(self) -> aiosqlite.Connection: ...

        async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T: ...
        def _next_message_id(self, db: sqlite3.Connection) -> int: ...

    # -- reads ------------------------------------------------------------------------------

    async def segment_contacts(
        self, segment: Segment, since: datetime | None, sample: int
    ) -> tuple[int, list[SegmentContact]]:
        """How many contacts the segment holds now, and the first `sample` of them."""
        where, params = _segment_where(segment, since)
        rows = await self.reader.execute_fetchall(
            f"SELECT COUNT(*) FROM contacts AS c WHERE {where}", params
        )
        count = int(next(iter(rows))[0])
        found = await self.reader.execute_fetchall(
            f"SELECT c.phone, c.fields FROM contacts AS c WHERE {where} ORDER BY c.phone LIMIT ?",
            (*params, sample),
        )
        return count, [SegmentContact(r[0], stored_fields(r[1])) for r in found]

    async def _counts(self, broadcast_id: int) -> dict[str, int]:
        rows = await self.reader.execute_fetchall(
            q.COUNTS.format(b="?"), (broadcast_id, broadcast_id)
        )
        counts: dict[str, int] = dict.fromkeys(RECIPIENT_STATUSES, 0)
        counts.update({r[0]: int(r[1]) for r in rows})
        return counts

    async def _broadcast(self, row: Any, counts: bool = True) -> Broadcast:
        return Broadcast(
            id=row[0],
            name=row[1],
            text=row[2],
            segment=Segment.from_json(json.loads(row[3])),
            via=row[4],
            send_at=maybe_moment(row[5]),
            status=row[6],
            recipients=int(row[7]),
            counts=await self._counts(row[0]) if counts else {},
            created_by=row[8],
            created_at=moment(row[9]),
            started_at=maybe_moment(row[10]),
            finished_at=maybe_moment(row[11]),
        )

    async def broadcast(self, broadcast_id: int) -> Broadcast | None:
        rows = list(
            await self.reader.execute_fetchall(
                f"SELECT {_COLUMNS} FROM broadcasts WHERE id = ?", (broadcast_id,)
            )
        )
        return await self._broadcast(rows[0]) if rows else None

    async def broadcasts(self, before_id: int | None, limit: int) -> list[Broadcast]:
        """Newest first; a page goes on `before_id`."""
        rows = await self.reader.execute_fetchall(
            f"SELECT {_COLUMNS} FROM broadcasts WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**62, limit),
        )
        return [await self._broadcast(row) for row in rows]

    async def broadcast_recipients(
        self, broadcast_id: int, status: str | None, after: str | None, limit: int
    ) -> list[Recipient]:
        """Recipients in number order after `after`, only those counted as `status` if given."""
        rows = await self.reader.execute_fetchall(
            f"SELECT * FROM ({q.RECIPIENT_STATES.format(b='?1', after='?2')}) AS s "
            "WHERE (?3 IS NULL OR s.state = ?3) ORDER BY s.phone LIMIT ?4",
            (broadcast_id, after or "", status, limit),
        )
        return [Recipient(r[0], r[1], r[2], r[3], moment(r[4])) for r in rows]

    async def broadcast_names(self, phone: str, since_id: int = 0) -> dict[int, tuple[int, str]]:
        """The broadcast each of the number's messages from `since_id` on belongs to: id ->
        (broadcast id, name). Read along (phone, id) from `since_id`: a page of a long
        conversation, not its every message."""
        rows = await self.reader.execute_fetchall(
            "SELECT m.id, b.id, b.name FROM messages AS m JOIN broadcasts AS b "
            "ON b.id = m.broadcast_id WHERE m.phone = ? AND m.id >= ? "
            "AND m.broadcast_id IS NOT NULL",
            (phone, since_id),
        )
        return {int(r[0]): (int(r[1]), r[2]) for r in rows}

    # -- creation and the people's actions -----------------------------------------------------

    async def create_broadcast(
        self,
        *,
        name: str,
        text: str,
        segment: Segment,
        via: str,
        send_at: datetime | None,
        status: BroadcastStatus,
        created_by: str | None,
        since: datetime | None,
    ) -> Broadcast:
        """Writes the broadcast and its recipients (the segment as it is now), in one commit."""
        now = stored(self.clock())
        where, params = _segment_where(segment, since)

        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO broadcasts (name, text, segment, via, send_at, status, created_by, "
                "created_at, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    text,
                    json.dumps(segment.as_json(), ensure_ascii=False),
                    via,
                    stored(send_at) if send_at else None,
                    status,
                    created_by,
                    now,
                    now if status == "running" else None,
                    now,
                ),
            )
            broadcast_id = int(cursor.lastrowid or 0)
            db.execute(
                "INSERT INTO broadcast_recipients (broadcast_id, phone, status, updated_at) "
                f"SELECT ?, c.phone, 'pending', ? FROM contacts AS c WHERE {where}",
                (broadcast_id, now, *params),
            )
            db.execute(
                "UPDATE broadcasts SET recipients = (SELECT COUNT(*) FROM broadcast_recipients "
                "WHERE broadcast_id = ?) WHERE id = ?",
                (broadcast_id, broadcast_id),
            )
            return broadcast_id

        broadcast_id = await self._transaction(work)
        found = await self.broadcast(broadcast_id)
        assert found is not None
        return found

    async def change_broadcast(self, broadcast_id: int, action: str) -> Broadcast:
        """Pauses, resumes or cancels (TRANSITIONS); BroadcastStateError when its status does not
        allow it. Cancelling also cancels every recipient not yet handed to a provider; messages
        being sent right now finish and are counted as they end."""
        allowed, target = TRANSITIONS[action]
        now = stored(self.clock())

        def work(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT status, started_at, send_at FROM broadcasts WHERE id = ?", (broadcast_id,)
            ).fetchone()
            if row is None:
                raise UnknownBroadcastError(broadcast_id)
            if row[0] not in allowed:
                raise BroadcastStateError(broadcast_id, row[0], action)
            to = changed_status(target, row[1], row[2], now)
            db.execute(
                "UPDATE broadcasts SET status = ?, updated_at = ?, "
                "started_at = CASE WHEN ? = 'running' THEN COALESCE(started_at, ?) "
                "ELSE started_at END, "
                "finished_at = CASE WHEN ? = 'cancelled' THEN ? ELSE finished_at END WHERE id = ?",
                (to, now, to, now, to, now, broadcast_id),
            )
            if to == "cancelled":
                _cancel_rest(db, [broadcast_id], now)

        await self._transaction(work)
        if target == "running":
            self.on_outbox()
        found = await self.broadcast(broadcast_id)
        assert found is not None
        return found


def _finish_messages(
    db: sqlite3.Connection,
    rows: Sequence[Any],
    now: str,
    recipient_status: str,
    reason: str,
    error: str,
) -> None:
    """Fails broadcast messages still in the outbox (never sent), and marks their recipients."""
    for message_id, broadcast_id, phone in rows:
        db.execute(
            "UPDATE messages SET status = 'failed', error = ?, next_attempt_at = NULL, "
            "updated_at = ? WHERE id = ? AND status IN ('queued', 'scheduled')",
            (error, now, message_id),
        )
        db.execute(
            "UPDATE broadcast_recipients SET status = ?, error = ?, updated_at = ? "
            "WHERE broadcast_id = ? AND phone = ? AND status = 'fed'",
            (recipient_status, reason, now, broadcast_id, phone),
        )


def _cancel_rest(db: sqlite3.Connection, broadcast_ids: Sequence[int], now: str) -> None:
    """Cancels the broadcasts' recipients not yet queued and their messages still in the outbox
    (not those being sent, nor those a provider already scheduled)."""
    for broadcast_id in broadcast_ids:
        db.execute(
            "UPDATE broadcast_recipients SET status = 'cancelled', error = ?, updated_at = ? "
            "WHERE broadcast_id = ? AND status = 'pending'",
            (q.BROADCAST_CANCELLED, now, broadcast_id),
        )
        rows = db.execute(
            "SELECT id, broadcast_id, phone FROM messages WHERE broadcast_id = ? "
            "AND status IN ('queued', 'scheduled') AND next_attempt_at IS NOT NULL",
            (broadcast_id,),
        ).fetchall()
        _finish_messages(db, rows, now, "cancelled", q.BROADCAST_CANCELLED, q.MESSAGE_CANCELLED)
