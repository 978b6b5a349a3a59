"""The PostgreSQL backend, for any number of instances on one database: asyncpg with a pool,
webhook writes grouped into one transaction per batch, claims in short transactions with
`FOR UPDATE SKIP LOCKED`, numbers locked in order, LISTEN/NOTIFY to wake the other instances."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import asyncpg

from responder.clock import Clock
from responder.config import StartupError
from responder.store import pg_batch, pg_reports, pg_schema, shown_url
from responder.store.common import OPEN_HERE, OUTBOX_BACKLOG
from responder.store.models import (
    Conversation,
    InboundJob,
    InboundResult,
    OutboxItem,
    SendOutcome,
    StatusUpdate,
    StoreUnavailable,
    UnknownContactError,
)
from responder.store.pg_base import (
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    OUTBOX_CHANNEL,
    RULES_CHANNEL,
)
from responder.store.pg_broadcast_feed import PgBroadcastFeed
from responder.store.pg_care import PgMessageCare
from responder.store.pg_contacts import PgContacts
from responder.store.pg_counts import PgCounts
from responder.store.pg_inbox import PgInbox
from responder.store.pg_labels import PgLabels
from responder.store.pg_listen import Listener
from responder.store.pg_outbox import PgOutbox
from responder.store.pg_privacy import PgPrivacy
from responder.store.pg_reads import PgReads
from responder.store.pg_rows import (
    batch_locks,
    clean_text,
    load_contacts,
    lock_phones,
    maybe_clean,
    to_json,
)
from responder.store.pg_search import PgSearch
from responder.store.pg_shared import PgShared
from responder.store.pg_team import PgTeam
from responder.store.search import fold_fields_json

log = logging.getLogger("responder.store")

MAX_BATCH = 512
POOL_SIZE = (2, 10)  # connections kept open, and at most
# Grouped writes in flight at once. A transaction spends most of its time waiting: for round
# trips and for the commit's fsync. With one writer, webhooks that arrived meanwhile waited a
# whole transaction, then their own; with two, the next group starts while the last one
# commits. Numbers stay consistent as between instances: each transaction takes its numbers'
# advisory locks (pg_rows.batch_locks, in sorted order).
WRITERS = 2


async def _keep_session(conn: Any) -> None:
    """What a connection needs on its way back to the pool besides the rollback of a
    transaction left open (the pool's own): nothing. Our pooled connections keep no session
    state (SET LOCAL, transaction-scoped advisory locks; the migrations' session lock is let go
    before the pool serves, and an open that fails closes the pool), while asyncpg's default
    (unlock all, CLOSE ALL, UNLISTEN *, RESET ALL) costs a round trip on every release: one per
    statement a page reads, half of an inbox poll's round trips."""


@dataclass
class _Job:
    kind: str  # "inbound", "status" or "outcomes"
    payload: Any
    future: asyncio.Future[Any]


class PostgresStore(
    PgOutbox,
    PgShared,
    PgTeam,
    PgInbox,
    PgMessageCare,
    PgPrivacy,
    PgSearch,
    PgReads,
    PgBroadcastFeed,
    PgContacts,
    PgLabels,
    PgCounts,
):
    """All persistence on PostgreSQL. Webhook writes arriving together are grouped by one
    writer task into one transaction, and each caller is answered after its commit; other
    writes are short transactions of their own. Any error that says the server cannot be
    reached becomes StoreUnavailable; the pool reconnects when the server is back."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        super().__init__(
            url, clock, connect_timeout=connect_timeout, command_timeout=command_timeout
        )
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._writer_tasks: list[asyncio.Task[None]] = []
        self._listener: Listener | None = None
        self._listener_task: asyncio.Task[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        shown = shown_url(self.url)
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=POOL_SIZE[0],
                max_size=POOL_SIZE[1],
                init=self._traced,
                reset=_keep_session,
                **self._connection_options(),
            )
            async with self._pool.acquire() as conn:
                await pg_schema.migrate(conn, self.clock)
        except Exception as err:
            await self.close()
            reason = pg_schema.scrubbed(pg_schema.described(err), self.url)
            if isinstance(err, ValueError):  # the driver could not read the URL
                reason = f"expected postgresql://user:password@host:port/dbname ({reason})"
            raise StartupError(f"RESPONDER_DATABASE: cannot open {shown}: {reason}") from None
        OPEN_HERE.add(self.instance)
        self._writer_tasks = [
            asyncio.create_task(self._write_loop(), name=f"store-writer-{n}")
            for n in range(WRITERS)
        ]
        self._listener = Listener(
            self._connect_listener,
            {OUTBOX_CHANNEL: self._heard_outbox, RULES_CHANNEL: self._heard_rules},
            timeout=self.connect_timeout,
        )
        self._listener_task = asyncio.create_task(self._listener.run(), name="store-listener")

    async def _traced(self, conn: Any) -> None:
        if self.trace is not None:
            trace = self.trace
            conn.add_query_logger(lambda logged: trace(logged.query, tuple(logged.args)))

    async def _connect_listener(self) -> Any:
        options = self._connection_options()
        options["server_settings"] = {"application_name": "responder-listener"}
        return await asyncpg.connect(self.url, **options)

    def _heard_outbox(self, sender: str) -> None:
        if sender != self.instance:  # our own commits already woke our worker
            self.on_outbox()

    def _heard_rules(self, sender: str) -> None:
        if sender != self.instance:
            self.on_rules_changed()

    async def close(self) -> None:
        OPEN_HERE.discard(self.instance)
        for task in (*self._writer_tasks, self._listener_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._writer_tasks = []
        self._listener_task = self._listener = None
        await self._close_health()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), self.connect_timeout)
            except Exception:  # a server gone away: drop the connections without a goodbye
                pool.terminate()

    # -- grouped writes: inbound messages, delivery reports, send outcomes ------------------

    async def receive_inbound(self, job: InboundJob) -> InboundResult:
        """Stores an inbound message with the replies its decision queues, in one commit."""
        result: InboundResult = await self._submit("inbound", job)
        return result

    async def apply_status(self, update: StatusUpdate) -> bool:
        """Records a delivery report; False when no message has that provider id yet (the
        report is then kept, and applied when a send's outcome records the id)."""
        found: bool = await self._submit("status", update)
        return found

    async def sent_at(self, provider: str, provider_id: str) -> datetime | None:
        """When the message with that provider id was last accepted ('sent')."""
        row = await self._fetchrow(
            "SELECT MAX(a.at) FROM messages AS m JOIN attempts AS a ON a.message_id = m.id "
            "WHERE m.provider = $1 AND m.provider_id = $2 AND a.outcome = 'sent'",
            provider,
            provider_id,
        )
        at: datetime | None = None if row is None else row[0]
        return at

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """Messages queued or being sent, and the moment the oldest became due."""
        row = await self._fetchrow(OUTBOX_BACKLOG)
        if row is None:
            return 0, None
        return int(row[0]), row[1]

    async def record_outcomes(
        self, outcomes: Sequence[SendOutcome], first_poll_after: float = 10.0
    ) -> None:
        """Stores what each send attempt produced, and the attempt itself; a message now 'sent'
        is due for a status poll after `first_poll_after` seconds (if its provider polls)."""
        now = self.clock()
        first_poll = now + timedelta(seconds=first_poll_after)
        await self._submit("outcomes", (list(outcomes), now, first_poll))

    async def _submit(self, kind: str, payload: Any) -> Any:
        if not self._writer_tasks or all(task.done() for task in self._writer_tasks):
            raise RuntimeError("store writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(kind, payload, future))
        return await future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                results = await self._grouped(batch)
            except StoreUnavailable as err:
                # The server is unreachable: each alone would only wait as long again. Logged
                # once by self.health (not once per batch: the spool keeps retrying).
                log.debug("a grouped write of %d failed: %s", len(batch), err)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            except Exception as err:
                if len(batch) > 1:
                    # One bad item must not fail its neighbours: apply each alone.
                    log.warning("grouped write of %d failed (%s); retrying alone", len(batch), err)
                for job in batch:
                    await self._apply_alone(job)
                continue
            self._resolve(batch, results)

    async def _apply_alone(self, job: _Job) -> None:
        try:
            results = await self._grouped([job])
        except Exception as err:
            if not isinstance(err, StoreUnavailable):  # that one is logged once, by self.health
                log.error("a %s write failed: %s", job.kind, err)
            if not job.future.done():
                if isinstance(err, StoreUnavailable):
                    job.future.set_exception(err)
                else:
                    unavailable = StoreUnavailable(f"{type(err).__name__}: {err}")
                    unavailable.__cause__ = err
                    job.future.set_exception(unavailable)
            return
        self._resolve([job], results)

    def _resolve(self, batch: list[_Job], results: list[Any]) -> None:
        queued_replies = False
        claimed: list[OutboxItem] = []
        for job, result in zip(batch, results):
            if not job.future.done():
                job.future.set_result(result)
            if isinstance(result, InboundResult):
                claimed.extend(result.claimed)
                queued_replies |= len(result.reply_ids) > len(result.claimed)
        if claimed and self.hand_over is not None:
            self.hand_over(claimed)
        if queued_replies:
            self.on_outbox()

    async def _grouped(self, batch: list[_Job]) -> list[Any]:
        """One batch in one transaction, in an order that never waits in a circle with
        another transaction: the provider ids' and numbers' locks first, then the messages'
        row locks (in id order); sent with the BEGIN (pg_rows.batch_locks) unless delivery
        reports must find their messages by provider id first."""
        outcomes = [j.payload for j in batch if j.kind == "outcomes"]
        reports = [j.payload for j in batch if j.kind == "status"]
        ids = {o.id for job in outcomes for o in job[0]}
        locks = batch_locks(
            [(o.provider, o.provider_id) for job in outcomes for o in job[0] if o.provider_id]
            + [(r.provider, r.provider_id) for r in reports],
            [j.payload.message.phone for j in batch if j.kind == "inbound"],
            () if reports else ids,
        )
        if reports:

            async def work(conn: Any) -> list[Any]:
                await pg_batch.lock_messages(conn, sorted(ids), reports)
                return await self._apply(conn, batch)

        else:
            work = partial(self._apply, batch=batch)
        begin = f"BEGIN; {locks}" if locks else "BEGIN"
        results: list[Any] = await self._transaction(work, begin=begin)
        return results

    async def _apply(self, conn: Any, batch: list[_Job]) -> list[Any]:
        """A batch's work, its locks held (_grouped)."""
        results: dict[int, Any] = {}
        outcomes = [j.payload for j in batch if j.kind == "outcomes"]
        statuses = [j for j in batch if j.kind == "status"]
        inbound = [j for j in batch if j.kind == "inbound"]
        # Send outcomes first: a delivery report in the same batch must find its provider id.
        if outcomes:
            await pg_batch.apply_outcomes(conn, outcomes, self.clock())
        if statuses:
            found = await pg_reports.apply_reports(conn, [j.payload for j in statuses])
            for job, hit in zip(statuses, found):
                results[id(job)] = hit
        if inbound:
            applied = await pg_batch.apply_inbound(
                conn,
                [j.payload for j in inbound],
                self.instance,
                self.hand_over is not None,
                self.clock(),
            )
            for job, res in zip(inbound, applied):
                results[id(job)] = res
            if any(len(r.reply_ids) > len(r.claimed) for r in applied):
                await self._notify(conn, OUTBOX_CHANNEL)
        return [results.get(id(j)) for j in batch]

    # -- other writes -----------------------------------------------------------------------

    async def reject_webhook(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        content_type: str | None,
        reason: str,
    ) -> None:
        """Keeps a webhook request that could not be used, as it came."""
        values = (
            self.clock(),
            clean_text(method),
            clean_text(path),
            clean_text(query),
            body,
            maybe_clean(content_type),
            clean_text(reason),
        )
        await self._transaction(
            lambda conn: conn.execute(
                "INSERT INTO rejected_webhooks (received_at, method, path, query, body, "
                "content_type, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                *values,
            )
        )

    async def meta_value(self, key: str, default: Callable[[], str]) -> str:
        """The stored value of `key`, storing `default()` first when there is none; two
        instances asking at once get the same value."""
        sql = "SELECT value FROM meta WHERE key = $1"

        async def work(conn: Any) -> str:
            found = await conn.fetchval(sql, key)
            if found is not None:
                return str(found)
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                key,
                default(),
            )
            return str(await conn.fetchval(sql, key))  # ours, or the one that came first

        value: str = await self._transaction(work)
        return value

    async def set_mode(self, phone: str, mode: str) -> Conversation:
        async def work(conn: Any) -> str:
            await lock_phones(conn, [phone])
            status: str = await conn.execute(
                "UPDATE contacts SET mode = $1, needs_attention = false, unread = 0, "
                "flagged = CASE WHEN $1 = 'bot' THEN false ELSE flagged END WHERE phone = $2",
                mode,
                phone,
            )
            return status

        if await self._transaction(work) == "UPDATE 0":
            raise UnknownContactError(phone)
        return await self.conversation(phone)

    async def update_fields(self, phone: str, changes: dict[str, Any]) -> Conversation:
        """Sets contact fields (a None value removes the field)."""

        async def work(conn: Any) -> None:
            await lock_phones(conn, [phone])
            contact = (await load_contacts(conn, [phone])).get(phone)
            if contact is None:
                raise UnknownContactError(phone)
            for name, value in changes.items():
                if value is None:
                    contact.fields.pop(name, None)
                else:
                    contact.fields[name] = value
            fields = to_json(contact.fields)
            await conn.execute(
                "UPDATE contacts SET fields = $1::jsonb, folded = $2 WHERE phone = $3",
                fields,
                clean_text(fold_fields_json(fields)),
                phone,
            )

        await self._transaction(work)
        return await self.conversation(phone)

    async def update_labels(
        self, phone: str, add: Sequence[str], remove: Sequence[str], only: bool = False
    ) -> Conversation:
        """Adds the labels `add`, then removes `remove`; `only`: drops every other label."""

        async def work(conn: Any) -> None:
            await lock_phones(conn, [phone])
            if await conn.fetchval("SELECT 1 FROM contacts WHERE phone = $1", phone) is None:
                raise UnknownContactError(phone)
            if only:
                await conn.execute("DELETE FROM contact_labels WHERE phone = $1", phone)
            await conn.execute(
                "INSERT INTO contact_labels (phone, label) SELECT $1, unnest($2::text[]) "
                "ON CONFLICT DO NOTHING",
                phone,
                list(add),
            )
            await conn.execute(
                "DELETE FROM contact_labels WHERE phone = $1 AND label = ANY($2::text[])",
                phone,
                list(remove),
            )

        await self._transaction(work)
        return await self.conversation(phone)

    async def mark_read(self, phone: str) -> None:
        """Staff have seen the conversation: its unread count goes back to zero."""

        async def work(conn: Any) -> None:
            await lock_phones(conn, [phone])
            await conn.execute(
                "UPDATE contacts SET unread = 0 WHERE phone = $1 AND unread > 0", phone
            )

        await self._transaction(work)
