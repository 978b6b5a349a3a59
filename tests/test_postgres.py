"""What only the PostgreSQL backend has: its migrations (the same tables as SQLite's), start-up
errors, NOTIFY between instances, a lost server (a TCP proxy the test cuts) and the writer's
batches. What every backend does is in test_store_contract.py."""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest
from click.testing import CliRunner

from responder.cli import main
from responder.config import StartupError
from responder.engine import Decision, InboundMessage, Reply
from responder.store import copy_pg, shown_url
from responder.store.models import InboundJob, StoreUnavailable
from responder.store.pg_counts import FOLD_LOCK
from responder.store.pg_rows import batch_locks, phone_lock_keys, report_lock_keys
from responder.store.pg_schema import unavailable
from responder.store.pg_search import CLEAN_WORDS
from responder.store.postgres import PostgresStore
from responder.store.search import SearchQuery
from responder.store.sqlite import SQLiteStore
from tests.conftest import WEBHOOK_TOKEN, Clock
from tests.fakes.tcpproxy import TcpProxy
from tests.postgres import TABLES, run_async, server_url, with_database

ANA = "584121234567"
LUIS = "584241234567"
PG_MIGRATIONS = Path(__file__).resolve().parent.parent / "responder" / "store" / "pg_migrations"


def before_0016() -> str:
    """SQL that leaves a migrated database as the release before 0016 left it: the trigram
    index of numbers gone, 0012's parts of every number and 0013's notes as they were applied
    (the extension itself is left)."""
    return (
        "DROP TABLE contact_numbers; DROP FUNCTION contact_numbers_added(), "
        "contact_numbers_removed() CASCADE; DELETE FROM schema_migrations WHERE version = 16; "
        + (PG_MIGRATIONS / "0012_number_parts.sql").read_text()
        + (PG_MIGRATIONS / "0013_number_parts_later.sql").read_text()
    )


def as_role(url: str, role: str) -> str:
    """`url` with `role` as its user, no password (the test server trusts local users)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}").geturl()


@pytest.fixture
def fresh_database(postgres_database: str) -> Iterator[str]:
    """An empty database (no migrations applied) on the test server, dropped afterwards."""
    name = f"{urlsplit(postgres_database).path.lstrip('/')}_fresh"
    server = server_url()

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_async(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    run_async(lambda: admin(f'CREATE DATABASE "{name}"'))
    yield with_database(server, name)
    run_async(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def execute(url: str, *statements: str) -> None:
    """Runs `statements` one by one on a plain connection to `url`, beside any store: to leave
    a database as an older release did, say."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as running:
        yield running


def through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host).geturl()


@pytest.fixture
async def stores(clock: Clock) -> AsyncIterator[Callable[..., Any]]:
    opened: list[PostgresStore] = []

    async def open_store(url: str, **options: float) -> PostgresStore:
        store = PostgresStore(url, clock, **options)
        await store.open()
        opened.append(store)
        return store

    yield open_store
    for store in reversed(opened):
        await store.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


def job(text: str, phone: str = ANA, **changes: Any) -> InboundJob:
    decision = Decision("r", (Reply(f"re: {text}", 1, "sandbox"),), "t", **changes)
    return InboundJob(InboundMessage(phone, text, Clock()()), lambda contact: decision, 10, 3600)


# -- schema ---------------------------------------------------------------------------------------


async def columns_sqlite(path: Path, clock: Clock) -> dict[str, set[str]]:
    store = SQLiteStore(path, clock)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        # The full-text index's tables (0023) are an index, as PostgreSQL's is; so are the
        # parts of numbers (0025, 0027), each store's own (PostgreSQL's, 0016, below).
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'messages_fts%' AND name NOT LIKE 'contact_number_%'"
            )
        ]
        return {t: {r[1] for r in db.execute(f"PRAGMA table_info({t})")} for t in tables}


async def test_instances_starting_together_migrate_once_to_sqlite_s_tables(
    fresh_database: str, stores: Callable[..., Any], clock: Clock, tmp_path: Path
) -> None:
    await asyncio.gather(*(stores(fresh_database) for _ in range(3)))
    first: PostgresStore = await stores(fresh_database)  # and once more, later
    applied = await first.pool.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")
    files = sorted(p.name for p in PG_MIGRATIONS.glob("*.sql"))
    assert [r["name"] for r in applied] == files
    assert [r["version"] for r in applied] == [int(name[:4]) for name in files]
    found = await first.pool.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name <> 'schema_migrations'"
    )
    postgres: dict[str, set[str]] = {}
    for row in found:
        postgres.setdefault(row["table_name"], set()).add(row["column_name"])
    own = {"contact_numbers"}  # the search's index of numbers (0016), as columns_sqlite says
    assert {t: c for t, c in postgres.items() if t not in own} == await columns_sqlite(
        tmp_path / "same.db", clock
    )
    # Every table is emptied between tests (tests/postgres.py), or one test's rows would
    # leak into the next one's counts.
    assert set(postgres) == set(TABLES)


async def test_the_trigram_extension_is_created_by_an_owner_and_asked_of_an_administrator(
    fresh_database: str, clock: Clock
) -> None:
    """Migration 0016 creates pg_trgm (trusted: the database's owner may, superuser or not).
    A user who may not gets an error saying what an administrator runs, and nothing of the
    migration is applied; once the extension is there, the same user migrates."""
    role = f"responder_user_{secrets.token_hex(4)}"
    name = urlsplit(fresh_database).path.lstrip("/")
    user_url = as_role(fresh_database, role)
    await execute(
        fresh_database,
        f'CREATE ROLE "{role}" LOGIN',
        f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"',
    )
    try:
        store = PostgresStore(user_url, clock)
        with pytest.raises(StartupError) as refused:
            await store.open()
        said = str(refused.value)
        assert "the inbox search needs the extension pg_trgm" in said
        assert 'run "CREATE EXTENSION pg_trgm;" in this database once' in said
        conn = await asyncpg.connect(fresh_database)
        try:
            assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 15
            assert await conn.fetchval("SELECT to_regclass('contact_number_parts')::text")
            assert await conn.fetchval("SELECT to_regclass('contact_numbers')") is None
            await conn.execute("CREATE EXTENSION pg_trgm")  # what the message says to run
        finally:
            await conn.close()
        store = PostgresStore(user_url, clock)
        await store.open()
        await store.close()
        await execute(  # an owner that is not a superuser creates it itself
            fresh_database,
            before_0016(),
            "DROP EXTENSION pg_trgm",
            f'ALTER DATABASE "{name}" OWNER TO "{role}"',
        )
        store = PostgresStore(user_url, clock)
        await store.open()
        await store.close()
        conn = await asyncpg.connect(fresh_database)
        try:
            assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 16
        finally:
            await conn.close()
    finally:
        # The database goes first (its owner may be the role), then the role.
        await execute(
            server_url(),
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'DROP ROLE IF EXISTS "{role}"',
        )


async def test_the_status_check_accepts_every_status_and_refuses_others(
    postgres_url: str, stores: Callable[..., Any], clock: Clock
) -> None:
    store: PostgresStore = await stores(postgres_url)
    insert = (
        "INSERT INTO messages (phone, direction, text, status, origin, created_at, updated_at) "
        "VALUES ('584121234567', 'out', 'x', $1, 'agent', $2, $2)"
    )
    for status in ("queued", "sending", "sent", "delivered", "failed", "scheduled", "unconfirmed"):
        await store.pool.execute(insert, status, clock())
    with pytest.raises(asyncpg.CheckViolationError):
        await store.pool.execute(insert, "lost", clock())


# -- start-up -------------------------------------------------------------------------------------


def test_urls_are_shown_without_their_password() -> None:
    assert shown_url("postgresql://ana:s3cret@db:5432/r") == "postgresql://ana:***@db:5432/r"
    assert shown_url("postgres://ana@db/r") == "postgres://ana@db/r"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ana:s3cret@127.0.0.1:1/x", "postgresql://ana:***@127.0.0.1:1/x"),
        (
            "postgresql://ana:s3cret@127.0.0.1:notaport/x",
            "postgresql://ana:***@127.0.0.1:notaport/x: expected postgresql://user:password@",
        ),
        ("{server}_missing", "{server}_missing"),
    ],
    ids=["refused", "bad-port", "no-database"],
)
def test_a_database_that_cannot_be_used_is_one_line_naming_the_variable(
    workdir: Path, url: str, shown: str
) -> None:
    server = server_url()
    url, shown = url.format(server=server), shown.format(server=server)
    env = {
        "RESPONDER_DATABASE": url,
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }
    started = time.monotonic()
    result = CliRunner().invoke(main, ["serve", "--port", "1"], env=env)
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: RESPONDER_DATABASE: cannot open {shown}"), line
    assert "s3cret" not in result.output
    assert time.monotonic() - started < 10


# -- NOTIFY ----------------------------------------------------------------------------------------


async def test_other_instances_hear_of_queued_messages_and_new_rules(
    postgres_url: str, stores: Callable[..., Any]
) -> None:
    first: PostgresStore = await stores(postgres_url)
    second: PostgresStore = await stores(postgres_url)
    heard = {"first": 0, "second": 0, "rules": 0}
    first.on_outbox = lambda: heard.__setitem__("first", heard["first"] + 1)
    second.on_outbox = lambda: heard.__setitem__("second", heard["second"] + 1)
    second.on_rules_changed = lambda: heard.__setitem__("rules", heard["rules"] + 1)
    for store in (first, second):
        assert store._listener is not None
        await asyncio.wait_for(store._listener.connected.wait(), 5)
    await first.queue_outbound(ANA, [Reply("hola", 1, "sandbox")], "cli")
    await wait_until(lambda: heard["second"] == 1)
    await first.add_rule_version("rules: []", {}, sha256="s", source="file")
    await wait_until(lambda: heard["rules"] == 1)
    await asyncio.sleep(0.2)
    assert heard == {"first": 1, "second": 1, "rules": 1}  # its own commits: heard once


# -- a server that goes away ----------------------------------------------------------------------


async def test_a_lost_server_is_unavailable_quickly_and_served_again_when_back(
    postgres_url: str, proxy: TcpProxy, stores: Callable[..., Any]
) -> None:
    store: PostgresStore = await stores(through(proxy, postgres_url), connect_timeout=2)
    assert await store.ping()
    await store.receive_inbound(job("antes"))
    proxy.cut()
    started = time.monotonic()
    assert not await store.ping()
    with pytest.raises(StoreUnavailable) as caught:
        await store.receive_inbound(job("durante"))
    assert unavailable(caught.value.__cause__ or caught.value)
    with pytest.raises(StoreUnavailable):
        await store.queue_outbound(ANA, [Reply("hola", 1, "sandbox")], "agent")
    with pytest.raises(StoreUnavailable):
        await store.conversations()
    assert await store.write_problem() is not None
    assert time.monotonic() - started < 10
    proxy.restore()
    result = await store.receive_inbound(job("después"))  # the pool reconnects by itself
    assert not result.duplicate
    assert await store.ping()
    assert await store.write_problem() is None
    assert [m.text for m in await store.messages(ANA) if m.direction == "in"] == [
        "antes",
        "después",
    ]


async def test_a_silent_network_never_hangs_the_store(
    postgres_url: str, proxy: TcpProxy, stores: Callable[..., Any]
) -> None:
    """Packets dropped without a word (a cut cable): the store gives up within its timeouts
    instead of waiting for ever, and works again when the network does."""
    store: PostgresStore = await stores(
        through(proxy, postgres_url), connect_timeout=1, command_timeout=1
    )
    await store.receive_inbound(job("antes"))
    proxy.freeze()
    started = time.monotonic()
    assert not await store.ping()
    assert time.monotonic() - started < 3
    with pytest.raises(StoreUnavailable):
        await store.receive_inbound(job("durante"))
    with pytest.raises(StoreUnavailable):
        await store.messages(ANA)
    assert time.monotonic() - started < 10
    proxy.restore()  # the connections that timed out were dropped: new ones are opened
    await store.receive_inbound(job("después"))
    assert [m.text for m in await store.messages(ANA) if m.direction == "in"] == [
        "antes",
        "después",
    ]


async def test_the_listener_comes_back_by_itself(
    postgres_url: str, proxy: TcpProxy, stores: Callable[..., Any]
) -> None:
    listening: PostgresStore = await stores(through(proxy, postgres_url))
    talking: PostgresStore = await stores(postgres_url)
    heard: list[str] = []
    listening.on_outbox = lambda: heard.append("outbox")
    listener = listening._listener
    assert listener is not None
    await asyncio.wait_for(listener.connected.wait(), 5)
    proxy.cut()
    await wait_until(lambda: not listener.connected.is_set())
    proxy.restore()
    await wait_until(lambda: listener.connections == 2, timeout=10)
    assert heard == ["outbox"]  # what was said meanwhile may have been missed: look once
    await talking.queue_outbound(ANA, [Reply("hola", 1, "sandbox")], "cli")
    await wait_until(lambda: len(heard) == 2)


# -- the writer's batches --------------------------------------------------------------------------


async def test_a_bad_item_fails_alone_and_its_neighbours_are_stored(
    postgres_url: str, stores: Callable[..., Any]
) -> None:
    store: PostgresStore = await stores(postgres_url)
    await store.pool.execute(
        "CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.text = 'boom' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; "
        "CREATE TRIGGER refuse_boom BEFORE INSERT ON messages FOR EACH ROW "
        "EXECUTE FUNCTION refuse_boom()"
    )
    try:
        texts = ["uno", "dos", "boom", "tres"]
        results = await asyncio.gather(
            *(store.receive_inbound(job(t, f"58412000000{i}")) for i, t in enumerate(texts)),
            return_exceptions=True,
        )
    finally:
        await store.pool.execute(
            "DROP TRIGGER refuse_boom ON messages; DROP FUNCTION refuse_boom()"
        )
    assert [type(r).__name__ for r in results] == [
        "InboundResult",
        "InboundResult",
        "StoreUnavailable",
        "InboundResult",
    ]
    stored = {m.text for m in await store.all_messages() if m.direction == "in"}
    assert stored == {"uno", "dos", "tres"}
    assert len(await store.conversations()) == 3  # nothing of the refused one was kept


async def test_crossing_batches_of_two_instances_never_deadlock(
    postgres_url: str, stores: Callable[..., Any]
) -> None:
    """Each batch takes its numbers' locks in one order: batches that share numbers, in
    different orders, wait for each other instead of deadlocking."""
    first: PostgresStore = await stores(postgres_url)
    second: PostgresStore = await stores(postgres_url)
    phones = [f"5841200{i:05d}" for i in range(20)]
    assert phone_lock_keys(phones) == sorted(phone_lock_keys(list(reversed(phones))))

    def count(phone: str, text: str) -> InboundJob:
        def decide(contact: Any) -> Decision:
            return Decision("r", (), "t", fields={"n": int(contact.fields.get("n", 0)) + 1})

        return InboundJob(InboundMessage(phone, text, Clock()()), decide)

    work = [
        store.receive_inbound(count(phone, f"{round_}"))
        for round_ in range(5)
        for store, order in ((first, phones), (second, list(reversed(phones))))
        for phone in order
    ]
    await asyncio.wait_for(asyncio.gather(*work), 60)
    assert {c.fields["n"] for c in await first.conversations(limit=100)} == {10}


def test_a_batch_s_locks_are_sorted_integers_sent_with_its_begin() -> None:
    """batch_locks writes its keys and ids into the statement (the simple query protocol has
    no parameters): sorted, each an integer, anything else refused."""
    pairs, phones = [("sandbox", "B-2"), ("massiva", "A-1")], [LUIS, ANA, LUIS]
    keys = sorted({*report_lock_keys(pairs), *phone_lock_keys(phones)})
    listed = ",".join(map(str, keys))
    assert batch_locks(pairs, phones, [9, 3, 9]) == (
        f"SELECT pg_advisory_xact_lock(k) FROM unnest('{{{listed}}}'::bigint[]) AS k; "
        "SELECT id FROM messages WHERE id = ANY('{3,9}'::bigint[]) ORDER BY id FOR UPDATE"
    )
    assert batch_locks([], [], []) == ""
    with pytest.raises(ValueError):
        batch_locks([], [], ["1}'::bigint[]); DROP TABLE messages; --"])  # type: ignore[list-item]


async def test_a_group_waiting_on_a_number_does_not_hold_up_the_others(
    postgres_url: str, stores: Callable[..., Any]
) -> None:
    """Grouped writes run WRITERS at a time: while one group waits (here for a number another
    transaction holds), the next webhooks are stored by the other writer, not queued behind."""
    store: PostgresStore = await stores(postgres_url)
    held = await asyncpg.connect(postgres_url)
    try:
        tx = held.transaction()
        await tx.start()
        await held.execute("SELECT pg_advisory_xact_lock($1)", phone_lock_keys([ANA])[0])
        waiting = asyncio.ensure_future(store.receive_inbound(job("espera")))
        await asyncio.sleep(0.2)  # the first writer takes it, and waits for ANA's lock
        assert not waiting.done()
        other = await asyncio.wait_for(
            store.receive_inbound(job("pasa", "584129999999")), timeout=5
        )
        assert other.message_id is not None and not waiting.done()
        await tx.rollback()
        assert (await asyncio.wait_for(waiting, timeout=5)).message_id is not None
    finally:
        await held.close()


async def test_the_sweep_moves_new_words_out_of_the_index_s_pending_list(
    postgres_url: str, stores: Callable[..., Any]
) -> None:
    """New messages' words wait in the GIN index's pending list; the sweep of new numbers moves
    them into the index, so that no webhook's insert has to (pg_search.CLEAN_WORDS)."""
    store: PostgresStore = await stores(postgres_url)

    async def receive(prefix: str) -> None:
        words = " ".join(f"{prefix}{n}" for n in range(40))
        for n in range(30):
            await store.receive_inbound(job(f"{words} {n}", f"58412{n:07d}"))

    async def pending_pages() -> int:
        return int(await store.pool.fetchval(CLEAN_WORDS))  # moving them says how many

    await receive("antes")
    assert await pending_pages() > 0  # inserts leave their words pending
    await receive("despues")
    await store.index_new_numbers()
    assert await pending_pages() == 0
    hits = await store.search(SearchQuery("despues7"))
    assert len(hits.conversations) == 30


async def test_the_sweep_moves_new_numbers_out_of_their_index_s_pending_list(
    postgres_url: str, stores: Callable[..., Any]
) -> None:
    """A new contact's number is written with the contact (migration 0016's trigger) and its
    trigrams wait in the index's pending list, where a search finds them; the sweep moves
    them into the index, and a search finds them there (pg_search.CLEAN_NUMBERS)."""
    store: PostgresStore = await stores(postgres_url)
    numbers = [f"5841277{n:05d}" for n in range(40)]
    for number in numbers:
        await store.receive_inbound(job("hola", number))

    async def found() -> list[str]:
        page = await store.search(SearchQuery("", fragments=("41277",)), limit=100)
        return sorted(c.phone for c in page.conversations)

    written = await store.pool.fetch("SELECT phone FROM contact_numbers ORDER BY phone")
    assert [row[0] for row in written] == numbers
    assert await found() == numbers  # from the pending list: the sweep has not run yet
    assert await store.index_new_numbers() > 0  # pages of it moved: they were pending
    assert await found() == numbers  # from the index
    assert await store.index_new_numbers() == 0


async def test_a_user_who_does_not_own_the_search_indexes_leaves_their_pending_lists_alone(
    postgres_url: str, stores: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Moving a pending list takes the index's owner: a service connecting as a user with
    only the rights to read and write says so once, and the sweep goes on without it; the
    numbers left pending are found all the same (a search reads the pending list too)."""
    role = f"responder_writer_{secrets.token_hex(4)}"
    owner = await asyncpg.connect(postgres_url)
    try:
        await owner.execute(f'CREATE ROLE "{role}" LOGIN')
        await owner.execute(
            f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"; '
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"; '
            f'GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO "{role}"'
        )
        user_url = as_role(postgres_url, role)
        store: PostgresStore = await stores(user_url)
        await store.receive_inbound(job("hola", "584129876543"))
        with caplog.at_level(logging.WARNING, logger="responder.store"):
            assert await store.index_new_numbers() == 0
            assert await store.index_new_numbers() == 0
        said = [r.getMessage() for r in caplog.records if "pending list" in r.getMessage()]
        assert len(said) == 2 and all("must be owner" in line for line in said)  # once each
        assert "numbers index" in said[0] and "words index" in said[1]
        assert [
            h.phone
            for h in (await store.search(SearchQuery("", fragments=("98765",)))).conversations
        ] == ["584129876543"]
        await store.close()
        # `migrate-to`'s last step as that user: the pending list left, the sequences moved.
        conn = await asyncpg.connect(user_url)
        try:
            await copy_pg.finish(conn)
            after = await conn.fetchval("SELECT last_value FROM messages_id_seq")
            assert after == await conn.fetchval("SELECT max(id) + 1 FROM messages")
        finally:
            await conn.close()
        # Each index on its own: a user who owns the numbers' (not the words') moves its list.
        await owner.execute(f'ALTER TABLE contact_numbers OWNER TO "{role}"')
        store = await stores(user_url)
        await store.receive_inbound(job("hola", "584129876544"))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="responder.store"):
            assert await store.index_new_numbers() > 0
        said = [r.getMessage() for r in caplog.records if "pending list" in r.getMessage()]
        assert len(said) == 1 and "words index" in said[0]
        await store.close()
    finally:
        await owner.execute(
            f'REASSIGN OWNED BY "{role}" TO CURRENT_USER; DROP OWNED BY "{role}"; '
            f'DROP ROLE IF EXISTS "{role}"'
        )
        await owner.close()


async def test_the_queue_tables_are_vacuumed_by_dead_rows_not_by_share(
    postgres_url: str,
) -> None:
    """The tables emptied every few seconds (the count changes) ask autovacuum to come after
    10,000 dead rows, not after a fifth of the table (migration 0015; the third, the numbers
    noted for their parts, went with 0016)."""
    conn = await asyncpg.connect(postgres_url)
    try:
        found = {
            row["relname"]: sorted(row["reloptions"] or [])
            for row in await conn.fetch(
                "SELECT relname, reloptions FROM pg_class WHERE relname = ANY($1::text[])",
                [
                    "message_count_changes",
                    "conversation_count_changes",
                    "contact_number_parts_pending",  # dropped by 0016
                ],
            )
        }
    finally:
        await conn.close()
    wanted = ["autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=10000"]
    assert found == {
        "message_count_changes": wanted,
        "conversation_count_changes": wanted,
    }


async def test_a_fold_leaves_the_changes_to_the_instance_folding_them_now(
    postgres_url: str, stores: Callable[..., Any]
) -> None:
    """One instance folds the dashboard's count changes at a time: while another holds the
    fold's lock, fold_counts moves nothing and says so; afterwards it moves them all."""
    store: PostgresStore = await stores(postgres_url)
    await store.receive_inbound(job("hola"))
    waiting = await store.pool.fetchval("SELECT count(*) FROM message_count_changes")
    assert waiting > 0
    other = await asyncpg.connect(postgres_url)
    try:
        folding = other.transaction()
        await folding.start()
        await other.execute("SELECT pg_advisory_xact_lock($1)", FOLD_LOCK)
        assert await store.fold_counts() == 0
        assert await store.pool.fetchval("SELECT count(*) FROM message_count_changes") == waiting
        await folding.rollback()
    finally:
        await other.close()
    assert await store.fold_counts() == waiting
    assert await store.pool.fetchval("SELECT count(*) FROM message_count_changes") == 0
