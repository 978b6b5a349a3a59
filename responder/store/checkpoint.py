"""Keeps the write-ahead log bounded: checkpoints run on a connection and a thread of their own.

The writer never checkpoints (a commit must not wait for an fsync). A passive checkpoint copies
the WAL back into the database without stopping anyone, but under a writer that never pauses it
never catches up, and SQLite only starts the WAL over once every frame has been copied and the
database file synced: the file grew by gigabytes an hour. So when the WAL holds more than
WAL_LIMIT, passive checkpoints first copy what they can while writes go on, until what is left
is small; the database file is synced (twice, each time after copying what came meanwhile),
still while writes go on; then, holding the store's write lock (webhooks wait in the write
queue; the event loop never blocks), a RESTART checkpoint copies the last few frames, syncs
them and waits for readers to leave the WAL, and the next commit writes the WAL from its start.

The syncs before the lock are what keep that pause short. A passive checkpoint that stops short
of the WAL's end writes pages into the database without syncing it; the checkpoint that copies
the last frame syncs them all. At 1,000 webhooks/s that is the pages of 16 MiB of WAL, copied
to random places of the file: the sync took 25-50 ms, and it used to run under the lock. The
WAL file keeps its size when it starts over (journal_size_limit is above it): writing into
blocks already allocated made the step under the lock cheaper again than cutting the file to
zero and growing it back (on a stand-in with one sync first: 4.0 against 10.6 ms at the
median).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

log = logging.getLogger("responder.store")
T = TypeVar("T")

MIB = 1024 * 1024
WAL_LIMIT = 16 * MIB  # past this much written since it started over, the WAL is started over
# journal_size_limit: a WAL file larger than this (a reader kept it from starting over) is cut
# back to this size when it starts over; a smaller one keeps its size and its disk blocks.
WAL_FILE_LIMIT = 2 * WAL_LIMIT
CHECK_EVERY = 0.1  # seconds between looks at the WAL (a passive checkpoint)
# How long a RESTART checkpoint may wait for a reader to leave the WAL. Writes wait that long
# at most; a reader that stays longer (a big export) only delays the next attempt.
READER_WAIT_MS = 1000
RETRY_AFTER = 10  # checks to wait after a RESTART that readers kept from finishing, or an error
# Passive checkpoints before the RESTART, each copying what was written during the one before,
# until fewer than LEFT_FRAMES frames (4 KiB pages) are left to copy. At 1,000 webhooks/s the
# WAL grows by about 26-37 MB/s (each transaction rewrites whole pages), so the limit is passed
# about twice a second; one pass usually copies everything, and a second one is for when it
# could not.
LEFT_FRAMES = 64
MAX_PASSES = 6
# Then the database file is synced and what was written meanwhile copied, this many times,
# before the writes pause. Measured on a stand-in (bench/wal_reset.py: 2,000,000 random keys,
# 400 commits a second of 12 keys each), the step under the lock: 3.5 ms at the median and
# 30.7 at most with no sync first, 1.1 and 16.9 after one, 0.7 and 8.1 after two.
SYNC_ROUNDS = 2
# The full-text index's segments (migration 0024 turned FTS5's merging inside inserts off): each
# look merges up to this many pages, the store's writes paused for a few milliseconds.
MERGE_PAGES = 50
# New contacts' number parts (migration 0027): the contacts' trigger notes each new number in
# `contact_number_parts_pending` (searches read the noted numbers too), and their parts (about
# ten suffixes each) are written in batches. One number at a time, each suffix went to its own
# place of an index of millions of keys: at 1,000 webhooks/s from new numbers, half of all the
# WAL was that index's leaves, each rewritten for a key or two (README "Part of a number"). A
# batch takes the numbers noted when it starts, once the oldest has waited BATCH_LOOKS looks
# (about 30 s) or BATCH_NUMBERS are noted: their parts are staged, sorted, in a temporary
# table of the checkpointer's connection (no write lock: only that table is written), then
# written STEP_PARTS at a time in the key's order, a step per transaction under the store's
# write lock (at most INDEX_STEPS steps a look), so that a leaf is written once per batch for
# all the keys that fall on it. A number erased meanwhile (`forget`, whose trigger takes its
# parts and its note out) is skipped by the steps after: a part is written only while its
# number's note is still there. The last step removes the batch's notes. One step a look (a
# batch of 20,000 numbers, 200,000 parts, takes about 11 s), INDEX_STEPS while the next batch
# is due already: written all at once, a batch's steps held the write lock 40% of the time
# for 2.5 s (p99 35 ms in those seconds, bench/steady.py on large).
BATCH_LOOKS = 300
BATCH_NUMBERS = 20_000
# At most this many numbers a batch (a backlog, say after a release that noted numbers for a
# long time): staging 20,000 took 0.28 s of the checkpointer's thread, and the WAL is looked
# at on the same thread.
BATCH_MOST = 100_000
STEP_PARTS = 2_000
INDEX_STEPS = 8
# Two subqueries: SQLite reads a lone MIN or MAX off the key's end, but MIN and MAX together
# scan the table (20,000 rows before a batch, ten looks a second).
NOTED = (
    "SELECT (SELECT MIN(id) FROM contact_number_parts_pending), "
    "(SELECT MAX(id) FROM contact_number_parts_pending)"
)
STAGED = "temp.staged_number_parts"
STAGED_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS staged_number_parts (part TEXT NOT NULL, "
    "phone TEXT NOT NULL, noted INTEGER NOT NULL, PRIMARY KEY (part, phone, noted)) "
    "WITHOUT ROWID"
)
STAGE = (
    f"INSERT INTO {STAGED} (part, phone, noted) "
    "SELECT substr(q.phone, p.n), q.phone, q.id FROM contact_number_parts_pending AS q "
    "JOIN contact_number_positions AS p ON p.n <= length(q.phone) - 2 WHERE q.id <= ?"
)
STEP_END = f"SELECT part, phone, noted FROM {STAGED} ORDER BY part, phone, noted LIMIT 1 OFFSET ?"
STILL_NOTED = "EXISTS (SELECT 1 FROM contact_number_parts_pending AS q WHERE q.id = s.noted)"
WRITE_STAGED = (
    "INSERT OR IGNORE INTO contact_number_parts (part, phone) "
    f"SELECT s.part, s.phone FROM {STAGED} AS s WHERE (s.part, s.phone, s.noted) <= (?, ?, ?) "
    f"AND {STILL_NOTED} ORDER BY s.part, s.phone"
)
WRITE_REST = (
    "INSERT OR IGNORE INTO contact_number_parts (part, phone) "
    f"SELECT s.part, s.phone FROM {STAGED} AS s WHERE {STILL_NOTED} ORDER BY s.part, s.phone"
)


def in_transaction(db: sqlite3.Connection, work: Callable[[], T], begin: str = "IMMEDIATE") -> T:
    """`work()` in a transaction of its own on `db` (`BEGIN IMMEDIATE`: it writes the
    database), rolled back if it fails."""
    db.execute(f"BEGIN {begin}")
    try:
        result = work()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def stage_numbers(db: sqlite3.Connection, last: int) -> None:
    """Stages the parts of the numbers noted up to the note `last` (a read of the database and
    a write of the connection's temporary table only: a deferred transaction, no write
    lock)."""

    def stage() -> None:
        db.execute(f"DELETE FROM {STAGED}")
        db.execute(STAGE, (last,))

    in_transaction(db, stage, begin="DEFERRED")


def write_staged(db: sqlite3.Connection, last: int, parts: int) -> int | None:
    """Writes the next `parts` staged parts whose numbers are still noted, in the caller's
    transaction; at the end of the batch, also removes its notes (up to `last`) and returns how
    many there were; None before that."""
    end = db.execute(STEP_END, (parts - 1,)).fetchone()
    if end is not None:
        db.execute(WRITE_STAGED, tuple(end))
        db.execute(f"DELETE FROM {STAGED} WHERE (part, phone, noted) <= (?, ?, ?)", tuple(end))
        return None
    db.execute(WRITE_REST)
    db.execute(f"DELETE FROM {STAGED}")
    return int(
        db.execute("DELETE FROM contact_number_parts_pending WHERE id <= ?", (last,)).rowcount
    )


# New messages (migration 0028): at each look, the messages after the full-text index's mark
# go into the index INDEX_MESSAGES at a time, a step per transaction under the store's write
# lock, until none is left or INDEX_STEPS steps ran. FTS5 writes a segment per transaction,
# which is most of what indexing a message costs: a step of 500 holds the lock 0.6 ms at the
# median (1.2 µs a message), 1.5-2.5 ms at most in 9 (bench/search_index_step.py on
# bench/scale.py's tiny database); steps of 2,000 had a commit of 35 ms. At 1,000 webhooks/s
# (2,000 messages a second) a look finds about 200.
INDEX_MESSAGES = 500
INDEXED_KEY = "fts_indexed_id"  # meta: the highest message id the index holds
INDEXED_MARK = f"(SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{INDEXED_KEY}')"
NEXT_TO_INDEX = (
    "SELECT COUNT(*), MAX(id) FROM (SELECT id FROM messages "
    f"WHERE id > {INDEXED_MARK} ORDER BY id LIMIT ?)"
)
INDEX_NEXT = (
    "INSERT INTO messages_fts (rowid, folded) SELECT id, folded FROM messages "
    f"WHERE id > {INDEXED_MARK} AND id <= ? ORDER BY id"
)
MOVE_MARK = "UPDATE meta SET value = CAST(? AS TEXT) WHERE key = ?"


def index_next_messages(db: sqlite3.Connection, limit: int) -> int:
    """Puts the `limit` first messages after the mark into the full-text index, with their
    folded text as it is now, and moves the mark past them, in the caller's transaction; how
    many there were."""
    count, last = db.execute(NEXT_TO_INDEX, (limit,)).fetchone()
    if count:
        db.execute(INDEX_NEXT, (last,))
        db.execute(MOVE_MARK, (last, INDEXED_KEY))
    return int(count)


Mode = Literal["PASSIVE", "RESTART"]


class Pass(NamedTuple):
    """What a checkpoint found: whether readers kept it from finishing, the frames in the WAL
    since it started over, and how many of them it left uncopied."""

    busy: bool
    frames: int
    left: int


class WalCheckpointer:
    """Checkpoints the database at `path`; `write_lock` is the lock the store's writer takes
    around every transaction."""

    def __init__(self, path: Path, write_lock: asyncio.Lock) -> None:
        self.path = path
        self.wal = Path(f"{path}-wal")
        self.write_lock = write_lock
        self._db: sqlite3.Connection | None = None
        self._file: int | None = None  # the database file, which start_over syncs
        self._frame_bytes = 4096 + 24  # a page and its frame header; read at open
        # One thread: checkpoints never overlap, and close() can wait for the one running.
        self._thread: ThreadPoolExecutor | None = None
        self._blocked = False  # the last RESTART found a reader in the way (logged once)
        self._restarted_at = -1  # the WAL's frames when the last RESTART finished
        self._frames = 0  # the WAL's frames at the last look
        self._merging = True  # the last merge step found work (or none ran yet)
        # New numbers' parts: the last note of the batch in progress (None: none is), and the
        # looks since numbers were first seen noted; one batch at a time.
        self._batch: int | None = None
        self._noted_looks = 0
        self._numbers = asyncio.Lock()

    def open(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {READER_WAIT_MS:d}")
            # As the writer's: the index merges commit without an fsync of their own (the WAL
            # is synced at each checkpoint). With SQLite's default (FULL) each merge step
            # synced the WAL while holding the store's write lock, ten times a second: 2.4 ms
            # at the median, 7 at the 90th percentile, on this machine's disk.
            db.execute("PRAGMA synchronous = NORMAL")
            # And no automatic checkpoint after a merge's commit: with SQLite's default (past
            # 1,000 pages of WAL) each merge step also copied the WAL written since the last
            # one into the database, still holding the write lock: at 1,000 webhooks/s a merge
            # step took 14 ms at the median, 40 at the 90th percentile, up to 257 ms.
            db.execute("PRAGMA wal_autocheckpoint = 0")
            db.execute(f"PRAGMA journal_size_limit = {WAL_FILE_LIMIT:d}")
            db.execute(STAGED_TABLE)
            self._frame_bytes = int(db.execute("PRAGMA page_size").fetchone()[0]) + 24
            self._file = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (sqlite3.Error, OSError):
            db.close()
            raise
        self._db = db
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="checkpoint")

    async def close(self) -> None:
        """Waits for a checkpoint in progress, then closes the connection."""
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.shutdown)
            self._thread = None
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def wal_size(self) -> int:
        try:
            return os.stat(self.wal).st_size
        except FileNotFoundError:
            return 0

    async def _checkpoint(self, mode: Mode) -> Pass:
        """One checkpoint off the event loop."""
        db = self._connection()

        def run() -> Pass:
            busy, frames, copied = db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            return Pass(bool(busy), max(0, frames), max(0, frames - copied))

        return await self._in_thread(run)

    async def _sync_database(self) -> None:
        """Syncs the database file (the pages passive checkpoints copied) off the event loop,
        the writes going on: any file descriptor of the file syncs all of its pages."""
        file = self._file
        if file is None:
            raise RuntimeError("checkpointer is not open")
        await self._in_thread(lambda: os.fdatasync(file))

    def too_long(self, found: Pass) -> bool:
        """Whether the WAL must be started over now: it would pass WAL_LIMIT before the next
        look (at 1,000 webhooks/s and more a look sees megabytes more than the one before),
        and it was written to since the last RESTART (after one, the WAL keeps its frames until
        the next commit starts it over)."""
        grown = max(0, found.frames - self._frames)
        self._frames = found.frames
        return (found.frames + grown) * self._frame_bytes > WAL_LIMIT and (
            found.left > 0 or found.frames != self._restarted_at
        )

    async def start_over(self) -> bool:
        """Copies the whole WAL into the database so that the next commit writes it from its
        start, the store's writes paused only for the last few frames; False when readers
        kept it from finishing."""
        before = None
        for _ in range(MAX_PASSES):  # the bulk, while writes go on
            found = await self._checkpoint("PASSIVE")
            # Done when little is left, or when a pass copied nothing: a reader's snapshot
            # keeps the rest (the RESTART then waits for it, up to READER_WAIT_MS).
            if (
                found.busy
                or found.left < LEFT_FRAMES
                or (before is not None and found.left >= before)
            ):
                break
            before = found.left
        for _ in range(SYNC_ROUNDS):  # the copied pages to disk, while writes go on
            await self._sync_database()
            await self._checkpoint("PASSIVE")
        async with self.write_lock:
            found = await self._checkpoint("RESTART")
        done = not found.busy
        if done:
            self._restarted_at = found.frames
        if not done and not self._blocked:
            log.warning(
                "the write-ahead log (%d MiB) cannot be emptied: a reader still uses it",
                self.wal_size() // MIB,
            )
        elif done and self._blocked:
            log.info("the write-ahead log was emptied again")
        self._blocked = not done
        return done

    async def merge_search_index(self) -> bool:
        """A step of the full-text index's merging, under the store's write lock (one writer at
        a time, as SQLite wants); whether it found work (FTS5 counts two changes or more when
        a merge did something)."""
        db = self._connection()

        def run() -> bool:
            before = db.total_changes
            db.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', ?)",
                (MERGE_PAGES,),
            )
            return db.total_changes - before >= 2

        async with self.write_lock:
            return await self._in_thread(run)

    async def index_new_numbers(self) -> int:
        """A look's part of writing new contacts' number parts (migration 0027): a batch
        started when it is time, then one of its steps, or INDEX_STEPS when the next batch is
        due already; how many numbers' parts were complete at this look (the batch's, when it
        ended)."""
        async with self._numbers:
            noted = await self._noted()
            if self._batch is None:
                if noted is None:
                    self._noted_looks = 0
                    return 0
                lowest, highest = noted
                self._noted_looks += 1
                if highest - lowest + 1 < BATCH_NUMBERS and self._noted_looks < BATCH_LOOKS:
                    return 0
                await self._stage(noted)
                return 0
            behind = noted is not None and noted[1] - self._batch >= BATCH_NUMBERS
            return await self._write_steps(INDEX_STEPS if behind else 1)

    async def index_all_numbers(self) -> int:
        """Every number noted now, its parts written in batches to the end (tests; the
        service's looks wait for a batch's time); how many numbers."""
        total = 0
        while True:
            async with self._numbers:
                if self._batch is None:
                    noted = await self._noted()
                    if noted is None:
                        return total
                    await self._stage(noted)
                while self._batch is not None:
                    total += await self._write_steps(INDEX_STEPS)

    async def _noted(self) -> tuple[int, int] | None:
        """The first and the last notes of new numbers; None when there is none."""
        db = self._connection()
        lowest, highest = await self._in_thread(lambda: db.execute(NOTED).fetchone())
        return None if highest is None else (int(lowest), int(highest))

    async def _stage(self, noted: tuple[int, int]) -> None:
        """A batch of the numbers `noted` (the first and last notes), BATCH_MOST at most."""
        lowest, highest = noted
        last = min(highest, lowest + BATCH_MOST - 1)
        await self._in_thread(partial(stage_numbers, self._connection(), last))
        self._batch, self._noted_looks = last, 0

    async def _write_steps(self, steps: int) -> int:
        """Up to `steps` steps of the batch, each a transaction under the store's write lock
        (the writer gets it between two); how many numbers, when the batch ended."""
        db, last = self._connection(), self._batch
        if last is None:
            return 0

        step = partial(in_transaction, db, partial(write_staged, db, last, STEP_PARTS))
        for _ in range(steps):
            async with self.write_lock:
                done = await self._in_thread(step)
            if done is not None:
                self._batch = None
                return done
        return 0

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("checkpointer is not open")
        return self._db

    async def index_new_messages(self) -> int:
        """Puts new messages into the full-text index (migration 0028), INDEX_MESSAGES a
        transaction under the store's write lock (the writer gets the lock between two), while
        there are some, at most INDEX_STEPS times; how many were indexed."""
        db = self._connection()

        def found() -> bool:  # a read: no lock needed
            waiting = f"SELECT 1 FROM messages WHERE id > {INDEXED_MARK} LIMIT 1"
            return db.execute(waiting).fetchone() is not None

        step = partial(in_transaction, db, partial(index_next_messages, db, INDEX_MESSAGES))
        total = 0
        for _ in range(INDEX_STEPS):
            if not await self._in_thread(found):
                break
            async with self.write_lock:
                moved = await self._in_thread(step)
            total += moved
            if moved < INDEX_MESSAGES:
                break
        return total

    async def _in_thread(self, work: Callable[[], T]) -> T:
        """`work` on the checkpointer's thread. The thread cannot be stopped: a cancelled
        caller still waits for it to end before it lets go of the write lock, or the writer
        would block the event loop on SQLite's lock."""
        thread = self._thread
        if thread is None:
            raise RuntimeError("checkpointer is not open")
        future = asyncio.get_running_loop().run_in_executor(thread, work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])
            raise

    async def run(self) -> None:
        """Until cancelled, every CHECK_EVERY seconds: looks at the WAL, and (a task of its
        own, so that the WAL is looked at on time while steps wait for the write lock) indexes
        new messages, merges the full-text index's segments and writes new contacts' number
        parts, a step at a time."""
        await asyncio.gather(self._repeat(self.look_at_wal), self._repeat(self.index_steps))

    async def look_at_wal(self) -> bool:
        """A passive checkpoint, and the WAL started over when it is too long; False when
        readers kept it from starting over (the next try waits RETRY_AFTER looks)."""
        if not self.wal_size():
            return True
        found = await self._checkpoint("PASSIVE")
        return not self.too_long(found) or await self.start_over()

    async def index_steps(self) -> bool:
        """A look's background steps. The merge step only while there is something to merge:
        new messages were indexed, or the last merge found work (each step holds the write
        lock until the event loop has seen the thread finish, some milliseconds under load)."""
        if await self.index_new_messages() or self._merging:
            self._merging = await self.merge_search_index()
        await self.index_new_numbers()
        return True

    async def _repeat(self, work: Callable[[], Awaitable[bool]]) -> None:
        """`work()` every CHECK_EVERY seconds until cancelled; after it returns False or
        fails, RETRY_AFTER times that. A failure is logged once, not ten times a second (a
        full disk), and so is the end of it."""
        wait = 0
        failing = False
        while True:
            await asyncio.sleep(CHECK_EVERY)
            if wait:
                wait -= 1
                continue
            try:
                done = await work()
            except (sqlite3.Error, OSError) as err:
                wait = RETRY_AFTER
                if not failing:
                    log.warning("checkpoint failed: %s", err)
                failing = True
                continue
            if failing:
                log.info("checkpoints work again")
                failing = False
            if not done:
                wait = RETRY_AFTER
