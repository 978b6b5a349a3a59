"""Messages stored before the search learned to forgive are folded by the migration that adds
`messages.folded` (SQLite 0016 through its registered function, PostgreSQL 0005 in Python), and
found like new ones; the full-text index (SQLite 0023, PostgreSQL 0011) takes them in, and
contact fields stored before are folded too."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from responder.engine import Contact, Decision, InboundMessage
from responder.store.base import Store
from responder.store.models import InboundJob
from responder.store.postgres import PostgresStore
from responder.store.search import SearchQuery
from responder.store.sqlite import SQLiteStore, migrate
from tests.conftest import Clock
from tests.test_postgres import execute, fresh_database

__all__ = ["fresh_database"]  # a fixture, imported to be used here

SEARCH = 16  # the SQLite migration that adds messages.folded
PHONE = "584121234567"
OLD_TEXTS = ["Quiero un CAFÉ, por favor", "¿Tienen pingüinos de peluche?"]


def before_search(path: Path) -> None:
    """A database as an older release left it: every migration before 0016, and messages."""
    with sqlite3.connect(path, isolation_level=None) as db:
        migrate(db, up_to=SEARCH - 1)
        for n, text in enumerate(OLD_TEXTS, 1):
            db.execute(
                "INSERT INTO messages (id, phone, direction, text, status, origin, attempts, "
                "created_at, updated_at) VALUES (?, ?, 'in', ?, 'received', 'inbound', 0, "
                "'2026-11-23T14:00:00.000000Z', '2026-11-23T14:00:00.000000Z')",
                (n, PHONE, text),
            )
        db.execute(
            "INSERT INTO contacts (phone, first_seen_at, last_message_at, fields) "
            "VALUES (?, '2026-11-23T14:00:00.000000Z', '2026-11-23T14:00:00.000000Z', ?)",
            (PHONE, '{"nombre": "José Pérez"}'),
        )


async def found(store: Store, query: str) -> list[tuple[str, str | None]]:
    """Each conversation found, with the text of its matching message."""
    page = await store.search(SearchQuery(query))
    texts = {m.id: m.text for m in await store.messages_by_id(list(page.matched.values()))}
    return [(c.phone, texts.get(page.matched.get(c.phone, 0))) for c in page.conversations]


async def test_sqlite_folds_the_messages_already_stored(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "old.db"
    before_search(path)
    store = SQLiteStore(path, clock)
    await store.open()
    try:
        for query, text in [("cafe por favor", OLD_TEXTS[0]), ("PINGUINOS", OLD_TEXTS[1])]:
            assert await found(store, query) == [(PHONE, text)]
        assert await found(store, "jose PEREZ") == [(PHONE, None)]  # the contact's fields
        assert await found(store, "pingu") == [(PHONE, OLD_TEXTS[1])]  # a prefix, by the index
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT folded FROM messages ORDER BY id").fetchall() == [
            ("quiero un cafe por favor",),
            ("tienen pinguinos de peluche",),
        ]


async def test_postgres_folds_the_messages_already_stored(
    fresh_database: str, clock: Clock
) -> None:
    store = PostgresStore(fresh_database, clock)
    await store.open()

    def unanswered(contact: Contact) -> Decision:
        return Decision(None, (), "t", needs_attention=True)

    for text in OLD_TEXTS:
        await store.receive_inbound(InboundJob(InboundMessage(PHONE, text, clock()), unanswered))
    await store.close()
    # As an older release left it: no folded column, migration 0005 not applied.
    await execute(
        fresh_database,
        "ALTER TABLE messages DROP COLUMN folded; DROP INDEX contacts_waiting; "
        "DELETE FROM schema_migrations WHERE version = 5",
    )
    store = PostgresStore(fresh_database, clock)
    await store.open()
    try:
        for query, text in [("cafe por favor", OLD_TEXTS[0]), ("PINGUINOS", OLD_TEXTS[1])]:
            assert await found(store, query) == [(PHONE, text)]
        rows = await store.pool.fetch("SELECT folded FROM messages ORDER BY id")
        assert [r[0] for r in rows] == ["quiero un cafe por favor", "tienen pinguinos de peluche"]
    finally:
        await store.close()


@pytest.mark.parametrize("built_before", [False, True])  # CREATE INDEX CONCURRENTLY first
async def test_postgres_indexes_the_words_and_folds_the_fields_already_stored(
    fresh_database: str, clock: Clock, built_before: bool
) -> None:
    store = PostgresStore(fresh_database, clock)
    await store.open()
    await store.receive_inbound(
        InboundJob(
            InboundMessage(PHONE, OLD_TEXTS[1], clock()),
            lambda contact: Decision(None, (), "t", needs_attention=True),
        )
    )
    await store.update_fields(PHONE, {"nombre": "José Pérez"})
    await store.close()
    # As an older release left it: migration 0011 not applied.
    built = (
        "CREATE INDEX CONCURRENTLY messages_words ON messages USING gin "
        "(to_tsvector('simple', regexp_replace(folded, '[^[:alnum:]]+', ' ', 'g')))"
    )
    await execute(
        fresh_database,
        "DROP INDEX messages_words; DROP INDEX contacts_with_fields; "
        "ALTER TABLE contacts DROP COLUMN folded; "
        "DELETE FROM schema_migrations WHERE version = 11",
        *([built] if built_before else []),
    )
    store = PostgresStore(fresh_database, clock)
    await store.open()
    try:
        assert await found(store, "jose PEREZ") == [(PHONE, None)]
        assert await found(store, "pingu") == [(PHONE, OLD_TEXTS[1])]
        index = await store.pool.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'messages_words'"
        )
        assert "to_tsvector('simple'::regconfig, regexp_replace(folded" in index
    finally:
        await store.close()
