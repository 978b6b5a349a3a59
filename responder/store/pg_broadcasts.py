"""Broadcasts on PostgreSQL (DESIGN §12), as SQLite's sqlite_broadcasts: segments, recipients
written at creation, the feeder's steps, pause/resume/cancel. Every change to a broadcast takes
its row's lock first, so a feed and a cancel from two instances happen one after the other."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from responder.engine import Reply
from responder.store import broadcast_sql as q
from responder.store.broadcast_models import (
    BROADCAST_ORIGIN,
    RECIPIENT_STATUSES,
    TRANSITIONS,
    Broadcast,
    BroadcastStateError,
    BroadcastStatus,
    FeedItem,
    FeedState,
    Recipient,
    Segment,
    SegmentContact,
    UnknownBroadcastError,
)
from responder.store.pg_base import OUTBOX_CHANNEL, PgBase
from responder.store.pg_rows import (
    MessageRow,
    allocate_ids,
    insert_messages,
    outbound_row,
    to_json,
)
from responder.text import segments

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


def _fields(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


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
            return int(count), [SegmentContact(r[0], _fields(r[1])) for r in rows]

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
            segment=Segment.from_json(_fields(row[3])),
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

    async def broadcast_names(self, phone: str) -> dict[int, tuple[int, str]]:
        """The broadcast each of the number's messages belongs to: id -> (broadcast id, name)."""
        rows = await self._fetch(
            "SELECT m.id, b.id, b.name FROM messages AS m JOIN broadcasts AS b "
            "ON b.id = m.broadcast_id WHERE m.phone = $1 AND m.broadcast_id IS NOT NULL",
            phone,
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
            # Resuming one paused before its time: it waits for its time again.
            late = row[1] is None and row[2] is not None and row[2] > now
            to = "scheduled" if target == "running" and late else target
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

    # -- the feeder ---------------------------------------------------------------------------

    async def start_due_broadcasts(self) -> list[int]:
        """Scheduled broadcasts whose time came become running."""
        now = self.clock()
        rows = await self._transaction(
            lambda conn: conn.fetch(
                "UPDATE broadcasts SET status = 'running', started_at = COALESCE(started_at, $1), "
                "updated_at = $1 WHERE status = 'scheduled' AND send_at <= $1 RETURNING id",
                now,
            )
        )
        return [int(r[0]) for r in rows]

    async def broadcasts_to_feed(self) -> list[FeedState]:
        """Scheduled and running broadcasts, with how many recipients wait and how many of their
        messages are in the outbox."""

        async def work(conn: Any) -> list[FeedState]:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM broadcasts WHERE status IN ('scheduled', 'running') "
                "ORDER BY id"
            )
            if not rows:
                return []
            outstanding = {
                int(r[0]): int(r[1]) for r in await conn.fetch(q.OUTSTANDING_BY_BROADCAST)
            }
            states = []
            for row in rows:
                pending = await conn.fetchval(
                    "SELECT COUNT(*) FROM broadcast_recipients WHERE broadcast_id = $1 "
                    "AND status = 'pending'",
                    row[0],
                )
                states.append(
                    FeedState(
                        await self._broadcast(conn, row, counts=False),
                        int(pending),
                        outstanding.get(int(row[0]), 0),
                    )
                )
            return states

        states: list[FeedState] = await self._read(work)
        return states

    async def broadcasts_active(self, since: datetime) -> bool:
        """Whether the feeder has anything to look at: a broadcast scheduled, running or paused,
        or one cancelled since `since` (a message of it may come back from a failed try)."""
        row = await self._fetchrow(
            "SELECT 1 FROM broadcasts WHERE status IN ('scheduled', 'running', 'paused') "
            "OR (status = 'cancelled' AND finished_at >= $1) LIMIT 1",
            since,
        )
        return row is not None

    async def reply_waiting(self) -> bool:
        """Whether the outbox holds a message due now that is no broadcast's (a reply, staff)."""
        row = await self._fetchrow(q.REPLY_WAITING.format(now="$1"), self.clock())
        return row is not None

    async def pending_recipients(self, broadcast_id: int, limit: int) -> list[SegmentContact]:
        """The next recipients to queue, with their fields as they are now, and whether they
        opted out since (or were forgotten)."""
        rows = await self._fetch(
            "SELECT r.phone, c.fields, (c.phone IS NULL OR c.opted_out OR EXISTS "
            "(SELECT 1 FROM kept_opt_outs AS k WHERE k.phone = r.phone)) "
            "FROM broadcast_recipients AS r LEFT JOIN contacts AS c ON c.phone = r.phone "
            "WHERE r.broadcast_id = $1 AND r.status = 'pending' ORDER BY r.phone LIMIT $2",
            broadcast_id,
            limit,
        )
        return [SegmentContact(r[0], _fields(r[1]), bool(r[2])) for r in rows]

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
        now = self.clock()

        async def work(conn: Any) -> int:
            found = await conn.fetchrow(
                "SELECT status, via FROM broadcasts WHERE id = $1 FOR UPDATE", broadcast_id
            )
            if found is None or found[0] not in ("scheduled", "running"):
                return 0
            via = found[1]
            phones = [item.phone for item in items]
            opted = {
                r[0]
                for r in await conn.fetch(
                    "SELECT phone FROM contacts WHERE phone = ANY($1::text[]) AND opted_out "
                    "UNION SELECT phone FROM kept_opt_outs WHERE phone = ANY($1::text[])",
                    phones,
                )
            }
            rows: list[MessageRow] = []
            fed = 0
            ids = await allocate_ids(conn, sum(len(item.texts) for item in items))
            taken = iter(ids)
            for item in items:
                skip = item.skip or (q.SKIPPED_OPTED_OUT if item.phone in opted else None)
                changed = await conn.fetchval(
                    "UPDATE broadcast_recipients SET status = $1, error = $2, updated_at = $3 "
                    "WHERE broadcast_id = $4 AND phone = $5 AND status = 'pending' RETURNING 1",
                    "skipped" if skip else "fed",
                    skip,
                    now,
                    broadcast_id,
                    item.phone,
                )
                mine = [next(taken) for _ in item.texts]
                if changed is None or skip:
                    continue
                rows.extend(
                    outbound_row(
                        i,
                        item.phone,
                        Reply(text, segments(text), via=via),
                        BROADCAST_ORIGIN,
                        None,
                        now,
                        send_at,
                        due or now,
                    )
                    for i, text in zip(mine, item.texts)
                )
                fed += 1
            await insert_messages(conn, rows)
            if rows:
                await conn.execute(
                    "UPDATE messages SET broadcast_id = $1 WHERE id = ANY($2::bigint[])",
                    broadcast_id,
                    [r.id for r in rows],
                )
                await self._notify(conn, OUTBOX_CHANNEL)
            return fed

        fed: int = await self._transaction(work)
        if fed:
            self.on_outbox()
        return fed

    async def hold_broadcast(self, broadcast_id: int, until: datetime) -> None:
        """Quiet hours: the broadcast's messages waiting in the outbox wait until `until`."""
        await self._transaction(
            lambda conn: conn.execute(
                "UPDATE messages SET next_attempt_at = $1 WHERE status IN ('queued', 'scheduled') "
                "AND next_attempt_at IS NOT NULL AND next_attempt_at < $1 AND broadcast_id = $2",
                until,
                broadcast_id,
            )
        )

    async def settle_broadcasts(self) -> list[int]:
        """The feeder's bookkeeping: messages in the outbox to numbers that opted out since they
        were queued are skipped, those of cancelled broadcasts (back from a failed try) are
        cancelled, and running broadcasts whose every recipient reached a final state are
        done. Answers the ids of broadcasts just done."""
        now = self.clock()

        async def work(conn: Any) -> list[int]:
            opted = await conn.fetch(
                "SELECT m.id, m.broadcast_id, m.phone FROM messages AS m "
                "WHERE m.status IN ('queued', 'scheduled') AND m.next_attempt_at IS NOT NULL "
                "AND m.broadcast_id IS NOT NULL AND (EXISTS (SELECT 1 FROM contacts AS c "
                "WHERE c.phone = m.phone AND c.opted_out) OR EXISTS (SELECT 1 FROM "
                "kept_opt_outs AS k WHERE k.phone = m.phone)) ORDER BY m.id FOR UPDATE SKIP LOCKED"
            )
            await _finish_messages(
                conn, opted, now, "skipped", q.SKIPPED_OPTED_OUT, q.MESSAGE_SKIPPED
            )
            cancelled = [
                int(r[0])
                for r in await conn.fetch(
                    "SELECT DISTINCT m.broadcast_id FROM messages AS m "
                    "WHERE m.status IN ('queued', 'scheduled') AND m.next_attempt_at IS NOT NULL "
                    "AND m.broadcast_id IN (SELECT id FROM broadcasts WHERE status = 'cancelled')"
                )
            ]
            await _cancel_rest(conn, cancelled, now)
            rows = await conn.fetch(
                "UPDATE broadcasts AS b SET status = 'done', finished_at = $1, updated_at = $1 "
                "WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM broadcast_recipients "
                "AS r WHERE r.broadcast_id = b.id AND r.status = 'pending') "
                "AND NOT EXISTS (SELECT 1 FROM messages WHERE broadcast_id = b.id "
                f"AND {q.OUTSTANDING}) RETURNING id",
                now,
            )
            return [int(r[0]) for r in rows]

        done: list[int] = await self._transaction(work)
        return done
