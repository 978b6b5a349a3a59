"""Part of a number, found on SQLite through `contact_number_parts` (0025: every suffix of each
contact's number), on PostgreSQL through a trigram index of `contact_numbers` (0016: each
number once), both kept by triggers. Digits at the start, the middle or the end of a number
find it, on both stores and by either way (the index, or the walk of the newest conversations
for digits many numbers hold); a number deleted or forgotten is no longer found; the
migrations fill the index for the contacts already there; `migrate-to` leaves the target's
as its own triggers fill it."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from responder import phone
from responder.search_query import MIN_FRAGMENT, search_query
from responder.store import Store, checkpoint, pg_search, sqlite_search
from responder.store.migrate import copy_to_postgres
from responder.store.models import ImportRow
from responder.store.postgres import PostgresStore
from responder.store.search import PART_FROM, part_ranges
from responder.store.sqlite import SQLiteStore
from tests.conftest import Clock
from tests.test_migrate_to import ignore
from tests.test_postgres import before_0016, execute, fresh_database
from tests.test_search_contract import phones
from tests.test_store_contract import (
    ANA,
    EVA,
    LUIS,
    admin_inbound,
    backend,
    database,
    filled,
    open_store,
    rows,
    store,
)

__all__ = ["backend", "database", "filled", "fresh_database", "open_store", "store"]  # fixtures

PARTS = 25  # the SQLite migration that adds contact_number_parts
NOTED_COUNT = "SELECT count(*) FROM contact_number_parts_pending"


def parts_of(numbers: Iterable[str]) -> set[tuple[str, str]]:
    """What the table must hold for these numbers: each suffix of PART_FROM characters or more."""
    return {(n[i:], n) for n in numbers for i in range(len(n) - PART_FROM + 1)}


async def indexed_numbers(store: Store) -> set[str]:
    """The numbers the search by part of a number holds, once the background steps have run:
    SQLite's checkpointer writes new contacts' parts (0027), each number's parts all of its
    suffixes; PostgreSQL's sweep moves the trigram index's pending list (0016), each number
    one row of `contact_numbers`."""
    if isinstance(store, SQLiteStore):
        await store.checkpointer.index_all_numbers()
        assert [tuple(r) for r in await rows(store, NOTED_COUNT)] == [(0,)]
        parts = set(await rows(store, "SELECT part, phone FROM contact_number_parts"))
        numbers = {number for _, number in parts}
        assert parts == parts_of(numbers)
        return numbers
    while await store.index_new_numbers():
        pass
    return {number for (number,) in await rows(store, "SELECT phone FROM contact_numbers")}


def batches(monkeypatch: pytest.MonkeyPatch, **settings: float) -> None:
    """The checkpointer's batch settings for a test, and no look of the store's own: the test
    makes the looks."""
    for name, value in {"CHECK_EVERY": 3600.0, **settings}.items():
        monkeypatch.setattr(checkpoint, name, value)


def many_numbers(monkeypatch: pytest.MonkeyPatch, value: int) -> None:
    for module in (sqlite_search, pg_search):
        monkeypatch.setattr(module, "MANY_NUMBERS", value)


def test_the_table_holds_every_fragment_a_search_looks_for() -> None:
    assert MIN_FRAGMENT >= PART_FROM
    assert part_ranges(["0412", "412"]) == [("412", "413")]  # `0412` holds `412`: one range
    assert part_ranges(["1239", "584"]) == [("1239", "123:"), ("584", "585")]
    assert part_ranges(["0012", "12"]) is None  # too short for the table: the walk


@pytest.mark.parametrize("many", [2000, 1])  # the numbers from the table; the walk
@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("58416", [EVA]),  # the start of a number
        ("0416", [EVA]),  # the start as typed at home: `416`
        ("6111", [EVA]),  # the middle
        ("2233", [EVA]),  # the end
        ("1234567", [LUIS, ANA]),  # the end of two numbers, newest first
        ("21234567", [ANA]),  # more than its last six digits, which LUIS holds too
        ("584", [EVA, LUIS, ANA]),  # every number
        ("999", []),
    ],
)
async def test_digits_anywhere_in_a_number_find_it(
    filled: Store, monkeypatch: pytest.MonkeyPatch, many: int, text: str, found: list[str]
) -> None:
    many_numbers(monkeypatch, many)
    assert await phones(filled, text) == found
    assert await phones(filled, text, 1, 1) == found[1:2]  # pages
    human = await phones(filled, text, mode="human")
    assert human == [p for p in found if p == LUIS]  # filters
    counts = await filled.search_counts(None, search_query(text, "VE"))
    assert (counts.counts["all"], counts.counts["human"]) == (len(found), len(human))


async def test_the_table_follows_the_contacts_and_forgotten_numbers_are_not_found(
    filled: Store, clock: Clock
) -> None:
    assert await indexed_numbers(filled) == {ANA, LUIS, EVA}
    await filled.import_contacts([ImportRow("584269876543", {"nombre": "Rita"}, ())])
    assert await indexed_numbers(filled) == {ANA, LUIS, EVA, "584269876543"}
    assert await phones(filled, "9876") == []  # only imported: not a conversation
    assert await filled.forget_contact(EVA) is not None
    assert await phones(filled, "2233") == []
    assert await phones(filled, "1112233") == []
    assert await indexed_numbers(filled) == {ANA, LUIS, "584269876543"}
    clock.advance(60)
    await admin_inbound(filled, clock, EVA, "hola otra vez", None)  # it writes again
    assert await phones(filled, "2233") == [EVA]
    assert await indexed_numbers(filled) == {ANA, LUIS, EVA, "584269876543"}


async def test_a_change_of_number_moves_it_in_the_index(filled: Store) -> None:
    """Nothing changes a contact's number today; the triggers would follow it if it did."""
    if isinstance(filled, SQLiteStore):
        with sqlite3.connect(filled.path) as db:
            db.execute("UPDATE contacts SET phone = '584269876543' WHERE phone = ?", (EVA,))
    else:
        assert isinstance(filled, PostgresStore)
        await filled.pool.execute(
            "UPDATE contacts SET phone = '584269876543' WHERE phone = $1", EVA
        )
    assert await indexed_numbers(filled) == {ANA, LUIS, "584269876543"}
    assert await phones(filled, "2233") == []
    assert await phones(filled, "9876") == ["584269876543"]


async def test_short_codes_and_repeated_digits(store: Store, clock: Clock) -> None:
    await admin_inbound(store, clock, "2020", "hola", None)
    clock.advance(60)
    await admin_inbound(store, clock, "584121212121", "hola", None)
    assert await phones(store, "020") == ["2020"]
    assert await phones(store, "202") == ["2020"]
    assert await phones(store, "1212") == ["584121212121"]  # once, though it holds it 4 times
    assert await phones(store, "0012") == ["584121212121"]  # also `12`: the walk


@pytest.mark.parametrize("many", [2000, 3, 0])
async def test_every_way_finds_what_a_plain_reading_of_the_numbers_finds(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch, many: int
) -> None:
    many_numbers(monkeypatch, many)
    rng = random.Random(25)
    numbers = list(
        dict.fromkeys(f"5841{rng.choice('2246')}{rng.randrange(10**7):07d}" for _ in range(60))
    )
    numbers += ["2020", "1234", "58412"]
    for number in numbers:
        clock.advance(1)
        await admin_inbound(store, clock, number, "hola", None)
    newest_first = numbers[::-1]
    for _ in range(40):
        number = rng.choice(numbers)
        start = rng.randrange(len(number) - 2)
        typed = number[start : start + rng.randint(3, 6)]
        query = search_query(typed, "VE")
        if not query.fragments:
            continue  # a whole number: by its key
        expected = [n for n in newest_first if any(f in n for f in query.fragments)]
        assert await phones(store, typed) == expected, typed
        assert await phones(store, typed, 5, 2) == expected[2:7], typed


# -- the migration fills the table for the contacts already there ------------------------------


async def test_sqlite_migration_fills_the_numbers_already_stored(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "old.db"
    numbers = [ANA, LUIS, EVA, "2020"]
    store = SQLiteStore(path, clock)
    await store.open()
    await store.close()
    with sqlite3.connect(path, isolation_level=None) as db:  # as migration 0024 left it
        db.executescript(
            "DROP TRIGGER contact_number_parts_insert; DROP TRIGGER contact_number_parts_delete; "
            "DROP TRIGGER contact_number_parts_update; DROP TABLE contact_number_parts; "
            "DROP TABLE contact_number_positions; DROP TABLE contact_number_parts_pending; "
            "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "  # 0028's undone
            "INSERT INTO messages_fts (rowid, folded) VALUES (new.id, new.folded); END; "
            f"PRAGMA user_version = {PARTS - 1}"
        )
        db.executemany(
            "INSERT INTO contacts (phone, first_seen_at, last_message_at, last_activity_at) "
            "VALUES (?, ?, ?, ?)",
            [(n, *[f"2026-11-23T14:0{i}:00.000000Z"] * 3) for i, n in enumerate(numbers)],
        )
    store = SQLiteStore(path, clock)
    await store.open()
    try:
        assert await indexed_numbers(store) == set(numbers)
        assert await phones(store, "1234567") == [LUIS, ANA]
        assert await phones(store, "020") == ["2020"]
        # Every suffix of the longest number a contact may have (digits as typed, phone.py).
        assert await rows(store, "SELECT max(n) FROM contact_number_positions") >= [
            (phone._MAX_TYPED_DIGITS - PART_FROM + 1,)
        ]
    finally:
        await store.close()


async def test_postgres_migration_moves_the_numbers_already_stored_to_the_trigram_index(
    fresh_database: str, clock: Clock
) -> None:
    """A database as the last release left it (0012's parts of every number, 0013's notes):
    0016 writes every contact's number to `contact_numbers` and its index, and drops the parts
    with their triggers and notes."""
    store = PostgresStore(fresh_database, clock)
    await store.open()
    for number in (ANA, LUIS, EVA):
        clock.advance(60)
        await admin_inbound(store, clock, number, "hola", None)
    await store.close()
    await execute(fresh_database, before_0016())
    await execute(  # a contact whose parts the sweep had not written yet
        fresh_database,
        "INSERT INTO contacts (phone, first_seen_at, last_message_at, last_activity_at) "
        "VALUES ('584269876543', now(), now(), now())",
    )
    store = PostgresStore(fresh_database, clock)
    await store.open()
    try:
        assert await indexed_numbers(store) == {ANA, LUIS, EVA, "584269876543"}
        gone = await rows(
            store,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'contact_number_parts%' "
            "UNION ALL SELECT count(*) FROM pg_proc WHERE proname LIKE 'contact_number_parts%' "
            "UNION ALL SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'contact_number_parts%'",
        )
        assert [tuple(r) for r in gone] == [(0,), (0,), (0,)]
        assert await phones(store, "1234567") == [LUIS, ANA]
        assert await phones(store, "6111") == [EVA]
        assert await store.forget_contact(EVA) is not None  # the new triggers follow
        assert await indexed_numbers(store) == {ANA, LUIS, "584269876543"}
    finally:
        await store.close()


# -- migrate-to: the target's triggers fill its table ----------------------------------------------


async def test_migrate_to_leaves_the_target_s_table_as_its_triggers_fill_it(
    tmp_path: Path, clock: Clock, postgres_url: str
) -> None:
    path = tmp_path / "s.db"
    source = SQLiteStore(path, clock)
    await source.open()
    try:
        for number in (ANA, LUIS, EVA):
            clock.advance(60)
            await admin_inbound(source, clock, number, "hola", None)
    finally:
        await source.close()
    await copy_to_postgres(path, postgres_url, clock, ignore, 2)
    target = PostgresStore(postgres_url, clock)
    await target.open()
    try:
        assert await indexed_numbers(target) == {ANA, LUIS, EVA}
        assert await phones(target, "1234567") == [LUIS, ANA]
    finally:
        await target.close()
    source = SQLiteStore(path, clock)
    await source.open()
    try:
        assert await source.forget_contact(LUIS) is not None
    finally:
        await source.close()
    copied: list[Any] = await copy_to_postgres(path, postgres_url, clock, ignore)
    assert {c.table: c.removed for c in copied}["contacts"] == 1
    target = PostgresStore(postgres_url, clock)
    await target.open()
    try:
        assert await indexed_numbers(target) == {ANA, EVA}
        assert await phones(target, "1234567") == [ANA]
    finally:
        await target.close()


async def test_sqlite_writes_a_new_number_s_parts_in_the_background(
    tmp_path: Path, clock: Clock
) -> None:
    """A new contact's trigger only notes its number (0027): a webhook from a new number does
    not write its ten parts. A search finds the noted number all the same; the checkpointer's
    batch moves it into the table; a number forgotten before that leaves nothing behind."""
    store = SQLiteStore(tmp_path / "later.db", clock)
    await store.open()
    try:
        for number in (ANA, LUIS):
            clock.advance(60)
            await admin_inbound(store, clock, number, "hola", None)
        noted = "SELECT phone FROM contact_number_parts_pending ORDER BY id"
        assert await rows(store, noted) == [(ANA,), (LUIS,)]
        assert await rows(store, "SELECT count(*) FROM contact_number_parts") == [(0,)]
        assert await phones(store, "1234567") == [LUIS, ANA]  # found while only noted
        assert await store.checkpointer.index_all_numbers() == 2
        assert await rows(store, noted) == []
        assert set(await rows(store, "SELECT part, phone FROM contact_number_parts")) == (
            parts_of([ANA, LUIS])
        )
        assert await phones(store, "1234567") == [LUIS, ANA]  # now from the table
        clock.advance(60)
        await admin_inbound(store, clock, EVA, "hola", None)
        assert await store.forget_contact(EVA) is not None
        assert await rows(store, noted) == []  # forgotten before its parts were written
        assert await store.checkpointer.index_all_numbers() == 0
        assert await phones(store, "2233") == []
    finally:
        await store.close()


async def test_the_look_at_the_noted_numbers_reads_the_ends_of_their_key(
    tmp_path: Path, clock: Clock
) -> None:
    """The checkpointer looks ten times a second at the first and last noted numbers: two
    reads of the key's ends, not a scan of up to BATCH_NUMBERS notes."""
    store = SQLiteStore(tmp_path / "noted.db", clock)
    await store.open()
    await store.close()
    with sqlite3.connect(tmp_path / "noted.db") as db:
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {checkpoint.NOTED}")]
        assert not [line for line in plan if line.startswith("SCAN contact_number_parts")]
        assert [line for line in plan if "contact_number_parts_pending" in line] == [
            "SEARCH contact_number_parts_pending"
        ] * 2
        assert db.execute(checkpoint.NOTED).fetchone() == (None, None)
        db.executemany(
            "INSERT INTO contact_number_parts_pending (id, phone) VALUES (?, ?)",
            [(7, ANA), (9, LUIS), (12, EVA)],
        )
        assert db.execute(checkpoint.NOTED).fetchone() == (7, 12)


async def test_numbers_wait_for_a_batch_then_go_in_key_order_a_few_parts_per_step(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch starts once numbers have waited BATCH_LOOKS looks (or BATCH_NUMBERS are noted);
    # its parts are written STEP_PARTS per transaction under the store's write lock, in the
    # key's order, a step a look (INDEX_STEPS while the next batch is due already); the last
    # step removes the batch's notes.
    batches(monkeypatch, BATCH_LOOKS=3, BATCH_NUMBERS=6, STEP_PARTS=7, INDEX_STEPS=3)
    store = SQLiteStore(tmp_path / "steps.db", clock)
    await store.open()
    first = [f"58426000000{n}" for n in range(5)]  # ten parts each: 50
    then = [f"58426100000{n}" for n in range(7)]
    try:
        await store.import_contacts([ImportRow(n, {"nombre": n}, ()) for n in first])
        assert store.checkpointer._db is not None
        written: list[str] = []
        store.checkpointer._db.set_trace_callback(written.append)
        looks, counts = [], []
        for _ in range(11):
            looks.append(await store.checkpointer.index_new_numbers())
            [(count,)] = await rows(store, "SELECT count(*) FROM contact_number_parts")
            counts.append(count)
        # Waiting, waiting, staged; then a step a look, the last one removing the notes.
        assert counts == [0, 0, 0, 7, 14, 21, 28, 35, 42, 49, 50]
        assert looks == [0] * 10 + [5]  # the batch's numbers, when it ended
        assert written.count("BEGIN IMMEDIATE") == 8
        assert await rows(store, NOTED_COUNT) == [(0,)]
        assert set(await rows(store, "SELECT part, phone FROM contact_number_parts")) == (
            parts_of(first)
        )
        # Six more: a batch at once (BATCH_NUMBERS); once the next one is due, it hurries.
        await store.import_contacts([ImportRow(n, {"nombre": n}, ()) for n in then[:6]])
        assert await store.checkpointer.index_new_numbers() == 0  # staged
        await store.import_contacts([ImportRow(n, {"nombre": n}, ()) for n in then[6:]])
        assert await store.checkpointer.index_new_numbers() == 0
        [(count,)] = await rows(store, "SELECT count(*) FROM contact_number_parts")
        assert count == 50 + 7  # not due: one step
        await store.import_contacts(
            [ImportRow(f"58426200000{n}", {"nombre": "x"}, ()) for n in range(5)]  # 6 waiting
        )
        assert await store.checkpointer.index_new_numbers() == 0
        [(count,)] = await rows(store, "SELECT count(*) FROM contact_number_parts")
        assert count == 50 + 7 + 3 * 7  # the next batch is due: INDEX_STEPS steps
    finally:
        await store.close()


async def test_a_number_forgotten_during_a_batch_leaves_nothing_behind(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some of its parts written, the rest staged: `forget`'s trigger takes out what was
    # written and its note, and the steps after skip what was staged. The same number back
    # meanwhile is a new note, for the next batch.
    batches(monkeypatch, BATCH_NUMBERS=1, STEP_PARTS=10, INDEX_STEPS=1)  # a batch at once
    store = SQLiteStore(tmp_path / "forget.db", clock)
    await store.open()
    try:
        for number in (ANA, LUIS, EVA):
            await admin_inbound(store, clock, number, "hola", None)
        assert await store.checkpointer.index_new_numbers() == 0  # staged
        assert await store.checkpointer.index_new_numbers() == 0  # a step written
        written = set(await rows(store, "SELECT part, phone FROM contact_number_parts"))
        assert 0 < len(written) < len(parts_of([ANA, LUIS, EVA]))
        assert await store.forget_contact(LUIS) is not None
        await admin_inbound(store, clock, EVA, "otra vez", None)  # known: no new note
        assert await store.forget_contact(ANA) is not None
        await admin_inbound(store, clock, ANA, "volví", None)  # a new contact: a new note
        while not await store.checkpointer.index_new_numbers():
            pass
        stored = set(await rows(store, "SELECT part, phone FROM contact_number_parts"))
        assert stored == parts_of([EVA])
        assert await rows(store, "SELECT phone FROM contact_number_parts_pending") == [(ANA,)]
        assert await phones(store, LUIS[-9:]) == []
        assert await phones(store, ANA[-9:]) == [ANA]  # from its note
        assert await store.checkpointer.index_all_numbers() == 1
        assert set(await rows(store, "SELECT part, phone FROM contact_number_parts")) == (
            parts_of([ANA, EVA])
        )
    finally:
        await store.close()


CONTACT = (
    "INSERT INTO contacts (phone, first_seen_at, last_message_at) "
    "VALUES (?, '2026-11-23T10:00:00Z', '2026-11-23T10:00:00Z')"
)


def test_staging_a_batch_takes_no_write_lock(tmp_path: Path, clock: Clock) -> None:
    # Another writer in the middle of a transaction: the staging reads and writes only its
    # own connection's temporary table, so it neither waits nor fails.
    path = tmp_path / "stage.db"

    async def create() -> None:
        store = SQLiteStore(path, clock)
        await store.open()
        await store.close()

    asyncio.run(create())
    other = sqlite3.connect(path, isolation_level=None)
    mine = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute(CONTACT, (ANA,))
        other.execute("COMMIT")
        other.execute("BEGIN IMMEDIATE")
        other.execute(CONTACT, (LUIS,))
        mine.execute("PRAGMA busy_timeout = 0")
        mine.execute(checkpoint.STAGED_TABLE)
        checkpoint.stage_numbers(mine, 10**9)
        staged = mine.execute(f"SELECT DISTINCT phone FROM {checkpoint.STAGED}").fetchall()
        assert staged == [(ANA,)]  # what was committed when it read
        other.execute("COMMIT")
    finally:
        other.close()
        mine.close()


async def test_a_backlog_is_written_in_batches_of_at_most_batch_most(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Numbers noted for a long time (an older release, a long stop): a batch stages at most
    # BATCH_MOST of them, so that the checkpointer's thread (which also looks at the WAL) is
    # never held long; the rest go in the batches after.
    batches(monkeypatch, BATCH_NUMBERS=2, BATCH_MOST=3)
    store = SQLiteStore(tmp_path / "backlog.db", clock)
    await store.open()
    numbers = [f"58426300000{n}" for n in range(7)]
    try:
        await store.import_contacts([ImportRow(n, {"nombre": n}, ()) for n in numbers])
        assert await store.checkpointer.index_new_numbers() == 0  # staged: the first 3
        [(staged,)] = (
            store.checkpointer._connection()
            .execute(f"SELECT COUNT(DISTINCT phone) FROM {checkpoint.STAGED}")
            .fetchall()
        )
        assert staged == 3
        while not await store.checkpointer.index_new_numbers():
            pass
        assert await rows(store, NOTED_COUNT) == [(4,)]
        assert await store.checkpointer.index_all_numbers() == 4  # two batches more
        assert set(await rows(store, "SELECT part, phone FROM contact_number_parts")) == (
            parts_of(numbers)
        )
    finally:
        await store.close()


async def test_a_batch_cut_short_by_a_stop_is_finished_after_the_next_start(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The staged parts live in the connection's temporary table and go with it; the notes
    # stay until a batch's last step, so the next start stages them again (writing a part
    # twice changes nothing).
    batches(monkeypatch, BATCH_NUMBERS=1, STEP_PARTS=10)
    path = tmp_path / "stop.db"
    numbers = [f"58426400000{n}" for n in range(3)]
    store = SQLiteStore(path, clock)
    await store.open()
    try:
        await store.import_contacts([ImportRow(n, {"nombre": n}, ()) for n in numbers])
        assert await store.checkpointer.index_new_numbers() == 0  # staged
        assert await store.checkpointer.index_new_numbers() == 0  # one step of three
        [(written,)] = await rows(store, "SELECT count(*) FROM contact_number_parts")
        assert written == 10
    finally:
        await store.close()
    store = SQLiteStore(path, clock)
    await store.open()
    try:
        assert await rows(store, NOTED_COUNT) == [(3,)]
        assert await store.checkpointer.index_all_numbers() == 3
        assert set(await rows(store, "SELECT part, phone FROM contact_number_parts")) == (
            parts_of(numbers)
        )
    finally:
        await store.close()
