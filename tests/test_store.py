"""The SQLite store: migrations, kept tokens, grouped commits, nothing lost."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from responder.config import Settings
from responder.engine import Contact, Decision, InboundMessage, Reply
from responder.service import Service
from responder.store.models import InboundJob, SendOutcome, StatusUpdate, StoreUnavailable
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


async def test_generated_tokens_survive_restarts(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    settings = make_settings(RESPONDER_WEBHOOK_TOKEN="", RESPONDER_ADMIN_TOKEN="")
    tokens = []
    for _ in range(2):
        service = Service(settings, clock=clock)
        await service.open()
        tokens.append((service.webhook_token, service.admin_token))
        await service.store.close()
    assert tokens[0] == tokens[1]
    assert len(tokens[0][0]) >= 24 and tokens[0][0] != tokens[0][1]


async def test_concurrent_inbound_is_grouped_and_complete(tmp_path: Path, clock: Clock) -> None:
    store = SQLiteStore(tmp_path / "g.db", clock)
    await store.open()
    seen: list[Contact] = []

    def decide(contact: Contact) -> Decision:
        seen.append(contact)
        return Decision("r", (Reply(f"re {len(seen)}", 1, "sandbox"),), "test")

    jobs = [
        InboundJob(InboundMessage(f"58412000{i % 50:04d}", f"m{i}", clock()), decide)
        for i in range(500)
    ]
    results = await asyncio.gather(*(store.receive_inbound(job) for job in jobs))
    messages = await store.all_messages()
    assert len(messages) == 1000
    assert len({r.message_id for r in results}) == 500
    assert all(len(r.reply_ids) == 1 for r in results)
    # Contacts after their first message are no longer first contacts, even within one batch.
    assert sum(c.first_contact for c in seen) == 50
    conversations = await store.conversations(limit=500)
    assert len(conversations) == 50
    assert all(c.unread == 10 for c in conversations)
    await store.close()


async def test_a_failing_decision_does_not_lose_the_message(tmp_path: Path, clock: Clock) -> None:
    store = SQLiteStore(tmp_path / "f.db", clock)
    await store.open()

    def broken(contact: Contact) -> Decision:
        raise RuntimeError("bug")

    result = await store.receive_inbound(
        InboundJob(InboundMessage("584121234567", "hola", clock()), broken)
    )
    [message] = await store.all_messages()
    assert message.id == result.message_id
    assert message.error == "internal error: bug"
    await store.close()


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


async def test_a_late_sent_never_undoes_a_delivery_report(tmp_path: Path, clock: Clock) -> None:
    store = SQLiteStore(tmp_path / "s.db", clock)
    await store.open()
    [message] = await store.queue_outbound("584121234567", [Reply("hola", 1, "massiva")], "cli")
    await store.record_outcomes([SendOutcome(message.id, "massiva", "sent", "p-1")])
    found = await store.apply_status(StatusUpdate("massiva", "p-1", "delivered", "+58414", clock()))
    assert found
    await store.record_outcomes([SendOutcome(message.id, "massiva", "sent", "p-1")])
    [stored] = await store.all_messages()
    assert (stored.status, stored.line) == ("delivered", "+58414")
    await store.close()
