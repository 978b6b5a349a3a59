"""The full-text index's segments are merged by the store's background step, not inside the
inserts (migration 0024; store/checkpoint.py): each transaction that indexes adds a segment, and
`merge_search_index` brings them back together without changing what a search finds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from responder.clock import SystemClock
from responder.store import checkpoint
from responder.store.checkpoint import index_next_messages
from responder.store.sqlite import SQLiteStore

NOW = "2026-03-02T14:00:00.000000Z"


def pages(path: Path) -> int:
    """Rows of the index's data: at least one leaf per segment, plus the structure."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM messages_fts_data").fetchone()[0])


def write_apart(path: Path, count: int) -> None:
    """Messages written and indexed one transaction each, as the background step indexes
    what a moment brought (migration 0028)."""
    db = sqlite3.connect(path)
    try:
        for n in range(count):
            with db:
                db.execute(
                    "INSERT INTO messages (phone, direction, text, folded, status, origin, "
                    "created_at, updated_at) VALUES (?, 'in', ?, ?, 'received', 'massiva', ?, ?)",
                    (f"5841212{n:05d}", f"Zarzaparrilla {n}", f"zarzaparrilla {n}", NOW, NOW),
                )
                assert index_next_messages(db, 1) == 1
    finally:
        db.close()


async def test_segments_are_merged_in_the_background_step(tmp_path: Path) -> None:
    path = tmp_path / "merges.db"
    store = SQLiteStore(path, SystemClock())
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        config = dict(db.execute("SELECT k, v FROM messages_fts_config").fetchall())
    assert config["automerge"] == 0  # inserts never merge: a webhook never waits for it
    write_apart(path, 12)  # fewer than FTS5's crisismerge (16), which merges on its own
    before = pages(path)
    assert before > 12  # a segment per transaction, none merged
    store = SQLiteStore(path, SystemClock())
    await store.open()
    try:
        found = [await store.checkpointer.merge_search_index() for _ in range(20)]
        assert found[0] and not found[-1]  # work, then none left (FTS5's count of changes)
        assert pages(path) < before / 2
        with sqlite3.connect(path) as db:
            found = db.execute(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'zarzaparrilla'"
            ).fetchone()[0]
            assert found == 12  # the same found, from fewer segments
            db.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)"
            )
    finally:
        await store.close()


async def test_merges_commit_without_syncing_or_checkpointing(tmp_path: Path) -> None:
    # A merge step holds the store's write lock: like the writer's commits, it must not wait
    # for an fsync (synchronous=NORMAL, 1; SQLite's default FULL, 2, synced every step).
    store = SQLiteStore(tmp_path / "merges.db", SystemClock())
    await store.open()
    try:
        db = store.checkpointer._db
        assert db is not None
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1
        # Nor does it checkpoint after a merge's commit (SQLite's default past 1,000 pages):
        # that copied the WAL into the database with the write lock held. Checkpoints run
        # apart, passive ones without the lock.
        assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1
    finally:
        await store.close()


async def test_a_look_merges_only_while_there_is_something_to_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each merge step holds the store's write lock: a quiet look takes none.
    monkeypatch.setattr(checkpoint, "CHECK_EVERY", 3600.0)  # no look of the store's own
    store = SQLiteStore(tmp_path / "quiet.db", SystemClock())
    await store.open()
    try:
        db = store.checkpointer._db
        assert db is not None
        seen: list[str] = []
        db.set_trace_callback(seen.append)
        for _ in range(5):  # until a merge finds nothing
            await store.checkpointer.index_steps()
        merges = sum("'merge'" in sql for sql in seen)
        assert 1 <= merges < 5
        await store.checkpointer.index_steps()
        assert sum("'merge'" in sql for sql in seen) == merges
    finally:
        await store.close()
