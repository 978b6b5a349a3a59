"""The SQLite backend itself: its migrations, and writes that fail (the contract suite,
test_store_contract.py, holds what every backend does)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from responder.engine import Contact, Decision, InboundMessage
from responder.store.models import InboundJob, StoreUnavailable
from responder.store.sqlite import SQLiteStore
from tests.conftest import ROOT, Clock

MIGRATIONS = ROOT / "responder" / "store" / "migrations"


async def test_migrations_apply_once_and_set_the_version(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "m.db"
    for _ in range(2):
        store = SQLiteStore(path, clock)
        await store.open()
        await store.close()
    with sqlite3.connect(path) as db:
        latest = max(int(p.name[:4]) for p in MIGRATIONS.glob("*.sql"))
        assert db.execute("PRAGMA user_version").fetchone() == (latest,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"contacts", "messages", "attempts", "rejected_webhooks", "meta"} <= tables


async def test_a_failed_write_is_not_acknowledged_nor_remembered(
    tmp_path: Path, clock: Clock
) -> None:
    store = SQLiteStore(tmp_path / "w.db", clock)
    await store.open()
    message = InboundMessage("584121234567", "hola", clock(), "584141234567")

    def decide(contact: Contact) -> Decision:
        return Decision("r", (), "test")

    # A real failure at COMMIT, where a full disk shows up in WAL mode: a row that breaks a
    # foreign key whose check is deferred to the commit.
    store.db.execute(
        "CREATE TEMP TRIGGER fail AFTER INSERT ON messages BEGIN INSERT INTO attempts "
        "(message_id, at, provider, outcome) VALUES (-1, 'x', 'p', 'o'); END"
    )
    store.db.execute("PRAGMA defer_foreign_keys = ON")
    with pytest.raises(StoreUnavailable) as caught:
        await store.receive_inbound(InboundJob(message, decide, dedupe_window=10))
    cause = caught.value.__cause__
    assert isinstance(cause, sqlite3.IntegrityError)
    assert cause.sqlite_errorname == "SQLITE_CONSTRAINT_FOREIGNKEY"
    assert not store.db.in_transaction
    store.db.execute("DROP TRIGGER fail")
    # The provider's retry is stored: nothing remembered the failed attempt as received.
    result = await store.receive_inbound(InboundJob(message, decide, dedupe_window=10))
    assert not result.duplicate
    assert [m.text for m in await store.all_messages()] == ["hola"]
    await store.close()


async def test_a_failing_commit_is_rolled_back(tmp_path: Path, clock: Clock) -> None:
    store = SQLiteStore(tmp_path / "c.db", clock)
    await store.open()

    def violate_at_commit(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA defer_foreign_keys = ON")  # checked only at COMMIT
        db.execute(
            "INSERT INTO attempts (message_id, at, provider, outcome) VALUES (999, 'x', 'p', 'o')"
        )

    with pytest.raises(sqlite3.IntegrityError):
        await store._transaction(violate_at_commit)
    assert not store.db.in_transaction
    assert store.db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 0
    assert await store.meta_value("k", lambda: "v") == "v"  # the next transaction works
    await store.close()


@pytest.mark.parametrize("module", ["responder.store.sqlite", "responder.store.pg_rows"])
def test_message_columns_are_the_records_fields_in_order(module: str) -> None:
    """Both stores build a Message from its row by position."""
    import importlib

    from responder.store.models import MESSAGE_FIELDS

    columns: str = importlib.import_module(module).MESSAGE_COLUMNS
    assert tuple(columns.split(", ")) == MESSAGE_FIELDS


def test_records_as_json_are_copies_with_moments_in_iso() -> None:
    from dataclasses import asdict
    from datetime import UTC, datetime, timedelta, timezone

    from responder.store.models import Conversation, Message

    at = datetime(2026, 11, 23, 10, 0, 0, 1234, tzinfo=timezone(timedelta(hours=-4)))
    message = Message(7, "584121234567", "out", "hola", "sent", "auto", "saludo", "massiva",
                      "p-1", None, None, 1, at, at.astimezone(UTC), None, None, "ana")  # fmt: skip
    assert message.as_json() == {
        **asdict(message),
        "created_at": "2026-11-23T14:00:00.001234Z",
        "updated_at": "2026-11-23T14:00:00.001234Z",
    }
    fields = {"nombre": "Ana", "hijos": ["Eva"]}
    conversation = Conversation("584121234567", at, "hola", "bot", False, None, 0, False, False,
                                fields, labels=("vip",))  # fmt: skip
    data = conversation.as_json()
    assert data["labels"] == ["vip"] and data["last_message_at"] == "2026-11-23T14:00:00.001234Z"
    data["fields"]["hijos"].append("Luis")  # the caller's copy, not the record's
    assert conversation.fields == {"nombre": "Ana", "hijos": ["Eva"]}
