"""Broadcasts on PostgreSQL (DESIGN §12), as SQLite's sqlite_broadcasts: segments, recipients
written at creation, reads, pause/resume/cancel (the feeder's steps: pg_broadcast_feed). Every
change to a broadcast takes its row's lock first, so a feed and a cancel from two instances
happen one after the other."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

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
from responder.store.pg_base import OUTBOX_CHANNEL, PgBase
from responder.store.pg_rows import (
    to_json,
)

_COLUMNS = (
    "id, name, text, segment, via, send_at, status, recipients, created_by, created_at, "
    "started_at, finished_at"
)
NOT_OPTED_OUT = (
    "NOT c.opted_out AND NOT EXISTS (SELECT 1 FROM kept_opt_outs AS k WHERE k.phone = c.phone)"
)


def _segment_where(segment: Segment, since: datetime | None, first: int) -> tuple[str, list[Any]]:
    """The contacts of a segment (as `c`), never an opted-out one; parameters from `$first`."""
    where, params = [NOT_OPTED_OUT], []

    def mark(value: Any) -> str:
        params.append(value)
        return f"${first + len(params) - 1}"

    for label in segment.labels:
        where.append(
            "EXISTS (SELECT 1 FROM contact_labels AS l WHERE l.phone = c.phone "
            f"AND l.label = {mark(label)})"
        )
    for name, value in segment.fields.items():
        where.append(f"c.fields ->> {mark(name)}::text = {mark(value)}::text")
    if since is not None:
        where.append(
            "EXISTS (SELECT 1 FROM messages AS m WHERE m.phone = c.phone "
            f"AND m.direction = 'in' AND m.created_at >= {mark(since)})"
        )
    return " AND ".join(where), params


async def _finish_messages(
    conn: Any, rows: Sequence[Any], now: datetime, recipient_status: str, reason: str, error: str
) -> None:
    """Fails broadcast messages still in the outbox (never sent), and marks their recipients."""
    if not rows:
        return
    await conn.executemany(
        "UPDATE messages SET status = 'failed', error = $1, next_attempt_at = NULL, "
        "updated_at = $2 WHERE id = $3 AND status IN ('queued', 'scheduled')",
        [(error, now, r[0]) for r in rows],
    )
    await conn.executemany(
        "UPDATE broadcast_recipients SET status = $1, error = $2, updated_at = $3 "
        "WHERE broadcast_id = $4 AND phone = $5 AND status = 'fed'",
        [(recipient_status, reason, now, r[1], r[2]) for r in rows],
    )


async def _cancel_rest(conn: Any, broadcast_ids: Sequence[int], now: datetime) -> None:
    """Cancels the broadcasts' recipients not yet queued and their messages still in the outbox
    (rows being claimed right now are skipped: those sends finish and are counted)."""
    for broadcast_id in broadcast_ids:
        await conn.execute(
            "UPDATE broadcast_recipients SET status = 'cancelled', error = $1, updated_at = $2 "
            "WHERE broadcast_id = $3 AND status = 'pending'",
            q.BROADCAST_CANCELLED,
            now,
            broadcast_id,
        )
        rows = await conn.fetch(
            "SELECT id, broadcast_id, phone FROM messages WHERE broadcast_id = $1 "
            "AND status IN ('queued', 'scheduled') AND next_attempt_at IS NOT NULL "
            "ORDER BY id FOR UPDATE SKIP LOCKED",
            broadcast_id,
        )
        await _finish_messages(
            conn, rows, now, "cancelled", q.BROADCAST_CANCELLED, q.MESSAGE_CANCELLED
        )


class PgBroadcasts(PgBase):
    """Broadcasts and their recipients."""

    # -- reads ------------------------------------------------------------------------------

    async def segment_contacts(
        self, segment: Segment, since: datetime | None, sample: int
    ) -> tuple[int, list[SegmentContact]]:
        """How many contacts the segment holds now, and the first `sample` of them."""
        where, params = _segment_where(segment, since, 1)

        async def work(conn: Any) -> tuple[int, list[SegmentContact]]:
            count = await conn.fetchval(
                f"SELECT COUNT(*) FROM contacts AS c WHERE {where}", *params
            )
            rows = await conn.fetch(
                f"SELECT c.phone, c.fields FROM contacts AS c WHERE {where} "
                f'ORDER BY c.phone COLLATE "C" LIMIT ${len(params) + 1}',
                *params,
                sample,
            )
            return int(count), [SegmentContact(r[0], stored_fields(r[1])) for r in rows]

        result: tuple[int, list[SegmentContact]] = await self._read(work)
        return result

    async def _counts(self, conn: Any, broadcast_id: int) -> dict[str, int]:
        rows = await conn.fetch(q.COUNTS.format(b="$1"), broadcast_id)
        counts: dict[str, int] = dict.fromkeys(RECIPIENT_STATUSES, 0)
        counts.update({r[0]: int(r[1]) for r in rows})
        return counts

    async def _broadcast(self, conn: Any, row: Any, counts: bool = True) -> Broadcast:
        return Broadcast(
            id=int(row[0]),
            name=row[1],
            text=row[2],
            segment=Segment.from_json(stored_fields(row[3])),
            via=row[4],
            send_at=row[5],
            status=row[6],
            recipients=int(row[7]),
            counts=await self._counts(conn, row[0]) if counts else {},
            created_by=row[8],
            created_at=row[9],
            started_at=row[10],
            finished_at=row[11],
        )

    async def broadcast(self, broadcast_id: int) -> Broadcast | None:
        async def work(conn: Any) -> Broadcast | None:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM broadcasts WHERE id = $1", broadcast_id
            )
            return await self._broadcast(conn, row) if row is not None else None

        found: Broadcast | None = await self._read(work)
        return found

    async def broadcasts(self, before_id: int | None, limit: int) -> list[Broadcast]:
        """Newest first; a page goes on `before_id`."""

        async def work(conn: Any) -> list[Broadcast]:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM broadcasts WHERE id < $1 ORDER BY id DESC LIMIT $2",
                before_id if before_id is not None else 2**62,
                limit,
            )
            return [await self._broadcast(conn, row) for row in rows]

        found: list[Broadcast] = await self._read(work)
        return found

    async def broadcast_recipients(
        self, broadcast_id: int, status: str | None, after: str | None, limit: int
    ) -> list[Recipient]:
        """Recipients in number order after `after`, only those counted as `status` if given."""
        rows = await self._fetch(
            f"SELECT * FROM ({q.RECIPIENT_STATES.format(b='$1', after='$2')}) AS s "
            "WHERE ($3::text IS NULL OR s.state = $3) "
            'ORDER BY s.phone COLLATE "C" LIMIT $4',
            broadcast_id,
            after or "",
            status,
            limit,
        )
        return [Recipient(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def broadcast_names(self, phone: str, since_id: int = 0) -> dict[int, tuple[int, str]]:
        """The broadcast each of the number's messages from `since_id` on belongs to: id ->
        (broadcast id, name). Read along (phone, id) from `since_id`: a page of a long
        conversation, not its every message."""
        rows = await self._fetch(
            "SELECT m.id, b.id, b.name FROM messages AS m JOIN broadcasts AS b "
            "ON b.id = m.broadcast_id WHERE m.phone = $1 AND m.id >= $2 "
            "AND m.broadcast_id IS NOT NULL",
            phone,
            since_id,
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
        now = self.clock()
        where, params = _segment_where(segment, since, 3)

        async def work(conn: Any) -> int:
            broadcast_id = int(
                await conn.fetchval(
                    "INSERT INTO broadcasts (name, text, segment, via, send_at, status, "
                    "created_by, created_at, started_at, updated_at) "
                    "VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $8) RETURNING id",
                    name,
                    text,
                    to_json(segment.as_json()),
                    via,
                    send_at,
                    status,
                    created_by,
                    now,
                    now if status == "running" else None,
                )
            )
            count = await conn.fetchval(
                "WITH added AS (INSERT INTO broadcast_recipients "
                "(broadcast_id, phone, status, updated_at) "
                f"SELECT $1, c.phone, 'pending', $2 FROM contacts AS c WHERE {where} "
                "RETURNING 1) SELECT COUNT(*) FROM added",
                broadcast_id,
                now,
                *params,
            )
            await conn.execute(
                "UPDATE broadcasts SET recipients = $1 WHERE id = $2", int(count), broadcast_id
            )
            return broadcast_id

        broadcast_id: int = await self._transaction(work)
        found = await self.broadcast(broadcast_id)
        assert found is not None
        return found

    async def change_broadcast(self, broadcast_id: int, action: str) -> Broadcast:
        """Pauses, resumes or cancels (TRANSITIONS); BroadcastStateError when its status does not
        allow it. Cancelling also cancels every recipient not yet handed to a provider; messages
        being sent right now finish and are counted as they end."""
        allowed, target = TRANSITIONS[action]
        now = self.clock()

        async def work(conn: Any) -> None:
            row = await conn.fetchrow(
                "SELECT status, started_at, send_at FROM broadcasts WHERE id = $1 FOR UPDATE",
                broadcast_id,
            )
            if row is None:
                raise UnknownBroadcastError(broadcast_id)
            if row[0] not in allowed:
                raise BroadcastStateError(broadcast_id, row[0], action)
            to = changed_status(target, row[1], row[2], now)
            await conn.execute(
                "UPDATE broadcasts SET status = $1, updated_at = $2, "
                "started_at = CASE WHEN $1 = 'running' THEN COALESCE(started_at, $2) "
                "ELSE started_at END, "
                "finished_at = CASE WHEN $1 = 'cancelled' THEN $2 ELSE finished_at END "
                "WHERE id = $3",
                to,
                now,
                broadcast_id,
            )
            if to == "cancelled":
                await _cancel_rest(conn, [broadcast_id], now)
            if to == "running":
                await self._notify(conn, OUTBOX_CHANNEL)

        await self._transaction(work)
        if target == "running":
            self.on_outbox()
        found = await self.broadcast(broadcast_id)
        assert found is not None
        return found
