"""The write-ahead log stays bounded under sustained webhook load (issue 11 §8), and a reader
in the way delays emptying it without stalling writes for long."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from responder.engine import Decision, InboundMessage
from responder.store import checkpoint
from responder.store.checkpoint import (
    LEFT_FRAMES,
    READER_WAIT_MS,
    SYNC_ROUNDS,
    WAL_FILE_LIMIT,
    WAL_LIMIT,
    Pass,
    WalCheckpointer,
)
from responder.store.models import InboundJob
from responder.store.sqlite import SQLiteStore
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, Clock
from tests.served import ServeProcess

MIB = 1024 * 1024
WAL_BOUND = 2 * WAL_LIMIT  # the limit, plus what a fast machine writes while a checkpoint runs
MIN_SECONDS, MIN_WEBHOOKS, MAX_SECONDS = 8.0, 3000, 40.0
# Few connections, so small commit groups: each commit rewrites its pages, 15-20 KiB of WAL
# per webhook (the old code's WAL reached 55 MiB after 3,500 of them).
CONNECTIONS = 8


def wal_size(database: Path) -> int:
    try:
        return os.stat(f"{database}-wal").st_size
    except FileNotFoundError:
        return 0


def wal_frames(database: Path) -> tuple[int, int]:
    """The frames in the WAL since it last started over, and how many of them are not yet
    copied into the database (a passive checkpoint from a connection of the test's own)."""
    db = sqlite3.connect(database, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        _, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        db.close()
    return frames, frames - copied


class Sampler:
    """Reads the WAL's size every 100 ms on a thread of its own."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.sizes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sizes.append(wal_size(self.database))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str, headers: str = ""
) -> tuple[int, bytes]:
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return int(head.split(b" ", 2)[1]), await reader.readexactly(length)


async def _load(port: int) -> tuple[int, dict[int, int]]:
    """Webhooks on CONNECTIONS keep-alive connections, each text unique (nothing is taken for
    a gateway's retry), while one more connection reads conversations through the API."""
    path = f"/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"
    began = time.monotonic()
    acked, statuses, counter = 0, dict[int, int](), iter(range(10**9))

    def more() -> bool:
        elapsed = time.monotonic() - began
        return elapsed < MAX_SECONDS and (elapsed < MIN_SECONDS or acked < MIN_WEBHOOKS)

    async def sender() -> None:
        nonlocal acked
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while more():
                n = next(counter)
                phone = f"58412{(n * 7919 + 1234567) % 10_000_000:07d}"  # scattered
                status, body = await _get(reader, writer, f"{path}?phone={phone}&msg=hola+{n}")
                statuses[status] = statuses.get(status, 0) + 1
                acked += status == 200 and body == b"OK"
        finally:
            writer.close()

    async def api_reader() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        auth = f"Authorization: Bearer {ADMIN_TOKEN}\r\n"
        try:
            while more():
                status, _ = await _get(reader, writer, "/api/conversations?limit=100", auth)
                assert status == 200
                await asyncio.sleep(0.05)
        finally:
            writer.close()

    await asyncio.gather(*(sender() for _ in range(CONNECTIONS)), api_reader())
    return acked, statuses


@pytest.fixture
def served(workdir: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(
        workdir,
        {
            "RESPONDER_DATABASE": str(workdir / "responder.db"),
            "RESPONDER_RULES": str(workdir / "rules.yaml"),
            "RESPONDER_TEMPLATES": str(workdir / "templates"),
            "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
        },
    )
    yield server
    server.stop()


def test_the_wal_stays_bounded_under_sustained_webhook_load(
    workdir: Path, served: ServeProcess
) -> None:
    database = workdir / "responder.db"
    with Sampler(database) as sampler:
        acked, statuses = asyncio.run(_load(served.port))
        time.sleep(1.0)  # a checkpoint that was due runs
    after = wal_size(database)
    frames, left = wal_frames(database)
    assert statuses == {200: acked}
    assert acked >= 1000  # enough load to matter
    largest = max(sampler.sizes)
    print(served.output()[-6000:])
    assert len(sampler.sizes) >= MIN_SECONDS * 5
    assert largest < WAL_BOUND, f"the WAL reached {largest / MIB:.0f} MiB ({acked} webhooks)"
    # The file keeps its size when the WAL starts over (WAL_FILE_LIMIT), and what the load
    # wrote was copied into the database meanwhile.
    assert after <= WAL_FILE_LIMIT, f"the WAL stayed at {after / MIB:.0f} MiB after the load"
    assert frames * 4096 <= WAL_BOUND and left == 0, (frames, left)
    assert served.stop() in (0, -15)
    assert "checkpoint failed" not in served.output()


def _decide(_: object) -> Decision:
    return Decision(rule=None, replies=(), explanation="test")


async def test_a_reader_in_the_way_delays_emptying_the_wal_but_not_writes_for_long(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "r.db", clock)
    await store.open()
    try:
        for n in range(50):
            message = InboundMessage(f"58412{1000000 + n:07d}", f"hola {n}", clock())
            await store.receive_inbound(InboundJob(message, _decide, 0.0, 0.0))
        assert wal_size(store.path) > 0
        # Another process in the middle of a long read, its snapshot in the WAL.
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN")
        other.execute("SELECT COUNT(*) FROM messages").fetchone()
        caplog.set_level(logging.INFO, "responder.store")
        began = time.monotonic()
        assert not await store.checkpointer.start_over()
        assert time.monotonic() - began < READER_WAIT_MS / 1000 + 1.0
        assert wal_size(store.path) > 0
        assert "cannot be emptied: a reader still uses it" in caplog.text
        # Writes went on meanwhile; once the reader is done the WAL is emptied.
        message = InboundMessage("584129999999", "otra", clock())
        await store.receive_inbound(InboundJob(message, _decide, 0.0, 0.0))
        other.execute("COMMIT")
        other.close()
        frames, _ = wal_frames(store.path)
        assert await store.checkpointer.start_over()
        assert "emptied again" in caplog.text
        # The next commit writes the WAL from its start, in the file as it was.
        size = wal_size(store.path)
        message = InboundMessage("584129999998", "y otra", clock())
        await store.receive_inbound(InboundJob(message, _decide, 0.0, 0.0))
        after, left = wal_frames(store.path)
        assert after < frames and left == 0, (frames, after)
        assert wal_size(store.path) == size
    finally:
        await store.close()


async def test_the_wal_is_copied_while_writes_go_on_until_little_is_left(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Passive checkpoints run, each copying what was written during the one before, until
    # fewer than LEFT_FRAMES frames are left; the database file is synced and what came
    # meanwhile copied, SYNC_ROUNDS times; only then are the writes paused, for the rest.
    store = SQLiteStore(tmp_path / "p.db", clock)
    await store.open()
    checkpointer = store.checkpointer
    left = iter([5000, 900, LEFT_FRAMES - 1] + [10] * SYNC_ROUNDS)
    calls: list[tuple[str, bool]] = []

    async def checkpoint(mode: str) -> Pass:
        calls.append((mode, store._write_lock.locked()))
        return Pass(False, 6000, next(left) if mode == "PASSIVE" else 0)

    async def sync() -> None:
        calls.append(("sync", store._write_lock.locked()))

    monkeypatch.setattr(checkpointer, "_checkpoint", checkpoint)
    monkeypatch.setattr(checkpointer, "_sync_database", sync)
    try:
        assert await checkpointer.start_over()
    finally:
        monkeypatch.undo()
        await store.close()
    rounds = [("sync", False), ("PASSIVE", False)] * SYNC_ROUNDS
    assert calls == [("PASSIVE", False)] * 3 + rounds + [("RESTART", True)]


def test_the_wal_starts_over_before_it_would_pass_its_limit() -> None:
    limit = WAL_LIMIT // (4096 + 24)  # in frames: a 4 KiB page and a 24-byte header

    def looks(*seen: tuple[int, int]) -> list[bool]:
        checkpointer = WalCheckpointer(Path("unused.db"), asyncio.Lock())
        return [checkpointer.too_long(Pass(False, frames, left)) for frames, left in seen]

    # Growing by a tenth of the limit a look: started over one look before it passes it.
    step = limit // 10
    assert looks(*((n * step, 1) for n in range(1, 11))) == [False] * 9 + [True]
    # Not growing: only past the limit.
    assert looks((step, 1), (limit - 1, 1), (limit - 1, 1), (limit + 1, 1))[2:] == [False, True]
    # Copied but not started over: the commits since found readers in the way.
    assert looks((limit + 1, 0)) == [True]
    # After a RESTART the WAL keeps its frames until the next commit starts it over.
    checkpointer = WalCheckpointer(Path("unused.db"), asyncio.Lock())
    checkpointer._restarted_at = limit + 1
    assert not checkpointer.too_long(Pass(False, limit + 1, 0))
    assert checkpointer.too_long(Pass(False, limit + 2, 0))  # a commit that did not


async def test_passes_stop_when_a_reader_keeps_the_rest(tmp_path: Path, clock: Clock) -> None:
    # A reader's snapshot keeps frames from being copied: a pass that copies nothing more ends
    # the passes (the RESTART then waits for the reader, as above), not MAX_PASSES of them.
    store = SQLiteStore(tmp_path / "q.db", clock)
    await store.open()
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN")
        other.execute("SELECT COUNT(*) FROM messages").fetchone()
        for n in range(200):
            message = InboundMessage(f"58412{1000000 + n:07d}", f"hola {n}", clock())
            await store.receive_inbound(InboundJob(message, _decide, 0.0, 0.0))
        found = await store.checkpointer._checkpoint("PASSIVE")
        assert not found.busy and found.left >= LEFT_FRAMES  # the reader's snapshot holds them
        other.execute("COMMIT")
        found = await store.checkpointer._checkpoint("PASSIVE")
        assert (found.busy, found.left) == (False, 0)
    finally:
        other.close()
        await store.close()


async def test_a_failing_look_is_logged_once_and_tried_again_later(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A full disk fails every look: logged once, not ten times a second, then tried again
    # RETRY_AFTER looks later; its end is logged too. A RESTART kept from finishing by a
    # reader (False) also waits RETRY_AFTER looks.
    monkeypatch.setattr(checkpoint, "RETRY_AFTER", 3)
    looks = 0
    real_sleep = asyncio.sleep

    async def one_look(_: float) -> None:
        nonlocal looks
        looks += 1
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", one_look)  # the looks, counted

    class Done(Exception):
        pass

    outcomes: list[bool | Exception] = [
        sqlite3.OperationalError("disk I/O error"),
        sqlite3.OperationalError("disk I/O error"),
        True,
        False,
        True,
    ]
    seen: list[int] = []

    async def work() -> bool:
        seen.append(looks)
        if not outcomes:
            raise Done
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    caplog.set_level(logging.INFO, "responder.store")
    checkpointer = WalCheckpointer(Path("unused.db"), asyncio.Lock())
    with pytest.raises(Done):
        await checkpointer._repeat(work)
    assert seen == [1, 5, 9, 10, 14, 15]
    assert caplog.text.count("checkpoint failed: disk I/O error") == 1
    assert caplog.text.count("checkpoints work again") == 1
