"""The one module that speaks SQL: SQLite through aiosqlite, a single writer, group commits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from responder.budget import Overrun, OverrunRecord
from responder.clock import Clock
from responder.config import StartupError
from responder.engine import Contact, Decision, FlowState, Reply
from responder.store import health, reports
from responder.store.broadcast_sql import BROADCAST_CLAIMABLE
from responder.store.checkpoint import WAL_FILE_LIMIT, WalCheckpointer
from responder.store.common import (
    LEASE,
    OPEN_HERE,
    OUTBOX_BACKLOG,
    end_flow,
    instance_id,
    owner_dead,
    this_host_prefix,
)
from responder.store.models import (
    COUNT_KEYS,
    Conversation,
    ConversationKey,
    FlowTimeout,
    InboundJob,
    InboundResult,
    Message,
    OptedOutError,
    OutboxItem,
    PollItem,
    PollResult,
    RuleSource,
    RuleVersion,
    SendOutcome,
    SessionRecord,
    StaleRuleVersion,
    StatusUpdate,
    StoreUnavailable,
    UnknownContactError,
    Waiting,
)
from responder.store.overruns import OVERRUNS_KEY, merged, records
from responder.store.recent import RECENT_ROWS, ROW_COLUMNS, Activity, RecentRows
from responder.store.recent import Known as RecentKnown
from responder.store.search import fold_fields_json
from responder.store.sqlite_broadcast_feed import SQLiteBroadcastFeed
from responder.store.sqlite_care import SQLiteMessageCare
from responder.store.sqlite_contacts import SQLiteContacts
from responder.store.sqlite_counts import SQLiteCounts
from responder.store.sqlite_filters import CONVERSATIONS_ONLY, state_filters
from responder.store.sqlite_inbox import SQLiteInbox
from responder.store.sqlite_labels import SQLiteLabels
from responder.store.sqlite_privacy import SQLitePrivacy, read_erasures
from responder.store.sqlite_search import SQLiteSearch
from responder.store.sqlite_team import SQLiteTeam
from responder.store.sqltime import maybe_moment, moment, stored
from responder.text import normalize_cached

log = logging.getLogger("responder.store")

WRITTEN_COLUMNS = (
    "id, phone, direction, text, status, origin, rule, provider, provider_id, line, error, "
    "attempts, created_at, updated_at, send_at, failover_from"
)
# Read back with the author of a person's message (set apart: the webhook path never has one).
MESSAGE_COLUMNS = f"{WRITTEN_COLUMNS}, author"
CONTACT_COLUMNS = (
    "phone, mode, opted_out, opted_out_at, opt_out_message_id, fields, unread, "
    "needs_attention, first_seen_at, last_message_at, last_text, flagged, flow, last_activity_at"
)
# What a conversation is read with: who handles it and whether it is resolved are changed by
# people only (store/sqlite_inbox.py), never by the writer's upsert.
CONVERSATION_COLUMNS = (
    f"{CONTACT_COLUMNS}, assigned_to, status, (SELECT json_group_array(label) FROM "
    "(SELECT label FROM contact_labels WHERE contact_labels.phone = contacts.phone "
    "ORDER BY label)) AS labels"
)
# `folded` is the fields' values as search compares them (`fold_fields`, on the writer).
UPSERT_CONTACT = f"""
INSERT INTO contacts ({CONTACT_COLUMNS}, folded)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, fold_fields(?6))
ON CONFLICT (phone) DO UPDATE SET folded = excluded.folded,
    mode = excluded.mode, opted_out = excluded.opted_out, opted_out_at = excluded.opted_out_at,
    opt_out_message_id = excluded.opt_out_message_id, fields = excluded.fields,
    unread = excluded.unread, needs_attention = excluded.needs_attention,
    last_message_at = excluded.last_message_at, last_text = excluded.last_text,
    flagged = excluded.flagged, flow = excluded.flow, last_activity_at = excluded.last_activity_at
"""
# `folded` is the text as search compares it (`fold`, registered on the writer, is normalize).
INSERT_MESSAGE = f"""
INSERT INTO messages ({WRITTEN_COLUMNS}, next_attempt_at, claimed_by, lease_until, folded)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
    fold(?4))
"""
# Conversations a person must answer that have news (the tab title, notifications).
WAITING = "unread > 0 AND status <> 'resolved' AND (mode = 'human' OR needs_attention)"
# A new message moves its conversation to the top: the newest inbound message among those
# waiting is among the most recent few, and only their messages need to be read.
NEWEST_WAITING = (
    f"SELECT phone FROM contacts WHERE {WAITING} ORDER BY last_message_at DESC LIMIT 20"
)
MAX_BATCH = 512
PRAGMAS = (
    # WAL + synchronous=NORMAL: a process crash loses no committed row (see README).
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = ON",
    # A WAL file larger than this is cut back when SQLite starts it over (store/checkpoint.py).
    f"PRAGMA journal_size_limit = {WAL_FILE_LIMIT:d}",
)
T = TypeVar("T")
MAX_PARAMS = 500  # per IN (...) list, below SQLite's variable limit
MAX_ID = 2**63 - 1
PREVIEW_DEPTH = 200  # messages of a number the inbox looks back through for its preview


@dataclass
class _ContactRow:
    """A contact as the writer holds it while it applies a batch."""

    phone: str
    mode: str = "bot"
    opted_out: bool = False
    opted_out_at: str | None = None
    opt_out_message_id: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    unread: int = 0
    needs_attention: bool = False
    first_seen_at: str = ""
    last_message_at: str = ""
    last_text: str = ""
    flagged: bool = False
    flow: FlowState | None = None
    last_activity_at: str | None = None
    recent_replies: list[tuple[datetime, str]] = field(default_factory=list)
    is_new: bool = True

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> _ContactRow:
        return cls(
            phone=row["phone"],
            mode=row["mode"],
            opted_out=bool(row["opted_out"]),
            opted_out_at=row["opted_out_at"],
            opt_out_message_id=row["opt_out_message_id"],
            fields=_fields_from_json(row["fields"]),
            unread=row["unread"],
            needs_attention=bool(row["needs_attention"]),
            first_seen_at=row["first_seen_at"],
            last_message_at=row["last_message_at"],
            last_text=row["last_text"],
            flagged=bool(row["flagged"]),
            flow=_flow_from_json(row["flow"]),
            last_activity_at=row["last_activity_at"],
            is_new=row["last_activity_at"] is None,  # imported, never wrote: still new
        )

    def as_contact(self) -> Contact:
        return Contact(
            self.phone,
            self.mode,
            self.opted_out,
            dict(self.fields),
            self.is_new,
            moment(self.last_activity_at) if self.last_activity_at else None,
            tuple(self.recent_replies),
            self.flow,
        )

    def params(self) -> tuple[Any, ...]:
        return (
            self.phone,
            self.mode,
            int(self.opted_out),
            self.opted_out_at,
            self.opt_out_message_id,
            json.dumps(self.fields, ensure_ascii=False),
            self.unread,
            int(self.needs_attention),
            self.first_seen_at,
            self.last_message_at,
            self.last_text,
            int(self.flagged),
            _flow_to_json(self.flow),
            self.last_activity_at,
        )


@dataclass
class _Job:
    kind: str  # "inbound", "status" or "outcomes"
    payload: Any
    future: asyncio.Future[Any]


def _fields_from_json(value: str) -> dict[str, Any]:
    """Contact fields as stored. A NaN or Infinity an older version let in reads as null:
    no JSON answer or export could carry it."""
    fields: dict[str, Any] = json.loads(value, parse_constant=lambda _: None)
    return fields


def _flow_to_json(flow: FlowState | None) -> str | None:
    if flow is None:
        return None
    return json.dumps(
        {"name": flow.name, "step": flow.step, "retries": flow.retries, "since": stored(flow.since)}
    )


def _flow_from_json(value: str | None) -> FlowState | None:
    if not value:
        return None
    data = json.loads(value)
    return FlowState(data["name"], data["step"], data["retries"], moment(data["since"]))


def _message(row: sqlite3.Row) -> Message:
    # MESSAGE_COLUMNS are Message's fields in order (as PostgreSQL's pg_rows.message reads
    # them; tests/test_store.py holds them together): by position, with no dict per row (the
    # inbox reads a hundred on every poll).
    (mid, phone, direction, text, status, origin, rule, provider, provider_id, line, error,
     attempts, created_at, updated_at, send_at, failover_from, author) = row  # fmt: skip
    return Message(
        mid, phone, direction, text, status, origin, rule, provider, provider_id, line, error,
        attempts, moment(created_at), moment(updated_at), maybe_moment(send_at), failover_from,
        author,
    )  # fmt: skip


def _outbox_item(row: sqlite3.Row) -> OutboxItem:
    """From `id, phone, text, provider, attempts, created_at, origin, send_at, failover_from`."""
    return OutboxItem(
        row[0], row[1], row[2], row[3], row[4], moment(row[5]), row[6], maybe_moment(row[7]), row[8]
    )


def _attempt(outcome: SendOutcome) -> tuple[str, str]:
    """The provider an attempt was made with, and how it ended."""
    if outcome.status != "queued":
        return outcome.provider, outcome.status
    if outcome.failover_from:
        return outcome.failover_from, "failover"
    return outcome.provider, "retry"


def _statements(script: str) -> list[str]:
    """Splits a migration into statements, letting SQLite say where each one ends."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in pending.splitlines()
    ):
        raise ValueError(f"unterminated statement in migration: {pending.strip()[:60]}")
    return statements


def _fetchall(db: sqlite3.Connection, sql: str, params: Any = ()) -> list[sqlite3.Row]:
    return db.execute(sql, params).fetchall()


def _chunks(items: Sequence[Any], size: int = MAX_PARAMS) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Messages written elsewhere since the last transaction that RecentRows catches up with; past
# this, it starts afresh.
CATCH_UP_ROWS = 5_000


def migration_scripts() -> list[Traversable]:
    """The numbered `migrations/NNNN_*.sql` files, in order."""
    folder = resources.files("responder.store") / "migrations"
    return sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)


def migration_number(script: Traversable) -> int:
    return int(script.name.split("_", 1)[0])


def add_functions(db: sqlite3.Connection) -> None:
    """The functions the writer's statements, triggers and migrations call (0016 on)."""
    db.create_function("fold", 1, normalize_cached, deterministic=True)
    db.create_function("fold_fields", 1, fold_fields_json, deterministic=True)


def migrate(db: sqlite3.Connection, up_to: int | None = None) -> None:
    """Applies numbered `migrations/NNNN_*.sql` files not yet applied, each atomically, up to
    `up_to` (all of them by default; a test or bench builds an older release's database with
    it). `db` needs add_functions."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    scripts = migration_scripts()
    # A table rebuilt to change a constraint (0010) is dropped while others still refer
    # to it: foreign keys are off meanwhile (outside any transaction, as SQLite requires)
    # and checked before each migration commits.
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        for script in scripts:
            number = migration_number(script)
            if up_to is not None and number > up_to:
                break
            if number <= version:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(script.read_text(encoding="utf-8")):
                    db.execute(statement)
                broken = db.execute("PRAGMA foreign_key_check").fetchone()
                if broken is not None:
                    raise sqlite3.IntegrityError(
                        f"migration {script.name} breaks a foreign key in {broken[0]}"
                    )
                db.execute(f"PRAGMA user_version = {number:d}")
                db.execute("COMMIT")
            except sqlite3.Error:
                db.execute("ROLLBACK")
                raise
            log.info("applied migration %s", script.name)
    finally:
        db.execute("PRAGMA foreign_keys = ON")


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class SQLiteStore(
    SQLiteInbox,
    SQLiteMessageCare,
    SQLitePrivacy,
    SQLiteSearch,
    SQLiteTeam,
    SQLiteBroadcastFeed,
    SQLiteContacts,
    SQLiteLabels,
    SQLiteCounts,
):
    """All persistence. Writes go through one connection, one transaction at a time; webhook
    writes arriving together are grouped into one transaction and each caller is answered only
    after that transaction has committed."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        # Who this process is in outbox claims: host, pid and a random part.
        self.instance = instance_id()
        # Writes run on the event loop itself, one short transaction at a time: in WAL mode
        # with synchronous=NORMAL a commit appends to the WAL without fsync, so a batch of
        # webhooks commits in about a millisecond, and the fsyncs of checkpoints run on the
        # checkpointer's thread instead (see store/checkpoint.py). Measured: about 18% more
        # webhooks per second than a writer thread, which pays a thread hop and GIL hand-offs
        # on every statement. Reads go through aiosqlite on their own connection.
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # /healthz's own connection (and thread): a health check never queues behind a long
        # read on the reader, such as a report.
        self._health_reader: aiosqlite.Connection | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self.health = health.WriteHealth()  # how the last write went, for /healthz
        self.checkpointer = WalCheckpointer(path, self._write_lock)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._writer_task: asyncio.Task[None] | None = None
        # What the writer read of each number's recent messages: the next webhook from it
        # reads only what was written since (by any process), not its last hour again.
        self._recent = RecentRows()
        self._erasures: str | None = None  # the `meta` counter RecentRows was read under
        # Called after a commit that queued outbound messages; the outbox worker wakes on it.
        self.on_outbox: Callable[[], None] = lambda: None
        # When set, auto-replies are committed already claimed ('sending') and handed over
        # here after the commit, sparing the worker a claim per inbound batch. A crash before
        # they are sent leaves them 'sending': the next start queues them again.
        self.hand_over: Callable[[list[OutboxItem]], None] | None = None
        self.on_rules_changed: Callable[[], None] = lambda: None  # SQLite: found by polling
        # Given every statement both connections run, with its parameters (bench/startup.py).
        self.trace: Callable[[str], None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._writer = self._connect_writer()
            migrate(self._writer)
            self._reader = await self._connect_reader()
            self._health_reader = await self._connect_reader()
            self._open_checkpointer()
        except sqlite3.Error as err:  # a migration that cannot run: one line, naming the file
            await self.close()
            raise StartupError(f"RESPONDER_DATABASE: {self.path}: {err}") from err
        except BaseException:
            await self.close()  # a connection left open keeps its thread, and the process, alive
            raise
        OPEN_HERE.add(self.instance)
        self._writer_task = asyncio.create_task(self._write_loop(), name="store-writer")
        # The writer has automatic checkpoints turned off, so a commit never waits for one.
        self._checkpoint_task = asyncio.create_task(self.checkpointer.run(), name="checkpoint")

    def _connect_writer(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as err:
            raise StartupError(f"RESPONDER_DATABASE: cannot open {self.path}: {err}") from None
        conn.row_factory = sqlite3.Row
        add_functions(conn)
        if self.trace is not None:
            conn.set_trace_callback(self.trace)
        try:
            for pragma in (*PRAGMAS, "PRAGMA wal_autocheckpoint = 0"):
                conn.execute(pragma)
        except sqlite3.Error as err:
            conn.close()
            raise StartupError(f"RESPONDER_DATABASE: {self.path}: {err}") from None
        return conn

    def _open_checkpointer(self) -> None:
        try:
            self.checkpointer.open()
        except sqlite3.Error as err:
            raise StartupError(f"RESPONDER_DATABASE: {self.path}: {err}") from None

    async def _connect_reader(self) -> aiosqlite.Connection:
        # At DEBUG, aiosqlite logs every statement with its parameters: tokens among them.
        logging.getLogger("aiosqlite").setLevel(logging.INFO)
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as err:
            raise StartupError(f"RESPONDER_DATABASE: cannot open {self.path}: {err}") from None
        conn.row_factory = sqlite3.Row
        if self.trace is not None:
            await conn.set_trace_callback(self.trace)
        try:
            for pragma in PRAGMAS:
                await conn.execute(pragma)
        except sqlite3.Error as err:
            await conn.close()
            raise StartupError(f"RESPONDER_DATABASE: {self.path}: {err}") from None
        return conn

    async def close(self) -> None:
        OPEN_HERE.discard(self.instance)
        for task in (self._writer_task, self._checkpoint_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._writer_task = self._checkpoint_task = None
        await self.checkpointer.close()
        for reader in (self._reader, self._health_reader):
            if reader is not None:
                await reader.close()
        self._reader = self._health_reader = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    @property
    def db(self) -> sqlite3.Connection:
        if self._writer is None:
            raise RuntimeError("store is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` in one transaction, after any transaction already running."""
        db = self.db

        def run() -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")  # may fail too (a full disk shows up here)
            except BaseException:
                # What was read inside may include rows this transaction wrote: not true now.
                self._recent.forget()
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

        async with self._write_lock:
            try:
                result = run()
            except sqlite3.Error as err:
                if not health.unavailable(err):
                    raise
                self.health.failed(err)
                raise StoreUnavailable(f"the database cannot write: {err}") from err
            self.health.succeeded()
            return result

    @property
    def health_reader(self) -> aiosqlite.Connection:
        if self._health_reader is None:
            raise RuntimeError("store is not open")
        return self._health_reader

    async def index_new_numbers(self) -> int:
        """Nothing: the checkpointer writes new contacts' number parts, in batches
        (store/checkpoint.py); PostgreSQL's is a sweep of the service."""
        return 0

    async def ping(self) -> bool:
        rows = await self.health_reader.execute_fetchall("SELECT 1")
        return [tuple(row) for row in rows] == [(1,)]

    async def write_problem(self) -> str | None:
        """Why the database cannot take writes now, or None: too little room left for it, or
        a last write that failed with nothing written since (a small probe write retries)."""
        try:
            async with self._write_lock:
                left, where = health.room(self.db, self.path)
        except (sqlite3.Error, OSError) as err:
            return f"the database's room cannot be read: {err}"
        if left < health.MIN_ROOM:
            return f"the database is full: {left // 1024} KiB left {where}"
        if self.health.probe_due(self.clock.monotonic()):

            def probe(db: sqlite3.Connection) -> None:
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('write_probe', ?)",
                    (stored(self.clock()),),
                )

            with contextlib.suppress(StoreUnavailable):
                await self._transaction(probe)
        return self.health.failure

    # -- grouped writes: inbound messages and delivery reports ------------------------------

    async def receive_inbound(self, job: InboundJob) -> InboundResult:
        """Stores an inbound message with the replies its decision queues, in one commit."""
        result: InboundResult = await self._submit("inbound", job)
        return result

    async def apply_status(self, update: StatusUpdate) -> bool:
        """Records a delivery report; False when no message has that provider id yet (the
        report is then kept, and applied when a send's outcome records the id)."""
        found: bool = await self._submit("status", update)
        return found

    async def _read_one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """The first row of a read, the statement run to its end: a cursor left after its
        first row keeps the reader's snapshot open (until it is collected), and the reader
        then misses what was committed since (a rule version just published read as None)."""
        rows = list(await self.reader.execute_fetchall(sql, params))
        return rows[0] if rows else None

    async def sent_at(self, provider: str, provider_id: str) -> datetime | None:
        """When the message with that provider id was last accepted ('sent')."""
        row = await self._read_one(
            "SELECT MAX(a.at) FROM messages AS m JOIN attempts AS a ON a.message_id = m.id "
            "WHERE m.provider = ? AND m.provider_id = ? AND a.outcome = 'sent'",
            (provider, provider_id),
        )
        return maybe_moment(row[0]) if row is not None else None

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """Messages queued or being sent, and the moment the oldest became due."""
        row = await self._read_one(OUTBOX_BACKLOG)
        if row is None:
            return 0, None
        return int(row[0]), maybe_moment(row[1])

    async def _submit(self, kind: str, payload: Any) -> Any:
        if self._writer_task is None or self._writer_task.done():
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
                results = await self._transaction(partial(self._apply, batch=batch))
            except StoreUnavailable as err:
                # The database cannot write (already logged once, by self.health): each alone
                # would fail the same way, and its caller spools it or answers 503.
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
            results = await self._transaction(partial(self._apply, batch=[job]))
        except Exception as err:
            if not isinstance(err, StoreUnavailable):  # that one is logged once, by self.health
                log.error("a %s write failed: %s", job.kind, err)
            if not job.future.done():
                if isinstance(err, StoreUnavailable):  # already says why, with its cause
                    job.future.set_exception(err)
                else:
                    unavailable = StoreUnavailable(f"{type(err).__name__}: {err}")
                    unavailable.__cause__ = err  # what failed, for callers and tracebacks
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

    def _apply(self, db: sqlite3.Connection, batch: list[_Job]) -> list[Any]:
        results: dict[int, Any] = {}
        # Send outcomes first: a delivery report in the same batch must find its provider id.
        outcomes = [j for j in batch if j.kind == "outcomes"]
        if outcomes:
            self._apply_outcomes(db, outcomes)
        inbound = [j for j in batch if j.kind == "inbound"]
        if inbound:
            for job, res in zip(inbound, self._apply_inbound(db, inbound)):
                results[id(job)] = res
        statuses = [j for j in batch if j.kind == "status"]
        if statuses:
            for job, found in zip(statuses, self._apply_statuses(db, statuses)):
                results[id(job)] = found
        return [results.get(id(j)) for j in batch]

    def _load_contacts(
        self, db: sqlite3.Connection, phones: Sequence[str]
    ) -> dict[str, _ContactRow]:
        found: dict[str, _ContactRow] = {}
        for chunk in _chunks(phones):
            sql = f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE phone IN ({_marks(len(chunk))})"
            for row in _fetchall(db, sql, chunk):
                found[row["phone"]] = _ContactRow.from_row(row)
        missing = [phone for phone in phones if phone not in found]
        for chunk in _chunks(missing):  # forgotten while opted out: a new contact, opted out
            marks = _marks(len(chunk))
            sql = f"SELECT phone, opted_out_at FROM kept_opt_outs WHERE phone IN ({marks})"
            for phone, at in db.execute(sql, chunk).fetchall():
                found[phone] = _ContactRow(
                    phone, opted_out=True, opted_out_at=at, first_seen_at=at, last_message_at=at
                )
        return found

    def _load_activity(self, db: sqlite3.Connection, jobs: list[_Job]) -> dict[str, RecentKnown]:
        """The batch's numbers' recent history: what RecentRows knows plus what was written
        since (one read along the ids); a number it does not know is read newest first along
        (phone, id), back to the widest window any job needs (or RECENT_ROWS messages)."""
        earliest = min(j.payload.message.received_at for j in jobs)
        dedupe = max(j.payload.dedupe_window for j in jobs)
        history = max(j.payload.history_window for j in jobs)
        inbound_since = earliest - timedelta(seconds=dedupe)
        replies_since = earliest - timedelta(seconds=history)
        self._catch_up(db)
        found: dict[str, RecentKnown] = {}
        for phone in sorted({j.payload.message.phone for j in jobs}):
            known = self._recent.get(phone, inbound_since, replies_since)  # kept: moved last
            if known is None:
                known = self._read_recent(db, phone, inbound_since, replies_since)
            # What is older than any window a rule asks for now need not be kept.
            known.prune(inbound_since, replies_since)
            # The batch adds the messages it writes, as Activity.add would read them back,
            # and keeps the result (RecentRows.settle); a rollback forgets all of it (see
            # _transaction).
            found[phone] = known
        return found

    def _catch_up(self, db: sqlite3.Connection) -> None:
        """Brings RecentRows up to date with every message written since its watermark."""
        recent = self._recent
        erasures = read_erasures(db)
        if erasures != self._erasures:  # messages were erased or changed (sqlite_privacy)
            recent.forget()
            self._erasures = erasures
        if recent.watermark is not None:
            cursor = db.cursor()
            cursor.row_factory = None  # plain tuples: a third cheaper than sqlite3.Row
            newer = cursor.execute(
                f"SELECT {ROW_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                (recent.watermark, CATCH_UP_ROWS + 1),
            ).fetchall()
            if len(newer) <= CATCH_UP_ROWS:
                for row in newer:
                    recent.add(row)
                recent.watermark = newer[-1][0] if newer else recent.watermark
                return
            recent.forget()  # a flood elsewhere: cheaper to read each number afresh
        recent.watermark = self._next_message_id(db) - 1

    @staticmethod
    def _read_recent(
        db: sqlite3.Connection, phone: str, inbound_since: datetime, replies_since: datetime
    ) -> RecentKnown:
        cursor = db.cursor()
        cursor.row_factory = None
        cursor.execute(
            f"SELECT {ROW_COLUMNS} FROM messages WHERE phone = ? ORDER BY id DESC LIMIT ?",
            (phone, RECENT_ROWS),
        )
        rows = []
        oldest = stored(min(inbound_since, replies_since))
        for row in cursor:  # read lazily: most numbers stop after a row or two
            if row[-1] < oldest:
                break
            rows.append(row)
        cursor.close()
        activity = Activity()
        for row in reversed(rows):
            activity.add(row)
        return RecentKnown(inbound_since, replies_since, activity)

    def _next_message_id(self, db: sqlite3.Connection) -> int:
        # Safe: ids are assigned inside a BEGIN IMMEDIATE transaction, under the one write lock
        # of every process on the file (RecentRows relies on it: later commits, higher ids).
        # Never below an id given before messages were erased (sqlite_privacy.keep_id_high).
        row = db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM messages), 0), COALESCE((SELECT "
            "CAST(value AS INTEGER) FROM meta WHERE key = 'message_id_high'), 0)) + 1"
        ).fetchone()
        return int(row[0]) if row else 1

    def _apply_inbound(self, db: sqlite3.Connection, jobs: list[_Job]) -> list[InboundResult]:
        contacts = self._load_contacts(db, sorted({j.payload.message.phone for j in jobs}))
        history = self._load_activity(db, jobs)
        next_id = self._next_message_id(db)
        # Replies handed over are leased from now (a replayed message may be old): one
        # reading of the clock for the batch, which commits within milliseconds.
        lease = stored(self.clock() + LEASE)
        message_rows: list[tuple[Any, ...]] = []
        results: list[InboundResult] = []
        for job in jobs:
            msg = job.payload.message
            received = stored(msg.received_at)
            line = msg.line or ""
            window = timedelta(seconds=job.payload.dedupe_window)
            activity = history[msg.phone].activity
            earlier = activity.duplicate_of(line, msg.text, msg.received_at - window)
            if job.payload.dedupe_window > 0 and earlier is not None:
                duplicate = Decision(None, (), f"duplicate of message {earlier}")
                results.append(InboundResult(earlier, (), duplicate, duplicate=True))
                continue
            activity.inbound.append((msg.received_at, line, msg.text, next_id))
            contact = contacts.get(msg.phone) or _ContactRow(msg.phone, first_seen_at=received)
            contact.recent_replies = list(activity.replies)
            try:
                decision = job.payload.decide(contact.as_contact())
            except Exception as err:  # a bug in deciding must not lose the message
                log.exception("deciding on a message from %s failed", msg.phone)
                decision = Decision(None, (), "internal error", error=f"internal error: {err}")
            in_id, next_id = next_id, next_id + 1
            message_rows.append(
                (
                    in_id,
                    msg.phone,
                    "in",
                    msg.text,
                    "received",
                    msg.provider,
                    decision.rule,
                    None,
                    None,
                    msg.line,
                    decision.error,
                    0,
                    received,
                    received,
                    None,
                    None,
                    None,
                    None,
                    None,
                )
            )
            claimed = []
            for reply in decision.replies:
                row = self._outbound_row(next_id, msg.phone, reply, "auto", decision.rule, received)
                if self.hand_over is not None:
                    row = (*row[:4], "sending", *row[5:11], 1, *row[12:17], self.instance, lease)
                    claimed.append(
                        OutboxItem(next_id, msg.phone, reply.text, row[7], 1, msg.received_at)
                    )
                message_rows.append(row)
                next_id += 1
            self._update_contact(contact, decision, in_id, received, msg.text)
            if decision.rule not in ("opt_out", "opt_in"):
                activity.replies.extend((msg.received_at, r.text) for r in decision.replies)
            contacts[msg.phone] = contact
            reply_ids = tuple(range(next_id - len(decision.replies), next_id))
            results.append(InboundResult(in_id, reply_ids, decision, claimed=tuple(claimed)))
        db.executemany(INSERT_MESSAGE, message_rows)
        # Every message up to the batch's own is known now (_catch_up read the rest, under the
        # same write lock): the next transaction need not read these back.
        self._recent.watermark = next_id - 1
        # What the batch did to each number's activity is kept (and counts toward the bound).
        self._recent.settle(history)
        # Opt-out wins over what is already waiting: nothing queued before it goes out.
        stopped = [
            (stored(j.payload.message.received_at), j.payload.message.phone, r.message_id)
            for j, r in zip(jobs, results)
            if r.decision.opted_out and not r.duplicate
        ]
        db.executemany(
            "UPDATE messages SET status = 'failed', error = 'not sent: the number opted out', "
            "next_attempt_at = NULL, updated_at = ? WHERE phone = ? AND direction = 'out' "
            "AND status IN ('queued', 'scheduled') AND id < ?",
            stopped,
        )
        touched = {j.payload.message.phone for j, r in zip(jobs, results) if not r.duplicate}
        db.executemany(UPSERT_CONTACT, [contacts[p].params() for p in sorted(touched)])
        for job, result in zip(jobs, results):
            if not result.duplicate:
                apply_labels(db, job.payload.message.phone, result.decision)
        # A message from the customer reopens a resolved conversation.
        db.executemany(
            "UPDATE contacts SET status = 'open' WHERE phone = ? AND status = 'resolved'",
            [(p,) for p in sorted(touched)],
        )
        return results

    @staticmethod
    def _outbound_row(
        message_id: int,
        phone: str,
        reply: Reply,
        origin: str,
        rule: str | None,
        at: str,
        send_at: str | None = None,
        due: str | None = None,
    ) -> tuple[Any, ...]:
        """An outbox row: 'scheduled' when it has a send time, due at `due` (default: now)."""
        status = "scheduled" if send_at else "queued"
        provider = reply.via or "sandbox"
        return (
            *(message_id, phone, "out", reply.text, status, origin, rule, provider, None),
            *(None, None, 0, at, at, send_at, None, due or at, None, None),
        )

    @staticmethod
    def _update_contact(
        contact: _ContactRow, decision: Decision, in_id: int, at: str, text: str
    ) -> None:
        contact.is_new = False
        contact.last_activity_at = at
        contact.fields.update(decision.fields)
        if decision.flow_changed:
            contact.flow = decision.flow
        if decision.flagged:
            contact.flagged = True

        contact.unread += 1
        contact.last_message_at = at
        contact.last_text = decision.replies[-1].text if decision.replies else text
        if decision.mode is not None:
            contact.mode = decision.mode
        if decision.opted_out is not None:
            contact.opted_out = decision.opted_out
            contact.opted_out_at = at if decision.opted_out else None
            contact.opt_out_message_id = in_id if decision.opted_out else None
        # Until a person replies or resolves it: a later answer by the bot does not settle it.
        contact.needs_attention = decision.needs_attention or contact.needs_attention

    def _apply_statuses(self, db: sqlite3.Connection, jobs: list[_Job]) -> list[bool]:
        # The order statuses follow, and reports kept for ids not recorded yet: reports.py.
        return reports.apply_reports(db, [j.payload for j in jobs])

    # -- other writes -----------------------------------------------------------------------

    # -- rules versions ----------------------------------------------------------------------

    @staticmethod
    def _rule_version(row: sqlite3.Row) -> RuleVersion:
        return RuleVersion(
            row["id"],
            moment(row["created_at"]),
            row["author"],
            row["source"],
            row["note"],
            row["sha256"],
            row["rules"],
            json.loads(row["templates"]),
        )

    async def latest_rule_version_id(self) -> int | None:
        row = await self._read_one("SELECT MAX(id) FROM rule_versions")
        return None if row is None or row[0] is None else int(row[0])

    async def rule_version(self, version_id: int) -> RuleVersion | None:
        rows = list(
            await self.reader.execute_fetchall(
                "SELECT * FROM rule_versions WHERE id = ?", (version_id,)
            )
        )
        return self._rule_version(rows[0]) if rows else None

    async def rule_versions(self, limit: int = 100) -> list[RuleVersion]:
        rows = await self.reader.execute_fetchall(
            "SELECT * FROM rule_versions ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [self._rule_version(row) for row in rows]

    async def rule_version_with_sha(self, sha256: str) -> RuleVersion | None:
        rows = list(
            await self.reader.execute_fetchall(
                "SELECT * FROM rule_versions WHERE sha256 = ? ORDER BY id DESC LIMIT 1",
                (sha256,),
            )
        )
        return self._rule_version(rows[0]) if rows else None

    async def add_rule_version(
        self,
        rules: str,
        templates: dict[str, str],
        *,
        sha256: str,
        source: RuleSource,
        author: str | None = None,
        note: str = "",
        base: int | None = None,
        check_base: bool = False,
    ) -> RuleVersion:
        """Publishes a version; with `check_base`, refuses (StaleRuleVersion) unless `base` is
        still the newest version, in the same transaction that adds it."""
        at = stored(self.clock())

        def work(db: sqlite3.Connection) -> int:
            latest = db.execute("SELECT MAX(id) FROM rule_versions").fetchone()[0]
            if check_base and latest != base:
                raise StaleRuleVersion(latest)
            cursor = db.execute(
                "INSERT INTO rule_versions (created_at, author, source, note, sha256, rules, "
                "templates) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    at,
                    author,
                    source,
                    note,
                    sha256,
                    rules,
                    json.dumps(templates, ensure_ascii=False),
                ),
            )
            return int(cursor.lastrowid or 0)

        version_id: int = await self._transaction(work)
        found = await self.rule_version(version_id)
        assert found is not None
        return found

    async def try_lease(self, name: str, seconds: float) -> bool:
        """Takes (or keeps) the lease on singleton work `name` for `seconds`: True when this
        instance holds it now. A holder that stops renewing loses it when it expires."""
        moment_now = self.clock()
        now, until = stored(moment_now), stored(moment_now + timedelta(seconds=seconds))

        def work(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until "
                "WHERE leases.holder = excluded.holder OR leases.until < ? RETURNING holder",
                (name, self.instance, until, now),
            ).fetchone()
            return row is not None

        held: bool = await self._transaction(work)
        return held

    async def take_send_budget(self, provider: str, rate: float, count: int) -> float:
        """A token bucket shared by every instance: at most `rate` messages per second on
        average, bursts of one second. Takes `count` and answers 0, or answers the seconds to
        wait before asking again (nothing taken). A batch larger than a second's worth waits
        for a full second's worth, then goes (the bucket runs into debt)."""
        moment_now = self.clock()

        def work(db: sqlite3.Connection) -> float:
            row = db.execute(
                "SELECT tokens, stamp FROM send_budgets WHERE provider = ?", (provider,)
            ).fetchone()
            tokens = rate
            if row is not None:
                elapsed = max(0.0, (moment_now - moment(row["stamp"])).total_seconds())
                tokens = min(rate, row["tokens"] + elapsed * rate)
            needed = min(count, rate)
            wait = 0.0 if tokens >= needed else (needed - tokens) / rate
            db.execute(
                "INSERT INTO send_budgets (provider, tokens, stamp) VALUES (?, ?, ?) "
                "ON CONFLICT (provider) DO UPDATE SET tokens = excluded.tokens, "
                "stamp = excluded.stamp",
                (provider, tokens - count if wait == 0.0 else tokens, stored(moment_now)),
            )
            return wait

        wait: float = await self._transaction(work)
        return wait

    async def record_sign_in_failure(self, keys: Sequence[str]) -> None:
        """One failed sign-in, counted under each key (the account, the client address)."""
        moment_now = self.clock()

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT INTO sign_in_failures (key, at) VALUES (?, ?)",
                [(key, stored(moment_now)) for key in keys],
            )
            # Nothing older than a day decides anything: keep the table small.
            db.execute(
                "DELETE FROM sign_in_failures WHERE at < ?",
                (stored(moment_now - timedelta(days=1)),),
            )

        await self._transaction(work)

    async def sign_in_failures(self, key: str, since: datetime) -> list[datetime]:
        rows = await self.reader.execute_fetchall(
            "SELECT at FROM sign_in_failures WHERE key = ? AND at > ? ORDER BY at",
            (key, stored(since)),
        )
        return [moment(row[0]) for row in rows]

    async def clear_sign_in_failures(self, key: str) -> None:
        await self._transaction(
            lambda db: db.execute("DELETE FROM sign_in_failures WHERE key = ?", (key,))
        )

    async def save_balance(self, provider: str, credits: float | None, error: str | None) -> None:
        at = stored(self.clock())
        await self._transaction(
            lambda db: db.execute(
                "INSERT INTO balances (provider, credits, error, checked_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (provider) DO UPDATE SET credits = excluded.credits, "
                "error = excluded.error, checked_at = excluded.checked_at",
                (provider, credits, error, at),
            )
        )

    async def balances(self) -> dict[str, tuple[float | None, str | None, datetime]]:
        rows = await self.health_reader.execute_fetchall(  # /healthz reads them: as ping
            "SELECT provider, credits, error, checked_at FROM balances ORDER BY provider"
        )
        return {row[0]: (row[1], row[2], moment(row[3])) for row in rows}

    async def iter_messages(self, batch: int = 1000) -> AsyncIterator[Message]:
        """Every message, oldest first, read in pages along the primary key: memory stays flat
        whatever the size of the database."""
        after = 0
        while True:
            rows = list(
                await self.reader.execute_fetchall(
                    f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id > ? ORDER BY id LIMIT ?",
                    (after, batch),
                )
            )
            for row in rows:
                yield _message(row)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    async def conversations_after(self, phone: str, limit: int) -> list[Conversation]:
        """Up to `limit` conversations whose number sorts after `phone` ("" for the first),
        in number order: a keyset page for exports, fast at any depth."""
        rows = await self.reader.execute_fetchall(
            f"SELECT {CONVERSATION_COLUMNS} FROM contacts WHERE phone > ? "
            f"AND {CONVERSATIONS_ONLY} ORDER BY phone LIMIT ?",
            (phone, limit),
        )
        return [self._conversation(row) for row in rows]

    async def messages_after(self, after: tuple[str, int], last: str, limit: int) -> list[Message]:
        """Up to `limit` messages after the key `after` (number, id) and of numbers up to
        `last`, in key order: one keyset page over many conversations at once."""
        rows = await self.reader.execute_fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE (phone, id) > (?, ?) "
            "AND phone <= ? ORDER BY phone, id LIMIT ?",
            (*after, last, limit),
        )
        return [_message(row) for row in rows]

    async def message_total(self) -> int:
        rows = list(await self.reader.execute_fetchall("SELECT count(*) FROM messages"))
        return int(rows[0][0])

    async def meta_value(self, key: str, default: Callable[[], str]) -> str:
        """The stored value of `key`, storing `default()` first when there is none."""

        def work(db: sqlite3.Connection) -> str:
            row = (db.execute("SELECT value FROM meta WHERE key = ?", (key,))).fetchone()
            if row is not None:
                return str(row[0])
            value = default()
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            return value

        value: str = await self._transaction(work)
        return value

    async def record_overruns(self, overruns: Sequence[Overrun]) -> None:
        """Counts patterns and templates that went over their budget (store/overruns.py)."""
        now = self.clock()

        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (OVERRUNS_KEY,)).fetchone()
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (OVERRUNS_KEY, merged(row[0] if row else None, overruns, now)),
            )

        await self._transaction(work)

    async def overruns(self) -> list[OverrunRecord]:
        rows = list(
            await self.reader.execute_fetchall(
                "SELECT value FROM meta WHERE key = ?", (OVERRUNS_KEY,)
            )
        )
        return records(rows[0][0] if rows else None)

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

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO rejected_webhooks (received_at, method, path, query, body, "
                "content_type, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stored(self.clock()), method, path, query, body, content_type, reason),
            )

        await self._transaction(work)

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
        now = stored(self.clock())
        scheduled = stored(send_at) if send_at else None
        due_moment = due or send_at
        due_at = stored(due_moment) if due_moment else None

        def work(db: sqlite3.Connection) -> list[Message]:
            contact = (self._load_contacts(db, [phone])).get(phone)
            if contact is None:
                contact = _ContactRow(phone, first_seen_at=now)
            if contact.opted_out:
                raise OptedOutError(f"{phone} has opted out; it must send ALTA to receive again")
            next_id = self._next_message_id(db)
            ids = list(range(next_id, next_id + len(replies)))
            rows = [
                self._outbound_row(i, phone, reply, origin, None, now, scheduled, due_at)
                for i, reply in zip(ids, replies)
            ]
            db.executemany(INSERT_MESSAGE, rows)
            if author is not None:
                db.execute("UPDATE messages SET author = ? WHERE id >= ?", (author, next_id))
            contact.last_message_at = contact.last_activity_at = now
            contact.last_text = replies[-1].text if replies else contact.last_text
            contact.unread = 0
            contact.needs_attention = False
            if handoff:
                contact.mode = "human"
            db.execute(UPSERT_CONTACT, contact.params())
            queued = _fetchall(
                db, f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id >= ? ORDER BY id", (next_id,)
            )
            return [_message(row) for row in queued]

        queued: list[Message] = await self._transaction(work)
        self.on_outbox()
        return queued

    async def contacts_in_flows(self, after: str = "", limit: int = MAX_ID) -> list[Contact]:
        """Up to `limit` contacts a flow is waiting on (for its timeout), in number order after
        `after`: a keyset page."""
        rows = await self.reader.execute_fetchall(
            f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE flow IS NOT NULL AND phone > ? "
            "ORDER BY phone LIMIT ?",
            (after, limit),
        )
        return [_ContactRow.from_row(row).as_contact() for row in rows]

    async def apply_decisions(self, timeouts: Sequence[FlowTimeout]) -> list[int]:
        """Applies decisions no inbound message caused (flows timing out), all in one commit:
        each one's replies are queued and its contact's flow state changes. A contact whose
        flow is no longer the one expected (an answer came in meanwhile), or that is gone, is
        left as it is. Returns the ids of the queued replies."""
        now = stored(self.clock())

        def work(db: sqlite3.Connection) -> list[int]:
            contacts = self._load_contacts(db, sorted({t.phone for t in timeouts}))
            rows: list[tuple[Any, ...]] = []
            changed: dict[str, _ContactRow] = {}
            next_id = self._next_message_id(db)
            for timeout in timeouts:
                contact, decision = contacts.get(timeout.phone), timeout.decision
                if contact is None or contact.flow != timeout.expected:
                    continue
                for reply in decision.replies:
                    rows.append(
                        self._outbound_row(
                            next_id + len(rows), contact.phone, reply, "auto", decision.rule, now
                        )
                    )
                end_flow(contact, decision, now)
                changed[contact.phone] = contact
            db.executemany(INSERT_MESSAGE, rows)
            db.executemany(UPSERT_CONTACT, [c.params() for c in changed.values()])
            return [row[0] for row in rows]

        ids: list[int] = await self._transaction(work)
        if ids:
            self.on_outbox()
        return ids

    async def set_mode(self, phone: str, mode: str) -> Conversation:
        def work(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "UPDATE contacts SET mode = ?, needs_attention = 0, unread = 0, "
                "flagged = CASE WHEN ? = 'bot' THEN 0 ELSE flagged END WHERE phone = ?",
                (mode, mode, phone),
            )
            return cursor.rowcount

        if not await self._transaction(work):
            raise UnknownContactError(phone)
        return await self.conversation(phone)

    def _expired_claims(self, db: sqlite3.Connection, now: str) -> list[int]:
        """Messages left 'sending' by an instance that stopped renewing its lease, or by a dead
        process on this machine (its pid is gone, or is ours now): a crashed single instance
        restarts without waiting for the lease."""
        rows = _fetchall(
            db,
            "SELECT id, claimed_by, lease_until FROM messages WHERE status = 'sending' "
            "AND (lease_until < ? OR claimed_by LIKE ?) AND claimed_by IS NOT ?",
            (now, f"{this_host_prefix()}%", self.instance),
        )
        return [r["id"] for r in rows if r["lease_until"] < now or owner_dead(r["claimed_by"])]

    def _release(self, db: sqlite3.Connection, ids: Sequence[int], now: str, fail: bool) -> int:
        """Interrupted sends go back to the queue (at-least-once: a missed reply is worse than a
        rare duplicate), or fail as interrupted (at-most-once)."""
        for chunk in _chunks(ids):
            if fail:
                db.execute(
                    "UPDATE messages SET status = 'failed', updated_at = ?, claimed_by = NULL, "
                    "lease_until = NULL, "
                    "error = 'interrupted while sending; not retried (delivery: at_most_once)' "
                    f"WHERE id IN ({_marks(len(chunk))}) AND status = 'sending'",
                    (now, *chunk),
                )
            else:
                db.execute(
                    "UPDATE messages SET status = 'queued', updated_at = ?, claimed_by = NULL, "
                    f"lease_until = NULL WHERE id IN ({_marks(len(chunk))}) AND status = 'sending'",
                    (now, *chunk),
                )
        return len(ids)

    async def release_expired(self, at_most_once: bool = False) -> int:
        """Takes back the sends of instances that are gone (expired leases); never those of a
        live instance, which may be waiting for a gateway's answer right now."""
        now = stored(self.clock())
        count: int = await self._transaction(
            lambda db: self._release(db, self._expired_claims(db, now), now, at_most_once)
        )
        return count

    async def release_own(self, at_most_once: bool = False) -> int:
        """At a stop: this instance's sends still 'sending' after the grace period."""
        now = stored(self.clock())

        def work(db: sqlite3.Connection) -> int:
            rows = _fetchall(
                db,
                "SELECT id FROM messages WHERE status = 'sending' AND claimed_by = ?",
                (self.instance,),
            )
            return self._release(db, [r["id"] for r in rows], now, at_most_once)

        count: int = await self._transaction(work)
        return count

    async def renew_leases(self, ids: Sequence[int]) -> None:
        """Keeps this instance's claims alive while their sends are in flight."""
        if not ids:
            return
        now = self.clock()
        until = stored(now + LEASE)

        def work(db: sqlite3.Connection) -> None:
            for chunk in _chunks(ids):
                db.execute(
                    f"UPDATE messages SET lease_until = ? WHERE id IN ({_marks(len(chunk))}) "
                    "AND status = 'sending' AND claimed_by = ?",
                    (until, *chunk, self.instance),
                )

        await self._transaction(work)

    async def claim_outbox(self, limit: int, at_most_once: bool = False) -> list[OutboxItem]:
        """Marks up to `limit` due messages 'sending' before any provider call, stamped with
        this instance and a lease: replies to customers first, then staff, CLI and scheduled
        messages; oldest first within each. Expired claims of other instances are released
        first, in the same transaction."""
        moment = self.clock()
        now, lease = stored(moment), stored(moment + LEASE)

        def work(db: sqlite3.Connection) -> list[OutboxItem]:
            self._release(db, self._expired_claims(db, now), now, at_most_once)
            rows = _fetchall(
                db,
                "UPDATE messages SET status = 'sending', attempts = attempts + 1, updated_at = ?, "
                "claimed_by = ?, lease_until = ? "
                "WHERE id IN (SELECT id FROM messages AS m WHERE status IN ('queued', 'scheduled') "
                "AND next_attempt_at <= ? AND (rule IS 'opt_out' OR NOT EXISTS ("
                "SELECT 1 FROM contacts WHERE contacts.phone = m.phone AND opted_out = 1)) "
                f"AND {BROADCAST_CLAIMABLE} "
                "ORDER BY origin != 'auto', broadcast_id IS NOT NULL, next_attempt_at, id "
                "LIMIT ?) "
                "RETURNING id, phone, text, provider, attempts, created_at, origin, send_at, "
                "failover_from",
                (now, self.instance, lease, now, limit),
            )
            items = [_outbox_item(row) for row in rows]
            return sorted(items, key=lambda item: (item.origin != "auto", item.id))

        claimed: list[OutboxItem] = await self._transaction(work)
        return claimed

    async def record_outcomes(
        self, outcomes: Sequence[SendOutcome], first_poll_after: float = 10.0
    ) -> None:
        """Stores what each send attempt produced, and the attempt itself; a message now 'sent'
        is due for a status poll after `first_poll_after` seconds (if its provider polls).
        Grouped with the webhooks' writes: one commit serves both."""
        moment = self.clock()
        first_poll = stored(moment + timedelta(seconds=first_poll_after))
        await self._submit("outcomes", (list(outcomes), stored(moment), first_poll))

    def _apply_outcomes(self, db: sqlite3.Connection, jobs: list[_Job]) -> None:
        updates, attempts = [], []
        for job in jobs:
            outcomes, now, first_poll = job.payload
            for o in outcomes:
                updates.append(
                    {
                        "id": o.id,
                        "status": o.status,
                        "provider": o.provider,
                        "provider_id": o.provider_id,
                        "error": o.error,
                        "retry_at": stored(o.retry_at) if o.retry_at else None,
                        "now": now,
                        "first_poll": first_poll,
                        "failover_from": o.failover_from,
                    }
                )
                attempts.append((now, *_attempt(o), o.error, o.id))
        # Only a queued message has a next attempt; only one in flight is polled. A message
        # erased since it was claimed (store/sqlite_privacy.py) is not there: nothing to record.
        db.executemany(
            "UPDATE messages SET status = :status, provider = :provider, "
            "provider_id = COALESCE(:provider_id, provider_id), error = :error, "
            "next_attempt_at = CASE WHEN :status = 'queued' "
            "THEN COALESCE(:retry_at, next_attempt_at) END, "
            "next_poll_at = CASE WHEN :status IN ('sent', 'scheduled') THEN :first_poll END, "
            "failover_from = COALESCE(:failover_from, failover_from), updated_at = :now, "
            "claimed_by = NULL, lease_until = NULL "
            # A delivery report that came first is final: 'sent' must not undo it.
            "WHERE id = :id AND NOT (status IN ('delivered', 'failed') AND :status = 'sent')",
            updates,
        )
        db.executemany(
            "INSERT INTO attempts (message_id, at, provider, outcome, error) "
            "SELECT id, ?, ?, ?, ? FROM messages WHERE id = ?",
            attempts,
        )
        # Delivery reports that overtook these answers apply now, in the same transaction
        # (those naming an erased message go with it).
        recorded = [(u["id"], u["provider"], u["provider_id"]) for u in updates if u["provider_id"]]
        reports.apply_early_reports(db, recorded, self.clock())

    async def claim_polls(
        self, providers: Sequence[str], limit: int, hold: float = 60.0
    ) -> list[PollItem]:
        """Messages in flight whose next status poll is due, claimed: their next poll moves
        `hold` seconds ahead first, so another instance does not ask about them too."""
        if not providers:
            return []
        moment_now = self.clock()
        now, held = stored(moment_now), stored(moment_now + timedelta(seconds=hold))

        def work(db: sqlite3.Connection) -> list[PollItem]:
            rows = _fetchall(
                db,
                "UPDATE messages SET next_poll_at = ? WHERE id IN (SELECT id FROM messages "
                f"WHERE provider IN ({_marks(len(providers))}) AND next_poll_at IS NOT NULL "
                "AND next_poll_at <= ? ORDER BY next_poll_at LIMIT ?) "
                "RETURNING id, provider, provider_id, created_at, polls, send_at",
                (held, *providers, now, limit),
            )
            return [
                PollItem(r[0], r[1], r[2], moment(r[3]), r[4], maybe_moment(r[5])) for r in rows
            ]

        claimed: list[PollItem] = await self._transaction(work)
        return sorted(claimed, key=lambda item: item.id)

    async def record_polls(self, results: Sequence[PollResult]) -> None:
        """Stores what status polls found; a final status or giving up ends the polling."""
        now = stored(self.clock())
        rows = [
            (
                r.status,
                r.error,
                stored(r.next_poll_at) if r.next_poll_at else None,
                now,
                r.id,
            )
            for r in results
        ]

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "UPDATE messages SET status = COALESCE(?, status), error = COALESCE(?, error), "
                "polls = polls + 1, next_poll_at = ?, updated_at = ? WHERE id = ?",
                rows,
            )

        await self._transaction(work)

    # -- reads ------------------------------------------------------------------------------

    async def conversations(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        mode: str | None = None,
        needs_attention: bool | None = None,
        opted_out: bool | None = None,
        assigned: str | None = None,
        status: str | None = None,
        after: ConversationKey | None = None,
    ) -> list[Conversation]:
        """Conversations newest first (then by number), optionally only those in a mode or
        state; `after`: those that come after that conversation (a keyset page)."""
        conditions, params = state_filters(mode, needs_attention, opted_out, assigned, status)
        if after is not None:
            at = stored(after[0])
            conditions.append("last_message_at <= ? AND (last_message_at < ? OR phone > ?)")
            params.extend((at, at, after[1]))
        rows = await self.reader.execute_fetchall(
            f"SELECT {CONVERSATION_COLUMNS} FROM contacts WHERE {' AND '.join(conditions)} "
            "ORDER BY last_message_at DESC, phone LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [self._conversation(row) for row in rows]

    async def update_fields(self, phone: str, changes: dict[str, Any]) -> Conversation:
        """Sets contact fields (a None value removes the field)."""

        def work(db: sqlite3.Connection) -> None:
            contact = (self._load_contacts(db, [phone])).get(phone)
            if contact is None:
                raise UnknownContactError(phone)
            for name, value in changes.items():
                if value is None:
                    contact.fields.pop(name, None)
                else:
                    contact.fields[name] = value
            db.execute(
                "UPDATE contacts SET fields = ?1, folded = fold_fields(?1) WHERE phone = ?2",
                (json.dumps(contact.fields, ensure_ascii=False), phone),
            )

        await self._transaction(work)
        return await self.conversation(phone)

    async def update_labels(
        self, phone: str, add: Sequence[str], remove: Sequence[str], only: bool = False
    ) -> Conversation:
        """Adds the labels `add`, then removes `remove`; `only`: drops every other label."""

        def work(db: sqlite3.Connection) -> None:
            if db.execute("SELECT 1 FROM contacts WHERE phone = ?", (phone,)).fetchone() is None:
                raise UnknownContactError(phone)
            if only:
                db.execute("DELETE FROM contact_labels WHERE phone = ?", (phone,))
            apply_labels(db, phone, Decision(None, (), "", label=tuple(add), unlabel=tuple(remove)))

        await self._transaction(work)
        return await self.conversation(phone)

    async def conversation(self, phone: str) -> Conversation:
        rows = await self.reader.execute_fetchall(
            f"SELECT {CONVERSATION_COLUMNS} FROM contacts WHERE phone = ?", (phone,)
        )
        if not rows:
            raise UnknownContactError(phone)
        return self._conversation(next(iter(rows)))

    @staticmethod
    def _conversation(row: sqlite3.Row) -> Conversation:
        return Conversation(
            phone=row["phone"],
            last_message_at=moment(row["last_message_at"]),
            last_text=row["last_text"],
            mode=row["mode"],
            opted_out=bool(row["opted_out"]),
            opted_out_at=maybe_moment(row["opted_out_at"]),
            unread=row["unread"],
            needs_attention=bool(row["needs_attention"]),
            flagged=bool(row["flagged"]),
            fields=_fields_from_json(row["fields"]),
            assigned_to=row["assigned_to"],
            status=row["status"],
            labels=tuple(sorted(json.loads(row["labels"]))),
        )

    async def messages(self, phone: str) -> list[Message]:
        rows = await self.reader.execute_fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE phone = ? ORDER BY id", (phone,)
        )
        return [_message(row) for row in rows]

    async def message_page(
        self, phone: str, before: int | None = None, limit: int = 200, since_id: int = 0
    ) -> list[Message]:
        """Up to `limit` of `phone`'s newest messages with an id below `before` (None: the
        newest) and not below `since_id`, oldest first: a keyset page read backwards along
        (phone, id), however long the conversation."""
        rows = await self.reader.execute_fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE phone = ? AND id < ? AND id >= ? "
            "ORDER BY id DESC LIMIT ?",
            (phone, MAX_ID if before is None else before, since_id, limit),
        )
        return [_message(row) for row in reversed(list(rows))]

    async def messages_by_id(self, ids: Sequence[int]) -> list[Message]:
        found: list[Message] = []
        for chunk in _chunks(ids):
            rows = await self.reader.execute_fetchall(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({_marks(len(chunk))}) "
                "ORDER BY id",
                chunk,
            )
            found.extend(_message(row) for row in rows)
        return found

    async def message_attempts(self, message_id: int) -> list[dict[str, Any]]:
        rows = await self.reader.execute_fetchall(
            "SELECT at, provider, outcome, error FROM attempts WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        return [dict(row) for row in rows]

    async def all_messages(self) -> list[Message]:
        rows = await self.reader.execute_fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY id"
        )
        return [_message(row) for row in rows]

    async def rejected_webhooks(self) -> list[dict[str, Any]]:
        rows = await self.reader.execute_fetchall(
            "SELECT id, received_at, method, path, query, body, content_type, reason "
            "FROM rejected_webhooks ORDER BY id"
        )
        return [dict(row) for row in rows]

    # -- admin web inbox: search, read marks and dashboard aggregates ------------------------

    async def last_messages(self, phones: Sequence[str]) -> list[Message]:
        """Each number's newest inbound and newest outbound message (the inbox's preview)."""
        # Each found by walking the number's (phone, id) index back from its newest message,
        # at most PREVIEW_DEPTH steps (a number with thousands of sends and no answer stops
        # there), where MAX(id) GROUP BY direction read every message of a busy number.
        found: list[Message] = []
        for chunk in _chunks(phones, 100):  # 200 SELECTs: below SQLite's 500 per compound
            newest = " UNION ALL ".join(
                "SELECT (SELECT id FROM (SELECT id, direction FROM messages WHERE phone = ? "
                f"AND broadcast_id IS NULL ORDER BY id DESC LIMIT {PREVIEW_DEPTH:d}) "
                f"WHERE direction = '{d}' LIMIT 1)"
                for _ in chunk
                for d in ("in", "out")
            )
            rows = await self.reader.execute_fetchall(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({newest}) ORDER BY id",
                [phone for phone in chunk for _ in ("in", "out")],
            )
            found.extend(_message(row) for row in rows)
        return found

    async def waiting(self) -> Waiting:
        """Conversations with unread messages that a person must answer (handed to a person,
        or needing attention), and the newest inbound message among them."""
        rows = await self.reader.execute_fetchall(f"SELECT COUNT(*) FROM contacts WHERE {WAITING}")
        count = int(next(iter(rows))[0])
        if not count:
            return Waiting(0, None)
        # Each number's newest inbound message, found walking back at most PREVIEW_DEPTH of
        # its messages (MAX(id) over a busy number's every message was the cost of a poll).
        newest = await self.reader.execute_fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = (SELECT MAX((SELECT id FROM "
            "(SELECT id, direction FROM messages WHERE phone = w.phone ORDER BY id DESC "
            f"LIMIT {PREVIEW_DEPTH:d}) WHERE direction = 'in' LIMIT 1)) FROM ({NEWEST_WAITING}) "
            "AS w)"
        )
        return Waiting(count, next((_message(row) for row in newest), None))

    async def mark_read(self, phone: str) -> None:
        """Staff have seen the conversation: its unread count goes back to zero."""

        def work(db: sqlite3.Connection) -> None:
            db.execute("UPDATE contacts SET unread = 0 WHERE phone = ? AND unread > 0", (phone,))

        await self._transaction(work)

    async def conversation_counts(self, me: str | None = None) -> dict[str, int]:
        """How many conversations there are in all, with people, needing attention, opted out,
        with unread messages, assigned to nobody, resolved, and assigned to `me` (a search's
        counts: search_counts)."""
        # Kept by triggers (migration 0022); "mine" on contacts_by_assignee.
        kept = await self.reader.execute_fetchall(
            "SELECT total, human, needs_attention, opted_out, unread, unassigned, resolved, "
            "(SELECT COUNT(*) FROM contacts WHERE assigned_to = ? AND "
            f"{CONVERSATIONS_ONLY}) FROM conversation_counts",
            (me,),
        )
        found = next(iter(kept), None)
        if found is not None:
            return dict(zip(COUNT_KEYS, (int(v) for v in found)))
        rows = await self.reader.execute_fetchall(
            "SELECT COUNT(*), "
            "COALESCE(SUM(mode = 'human'), 0), COALESCE(SUM(needs_attention), 0), "
            "COALESCE(SUM(opted_out), 0), COALESCE(SUM(unread > 0), 0), "
            "COALESCE(SUM(assigned_to IS NULL), 0), COALESCE(SUM(status = 'resolved'), 0), "
            f"COALESCE(SUM(assigned_to = ?), 0) FROM contacts WHERE {CONVERSATIONS_ONLY}",
            (me,),
        )
        keys = COUNT_KEYS
        row = next(iter(rows), None)
        return dict(zip(keys, (int(v) for v in row))) if row else dict.fromkeys(keys, 0)

    # -- staff sessions -------------------------------------------------------------------------

    async def session(self, key: str) -> SessionRecord | None:
        """The session stored under `key` (the SHA-256 of a cookie's id), expired or not."""
        rows = await self.reader.execute_fetchall(
            "SELECT key, user, csrf, credential, created_at, last_seen_at, expires_at "
            "FROM sessions WHERE key = ?",
            (key,),
        )
        for row in rows:
            return SessionRecord(
                row["key"],
                row["user"],
                row["csrf"],
                row["credential"],
                moment(row["created_at"]),
                moment(row["last_seen_at"]),
                moment(row["expires_at"]),
            )
        return None

    async def create_session(self, record: SessionRecord, keep: int) -> None:
        """Stores a new session; the user's sessions beyond the `keep` most recent end."""

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO sessions (key, user, csrf, credential, created_at, last_seen_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.key,
                    record.user,
                    record.csrf,
                    record.credential,
                    stored(record.created_at),
                    stored(record.last_seen_at),
                    stored(record.expires_at),
                ),
            )
            db.execute(
                "DELETE FROM sessions WHERE key IN (SELECT key FROM sessions WHERE user = ? "
                "ORDER BY last_seen_at DESC, created_at DESC LIMIT -1 OFFSET ?)",
                (record.user, keep),
            )

        await self._transaction(work)

    async def touch_session(self, key: str, at: datetime) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("UPDATE sessions SET last_seen_at = ? WHERE key = ?", (stored(at), key))

        await self._transaction(work)

    async def delete_session(self, key: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM sessions WHERE key = ?", (key,))

        await self._transaction(work)

    async def end_sessions(self, user: str, *, unless_credential: str | None = None) -> int:
        """Ends every session of `user` (but those opened with `unless_credential`)."""

        def work(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM sessions WHERE user = ? AND credential IS NOT ?",
                (user, unless_credential),
            ).rowcount

        ended: int = await self._transaction(work)
        return ended

    async def purge_sessions(self, now: datetime, idle_since: datetime) -> int:
        """Deletes sessions past their end, or not used since `idle_since`."""

        def work(db: sqlite3.Connection) -> int:
            return db.execute(
                "DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?",
                (stored(now), stored(idle_since)),
            ).rowcount

        purged: int = await self._transaction(work)
        return purged


def apply_labels(db: sqlite3.Connection, phone: str, decision: Decision) -> None:
    """A decision's label changes (a rule's `label:`, then `unlabel:`), in its transaction."""
    if not decision.label and not decision.unlabel:
        return  # nearly every message: nothing to write
    db.executemany(
        "INSERT OR IGNORE INTO contact_labels (phone, label) VALUES (?, ?)",
        [(phone, label) for label in decision.label],
    )
    db.executemany(
        "DELETE FROM contact_labels WHERE phone = ? AND label = ?",
        [(phone, label) for label in decision.unlabel],
    )
