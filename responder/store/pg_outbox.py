"""The PostgreSQL outbox: messages queued by people and by flow timeouts, claims and leases in
short transactions (`FOR UPDATE SKIP LOCKED`: rows another instance is claiming are skipped,
never waited for), and status polls claimed the same way."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from responder.engine import Reply
from responder.store.broadcast_sql import BROADCAST_CLAIMABLE
from responder.store.common import LEASE, end_flow, owner_dead, this_host_prefix
from responder.store.models import (
    FlowTimeout,
    Message,
    OptedOutError,
    OutboxItem,
    PollItem,
    PollResult,
)
from responder.store.pg_base import OUTBOX_CHANNEL, PgBase
from responder.store.pg_rows import (
    MESSAGE_COLUMNS,
    ContactState,
    allocate_ids,
    insert_messages,
    load_contacts,
    lock_phones,
    maybe_clean,
    message,
    outbound_row,
    upsert_contacts,
)


class PgOutbox(PgBase):
    """Queueing, claiming and releasing outbound messages; status poll claims."""

    async def queue_outbound(
        self,
        phone: str,
        replies: Sequence[Reply],
        origin: str,
        *,
        handoff: bool = False,
        send_at: datetime | None = None,
        due: datetime | None = None,
        author: str | None = None,
    ) -> list[Message]:
        """Queues messages started by a person (agent or CLI), signed by `author`; refuses
        opted-out numbers. With `send_at` they are 'scheduled', taken by the worker at `due`
        (default: `send_at`)."""
        now = self.clock()

        async def work(conn: Any) -> list[Message]:
            await lock_phones(conn, [phone])
            contact = (await load_contacts(conn, [phone])).get(phone)
            if contact is None:
                contact = ContactState.new(phone, now)
            if contact.opted_out:
                raise OptedOutError(f"{phone} has opted out; it must send ALTA to receive again")
            ids = await allocate_ids(conn, len(replies))
            rows = [
                outbound_row(i, phone, reply, origin, None, now, send_at, due or send_at)
                for i, reply in zip(ids, replies)
            ]
            await insert_messages(conn, rows)
            if author is not None:
                await conn.execute(
                    "UPDATE messages SET author = $1 WHERE id = ANY($2::bigint[])", author, ids
                )
            contact.last_message_at = contact.last_activity_at = now
            contact.last_text = replies[-1].text if replies else contact.last_text
            contact.unread = 0
            contact.needs_attention = False
            if handoff:
                contact.mode = "human"
            await upsert_contacts(conn, [contact])
            if rows:
                await self._notify(conn, OUTBOX_CHANNEL)
            found = await conn.fetch(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1::bigint[]) ORDER BY id",
                ids,
            )
            return [message(row) for row in found]

        queued: list[Message] = await self._transaction(work)
        self.on_outbox()
        return queued

    async def apply_decisions(self, timeouts: Sequence[FlowTimeout]) -> list[int]:
        """Applies decisions no inbound message caused (flows timing out), all in one commit:
        each one's replies are queued and its contact's flow state changes. A contact whose
        flow is no longer the one expected (an answer came in meanwhile), or that is gone, is
        left as it is. Returns the ids of the queued replies."""
        now = self.clock()

        async def work(conn: Any) -> list[int]:
            phones = sorted({t.phone for t in timeouts})
            await lock_phones(conn, phones)
            contacts = await load_contacts(conn, phones)
            due: list[tuple[str, Reply, str | None]] = []
            changed: dict[str, ContactState] = {}
            for timeout in timeouts:
                contact, decision = contacts.get(timeout.phone), timeout.decision
                if contact is None or contact.flow != timeout.expected:
                    continue
                due += [(contact.phone, reply, decision.rule) for reply in decision.replies]
                end_flow(contact, decision, now)
                changed[contact.phone] = contact
            ids = await allocate_ids(conn, len(due))
            rows = [
                outbound_row(i, phone, reply, "auto", rule, now)
                for i, (phone, reply, rule) in zip(ids, due)
            ]
            await insert_messages(conn, rows)
            await upsert_contacts(conn, list(changed.values()))
            if rows:
                await self._notify(conn, OUTBOX_CHANNEL)
            return ids

        ids: list[int] = await self._transaction(work)
        if ids:
            self.on_outbox()
        return ids

    async def _release_expired(self, conn: Any, now: datetime, fail: bool) -> int:
        """Takes back the sends left 'sending' by an instance that stopped renewing its lease,
        or by a dead process on this machine. The rows are locked (and those another
        transaction holds skipped) so that a lease renewed meanwhile is never taken."""
        rows = await conn.fetch(
            "SELECT id, claimed_by, lease_until FROM messages WHERE status = 'sending' "
            "AND (lease_until IS NULL OR lease_until < $1 OR claimed_by LIKE $2) "
            "AND claimed_by IS DISTINCT FROM $3 ORDER BY id FOR UPDATE SKIP LOCKED",
            now,
            f"{this_host_prefix()}%",
            self.instance,
        )
        ids = [
            r["id"]
            for r in rows
            if r["lease_until"] is None or r["lease_until"] < now or owner_dead(r["claimed_by"])
        ]
        return await self._release(conn, ids, now, fail)

    async def _release(self, conn: Any, ids: Sequence[int], now: datetime, fail: bool) -> int:
        """Interrupted sends go back to the queue (at-least-once: a missed reply is worse than a
        rare duplicate), or fail as interrupted (at-most-once)."""
        if not ids:
            return 0
        if fail:
            await conn.execute(
                "UPDATE messages SET status = 'failed', updated_at = $1, claimed_by = NULL, "
                "lease_until = NULL, "
                "error = 'interrupted while sending; not retried (delivery: at_most_once)' "
                "WHERE id = ANY($2::bigint[]) AND status = 'sending'",
                now,
                list(ids),
            )
        else:
            await conn.execute(
                "UPDATE messages SET status = 'queued', updated_at = $1, claimed_by = NULL, "
                "lease_until = NULL WHERE id = ANY($2::bigint[]) AND status = 'sending'",
                now,
                list(ids),
            )
            await self._notify(conn, OUTBOX_CHANNEL)
        return len(ids)

    async def release_expired(self, at_most_once: bool = False) -> int:
        """Takes back the sends of instances that are gone (expired leases); never those of a
        live instance, which may be waiting for a gateway's answer right now."""
        now = self.clock()
        count: int = await self._transaction(
            lambda conn: self._release_expired(conn, now, at_most_once)
        )
        return count

    async def release_own(self, at_most_once: bool = False) -> int:
        """At a stop: this instance's sends still 'sending' after the grace period."""
        now = self.clock()

        async def work(conn: Any) -> int:
            rows = await conn.fetch(
                "SELECT id FROM messages WHERE status = 'sending' AND claimed_by = $1 "
                "ORDER BY id FOR UPDATE",
                self.instance,
            )
            return await self._release(conn, [r["id"] for r in rows], now, at_most_once)

        count: int = await self._transaction(work)
        return count

    async def renew_leases(self, ids: Sequence[int]) -> None:
        """Keeps this instance's claims alive while their sends are in flight."""
        if not ids:
            return
        until = self.clock() + LEASE
        await self._transaction(
            lambda conn: conn.execute(
                "UPDATE messages SET lease_until = $1 WHERE id = ANY($2::bigint[]) "
                "AND status = 'sending' AND claimed_by = $3",
                until,
                sorted(ids),
                self.instance,
            )
        )

    async def claim_outbox(self, limit: int, at_most_once: bool = False) -> list[OutboxItem]:
        """Marks up to `limit` due messages 'sending' before any provider call, stamped with
        this instance and a lease: replies to customers first, then staff, CLI and scheduled
        messages; oldest first within each. Rows another instance is claiming are skipped,
        not waited for. Expired claims of other instances are released first."""
        now = self.clock()

        async def work(conn: Any) -> list[OutboxItem]:
            await self._release_expired(conn, now, at_most_once)
            rows = await conn.fetch(
                "WITH due AS ("
                "SELECT id FROM messages AS m WHERE status IN ('queued', 'scheduled') "
                "AND next_attempt_at <= $1 AND (rule = 'opt_out' OR NOT EXISTS ("
                "SELECT 1 FROM contacts AS c WHERE c.phone = m.phone AND c.opted_out)) "
                f"AND {BROADCAST_CLAIMABLE} "
                "ORDER BY origin <> 'auto', broadcast_id IS NOT NULL, next_attempt_at, id "
                "LIMIT $2 "
                "FOR UPDATE SKIP LOCKED) "
                "UPDATE messages AS m SET status = 'sending', attempts = m.attempts + 1, "
                "updated_at = $1, claimed_by = $3, lease_until = $4 FROM due WHERE m.id = due.id "
                "RETURNING m.id, m.phone, m.text, m.provider, m.attempts, m.created_at, m.origin, "
                "m.send_at, m.failover_from",
                now,
                limit,
                self.instance,
                now + LEASE,
            )
            return [OutboxItem(*row) for row in rows]

        claimed: list[OutboxItem] = await self._transaction(work)
        return sorted(claimed, key=lambda item: (item.origin != "auto", item.id))

    async def claim_polls(
        self, providers: Sequence[str], limit: int, hold: float = 60.0
    ) -> list[PollItem]:
        """Messages in flight whose next status poll is due, claimed: their next poll moves
        `hold` seconds ahead in the same statement, rows another instance holds skipped."""
        if not providers:
            return []
        now = self.clock()
        rows = await self._transaction(
            lambda conn: conn.fetch(
                "WITH due AS (SELECT id FROM messages WHERE provider = ANY($1::text[]) "
                "AND next_poll_at IS NOT NULL AND next_poll_at <= $2 ORDER BY next_poll_at "
                "LIMIT $3 FOR UPDATE SKIP LOCKED) "
                "UPDATE messages AS m SET next_poll_at = $4 FROM due WHERE m.id = due.id "
                "RETURNING m.id, m.provider, m.provider_id, m.created_at, m.polls, m.send_at",
                list(providers),
                now,
                limit,
                now + timedelta(seconds=hold),
            )
        )
        return sorted((PollItem(*row) for row in rows), key=lambda item: item.id)

    async def record_polls(self, results: Sequence[PollResult]) -> None:
        """Stores what status polls found; a final status or giving up ends the polling."""
        if not results:
            return
        now = self.clock()
        rows = [
            (r.status, maybe_clean(r.error), r.next_poll_at, now, r.id)
            for r in sorted(results, key=lambda r: r.id)
        ]
        await self._transaction(
            lambda conn: conn.executemany(
                "UPDATE messages SET status = COALESCE($1, status), error = COALESCE($2, error), "
                "polls = polls + 1, next_poll_at = $3, updated_at = $4 WHERE id = $5",
                rows,
            )
        )
