"""The broadcast feeder's steps on PostgreSQL (DESIGN §12), as SQLite's sqlite_broadcast_feed:
start what is due, queue recipients (each once, under the broadcast's row lock), hold for the
quiet window, settle what is final."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from responder.engine import Reply
from responder.store import broadcast_sql as q
from responder.store.broadcast_models import (
    BROADCAST_ORIGIN,
    FeedItem,
    FeedState,
    SegmentContact,
    stored_fields,
)
from responder.store.pg_base import OUTBOX_CHANNEL
from responder.store.pg_broadcasts import (
    _COLUMNS,
    PgBroadcasts,
    _cancel_rest,
    _finish_messages,
)
from responder.store.pg_rows import MessageRow, allocate_ids, insert_messages, outbound_row
from responder.text import segments


class PgBroadcastFeed(PgBroadcasts):
    """What the feeder asks of the store."""

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

    async def reply_waiting(self, provider: str | None) -> bool:
        """Whether the outbox holds a message due now that is no broadcast's (a reply, staff),
        or one being sent through `provider`."""
        row = await self._fetchrow(
            q.REPLY_WAITING.format(now="$1", provider="$2"), self.clock(), provider
        )
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
            skips = {
                item.phone: item.skip or (q.SKIPPED_OPTED_OUT if item.phone in opted else None)
                for item in items
            }
            # One statement for the lot: only recipients still pending change (a recipient is
            # queued once, whoever feeds).
            changed = {
                r[0]
                for r in await conn.fetch(
                    "UPDATE broadcast_recipients AS r SET status = u.status, error = u.error, "
                    "updated_at = $1 FROM unnest($2::text[], $3::text[], $4::text[]) "
                    "AS u(phone, status, error) WHERE r.broadcast_id = $5 AND r.phone = u.phone "
                    "AND r.status = 'pending' RETURNING r.phone",
                    now,
                    phones,
                    ["skipped" if skips[p] else "fed" for p in phones],
                    [skips[p] for p in phones],
                    broadcast_id,
                )
            }
            queued = [i for i in items if i.phone in changed and skips[i.phone] is None]
            taken = iter(await allocate_ids(conn, sum(len(i.texts) for i in queued)))
            rows: list[MessageRow] = [
                outbound_row(
                    next(taken),
                    item.phone,
                    Reply(text, segments(text), via=via),
                    BROADCAST_ORIGIN,
                    None,
                    now,
                    send_at,
                    due or now,
                )
                for item in queued
                for text in item.texts
            ]
            fed = len(queued)
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
