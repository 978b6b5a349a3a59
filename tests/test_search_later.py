"""New messages go into SQLite's full-text index in the checkpointer's background step
(migration 0028), not in the transaction that writes them. A search finds a message the index
does not hold yet, the same as once it does; erasing a message before it is indexed leaves the
index whole; the step indexes a bounded number of messages per transaction; a database from
before the migration keeps its index; a copy made meanwhile loses nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from responder.search_query import search_query
from responder.store import checkpoint
from responder.store.migrate import copy_to_postgres
from responder.store.postgres import PostgresStore
from responder.store.search import SearchPage
from responder.store.sqlite import SQLiteStore, add_functions, migrate
from responder.store.sqlite_backup import copy_database
from responder.store.sqltime import stored
from responder.text import normalize
from tests import loopback
from tests.conftest import Clock, RunningApp
from tests.test_migrate_to import ignore
from tests.test_search_contract import phones
from tests.test_store_contract import ANA, EVA, LUIS, admin_inbound

MARK = "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed_id'"
LATER = 28  # the migration that moves the indexing to the background step
QUERIES = [
    "zarzaparrilla",  # a whole word
    "zarza",  # a prefix
    "ZARZAPARRILLA roja",  # two words, folded
    "arrilla",  # inside a word, not its start: not found, by the index or the table
    "re: zarza",  # a reply, and a short word (no prefix)
    "pingüino",
    "nada",
]


@pytest.fixture(autouse=True)
def paused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpointer's loop waits an hour between looks: a test runs its steps itself."""
    monkeypatch.setattr(checkpoint, "CHECK_EVERY", 3600)


def mark_and_last(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        mark = db.execute(MARK).fetchone()[0]
        last = db.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0]
    return int(mark), int(last)


def check_index(path: Path, against_table: bool) -> None:
    """FTS5's integrity check: of the index alone, or (`against_table`, only once every
    message is indexed) row by row against `messages`. Raises when it is corrupt."""
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', ?)",
            (int(against_table),),
        )


async def catch_up(store: SQLiteStore) -> None:
    while await store.checkpointer.index_new_messages():
        pass
    mark, last = mark_and_last(store.path)
    assert mark == last


async def results(store: SQLiteStore) -> list[Any]:
    found: list[Any] = []
    for text in QUERIES:
        query = search_query(text, "VE")
        page: SearchPage = await store.search(query)
        found.append((text, [c.phone for c in page.conversations], page.matched))
        found.append(await store.search(query, 1, 1))  # a page further on
        found.append(await store.search(query, mode="human"))  # a filter
        found.append(await store.search_counts("ana", query))
    return found


async def write_some(store: SQLiteStore, clock: Clock) -> None:
    for phone, text, rule in [
        (ANA, "una zarzaparrilla roja", "r"),
        (LUIS, "¿Tienen ZARZAPARRILLA?", None),
        (EVA, "un pingüino de peluche", "r"),
        (ANA, "zarzaparrilla otra vez", None),
    ]:
        clock.advance(60)
        await admin_inbound(store, clock, phone, text, rule)
    await store.set_mode(LUIS, "human")


async def test_a_message_is_found_before_it_is_indexed_as_after(
    tmp_path: Path, clock: Clock
) -> None:
    store = SQLiteStore(tmp_path / "later.db", clock)
    await store.open()
    try:
        await write_some(store, clock)
        mark, last = mark_and_last(store.path)
        assert (mark, last) == (0, 6)  # 4 messages, 2 replies: none indexed yet
        with sqlite3.connect(store.path) as db:
            assert db.execute("SELECT count(*) FROM messages_fts('zarzaparrilla')").fetchone() == (
                0,
            )
        before = await results(store)
        assert before[0] == ("zarzaparrilla", [ANA, LUIS], {ANA: 6, LUIS: 3})
        await catch_up(store)
        check_index(store.path, against_table=True)
        assert await results(store) == before  # now from the index
        # Half and half: the newest from the table, the others from the index.
        await write_some(store, clock)
        mid = (await results(store))[0]
        assert mid == ("zarzaparrilla", [ANA, LUIS], {ANA: 12, LUIS: 9})
    finally:
        await store.close()


async def test_a_message_erased_before_it_is_indexed_leaves_the_index_whole(
    tmp_path: Path, clock: Clock
) -> None:
    store = SQLiteStore(tmp_path / "erased.db", clock)
    await store.open()
    try:
        await admin_inbound(store, clock, EVA, "zarzaparrilla vieja", None)
        await catch_up(store)  # one indexed message of EVA's, erased later too
        clock.advance(3600)
        await admin_inbound(store, clock, ANA, "mi clave es zarzaparrilla", "r")
        await admin_inbound(store, clock, EVA, "zarzaparrilla nueva", None)
        clock.advance(3600)
        await admin_inbound(store, clock, LUIS, "zarzaparrilla reciente", None)
        assert mark_and_last(store.path) == (1, 5)
        assert await phones(store, "zarza") == [LUIS, EVA, ANA]
        assert await store.forget_contact(EVA) is not None  # deleted: one indexed, one not
        after: int | None = 0
        while after is not None:  # the retention sweep blanks ANA's two, not yet indexed
            after = await store.clear_old_texts(clock() - timedelta(minutes=30), after, 100)
        assert await phones(store, "zarza") == [LUIS]
        check_index(store.path, against_table=False)
        await catch_up(store)
        check_index(store.path, against_table=True)  # ANA's indexed blank, EVA's not at all
        assert await phones(store, "zarza") == [LUIS]
        with sqlite3.connect(store.path) as db:
            indexed = db.execute("SELECT rowid FROM messages_fts('zarzaparrilla')").fetchall()
        assert indexed == [(5,)]
        # Erased once indexed: the triggers take it out of the index at once.
        assert await store.forget_contact(LUIS) is not None
        check_index(store.path, against_table=True)
        assert await phones(store, "zarza") == []
    finally:
        await store.close()


async def test_the_step_indexes_a_bounded_number_per_transaction(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each step is a transaction of INDEX_MESSAGES messages under the store's write lock (the
    # writer gets it between two); a look takes at most INDEX_STEPS steps.
    monkeypatch.setattr(checkpoint, "INDEX_MESSAGES", 3)
    monkeypatch.setattr(checkpoint, "INDEX_STEPS", 2)
    store = SQLiteStore(tmp_path / "steps.db", clock)
    await store.open()
    try:
        for n in range(4):
            await admin_inbound(store, clock, ANA, f"pedido {n}", "r")  # and a reply: 8
        seen: list[str] = []
        assert store.checkpointer._db is not None
        store.checkpointer._db.set_trace_callback(seen.append)
        assert await store.checkpointer.index_new_messages() == 6
        assert seen.count("BEGIN IMMEDIATE") == 2
        assert mark_and_last(store.path) == (6, 8)
        assert await store.checkpointer.index_new_messages() == 2
        assert await store.checkpointer.index_new_messages() == 0
        assert seen.count("BEGIN IMMEDIATE") == 3  # nothing left: no transaction at all
        check_index(store.path, against_table=True)
        assert len((await store.search(search_query("pedido", "VE"))).matched) == 1
    finally:
        await store.close()


def at_version(path: Path, version: int, messages: list[tuple[str, str]], clock: Clock) -> None:
    """A database as a release with migrations up to `version` left it, with `messages`
    (number, text) written by it a minute apart, each number a conversation."""
    with sqlite3.connect(path, isolation_level=None) as db:
        add_functions(db)
        migrate(db, up_to=version)
        for phone, text in messages:
            clock.advance(60)
            at = stored(clock())
            db.execute(
                "INSERT INTO messages (phone, direction, text, folded, status, origin, "
                "attempts, created_at, updated_at) VALUES (?, 'in', ?, ?, 'received', "
                "'massiva', 0, ?, ?)",
                (phone, text, normalize(text), at, at),
            )
            db.execute(
                "INSERT INTO contacts (phone, first_seen_at, last_message_at, last_activity_at) "
                "VALUES (?1, ?2, ?2, ?2) ON CONFLICT (phone) DO UPDATE SET last_message_at = ?2",
                (phone, at),
            )


async def test_a_database_from_before_keeps_its_index(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "old.db"
    old = [(LUIS, "¿Tienen ZARZAPARRILLA?"), (ANA, "una zarzaparrilla roja"), (EVA, "hola")]
    at_version(path, LATER - 1, old, clock)  # indexed by 0023's trigger, as they were written
    store = SQLiteStore(path, clock)
    await store.open()
    try:
        assert mark_and_last(path) == (3, 3)  # every message there counts as indexed
        check_index(path, against_table=True)
        with sqlite3.connect(path) as db:
            triggers = db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND name LIKE 'messages_fts%' ORDER BY name"
            ).fetchall()
        assert triggers == [("messages_fts_delete",), ("messages_fts_update",)]
        assert await phones(store, "zarza") == [ANA, LUIS]
        clock.advance(60)
        await admin_inbound(store, clock, EVA, "zarzaparrilla", None)  # after the mark
        assert await phones(store, "zarza") == [EVA, ANA, LUIS]
        assert await store.forget_contact(ANA) is not None  # indexed by the old trigger
        await catch_up(store)
        check_index(path, against_table=True)
        assert await phones(store, "zarza") == [EVA, LUIS]
    finally:
        await store.close()


async def test_a_backup_made_before_messages_are_indexed_finds_them(
    tmp_path: Path, clock: Clock
) -> None:
    store = SQLiteStore(tmp_path / "live.db", clock)
    await store.open()
    try:
        await write_some(store, clock)
        copy_database(store.path, tmp_path / "copy.db", lambda done, total: None)
    finally:
        await store.close()
    copy = SQLiteStore(tmp_path / "copy.db", clock)
    await copy.open()
    try:
        assert mark_and_last(copy.path) == (0, 6)  # the mark travels with the rows
        assert await phones(copy, "zarza") == [ANA, LUIS]
        await catch_up(copy)
        check_index(copy.path, against_table=True)
        assert await phones(copy, "zarza") == [ANA, LUIS]
    finally:
        await copy.close()


async def test_migrate_to_copies_messages_not_indexed_yet(
    tmp_path: Path, clock: Clock, postgres_url: str
) -> None:
    source = SQLiteStore(tmp_path / "s.db", clock)
    await source.open()
    try:
        await write_some(source, clock)
    finally:
        await source.close()
    assert mark_and_last(source.path) == (0, 6)
    await copy_to_postgres(source.path, postgres_url, clock, ignore)
    target = PostgresStore(postgres_url, clock)
    await target.open()
    try:
        assert await phones(target, "zarza") == [ANA, LUIS]  # PostgreSQL's own index
    finally:
        await target.close()


def test_the_api_finds_a_message_before_it_is_indexed(
    start_app: Callable[..., RunningApp],
) -> None:
    app = start_app()
    response = loopback.get(app.webhook(), params={"msg": "Zarzaparrilla ROJA", "phone": ANA})
    assert response.status_code == 200
    store = app.service.store
    assert isinstance(store, SQLiteStore)
    mark, last = mark_and_last(store.path)
    assert mark < last

    def search() -> list[tuple[str, str]]:
        with app.api() as api:
            found = api.get("/api/conversations", params={"q": "zarza roja"})
        assert found.status_code == 200, found.text
        return [(c["phone"], c["match"]["text"]) for c in found.json()["conversations"]]

    assert search() == [(ANA, "Zarzaparrilla ROJA")]
    # Indexed as another process's checkpointer would: its own connection, its own lock.
    with sqlite3.connect(store.path, isolation_level=None) as db:
        db.execute("BEGIN IMMEDIATE")
        assert checkpoint.index_next_messages(db, 500) == last - mark
        db.execute("COMMIT")
    assert mark_and_last(store.path)[0] == last
    assert search() == [(ANA, "Zarzaparrilla ROJA")]
