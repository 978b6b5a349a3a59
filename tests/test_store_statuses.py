"""Every outbound status the code uses is one the database accepts, and migration 0010 (which
rebuilds `messages` to accept 'unconfirmed') keeps every column, row, index and reference."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from responder.engine import Reply
from responder.store.models import OUTBOUND_STATUSES, SendOutcome, StatusUpdate
from responder.store.sqlite import SQLiteStore, migrate
from responder.web.views import STATUS_LABELS
from tests.conftest import Clock

REBUILD = 10
A_PHONE = "584121234567"


def migrate_before_the_rebuild(path: Path) -> None:
    """A database as an older release left it: every migration before 0010 applied."""
    with sqlite3.connect(path, isolation_level=None) as db:
        migrate(db, up_to=REBUILD - 1)
        db.execute(
            "INSERT INTO messages (id, phone, direction, text, status, origin, provider, "
            "provider_id, attempts, created_at, updated_at, send_at, claimed_by, lease_until) "
            "VALUES (1, '584121234567', 'out', 'hola', 'sent', 'auto', 'massiva', 'm-1', 1, "
            "'2026-11-23T14:00:00.000000Z', '2026-11-23T14:00:01.000000Z', NULL, NULL, NULL), "
            "(2, '584121234567', 'out', 'luego', 'sending', 'agent', 'massms', NULL, 1, "
            "'2026-11-23T14:00:00.000000Z', '2026-11-23T14:00:00.000000Z', "
            "'2026-11-24T12:00:00.000000Z', 'host:1:x', '2026-11-23T14:00:30.000000Z')"
        )
        db.execute(
            "INSERT INTO attempts (message_id, at, provider, outcome) "
            "VALUES (1, '2026-11-23T14:00:01.000000Z', 'massiva', 'sent')"
        )


Shape = tuple[list[tuple[object, ...]], set[str], list[tuple[object, ...]]]


def shape(path: Path) -> Shape:
    with sqlite3.connect(path) as db:
        columns = [tuple(r[1:5]) for r in db.execute("PRAGMA table_info(messages)")]
        indexes = {r[1] for r in db.execute("PRAGMA index_list(messages)")}
        rows = db.execute("SELECT * FROM messages ORDER BY id").fetchall()
    return columns, indexes, rows


async def test_the_rebuild_keeps_every_column_row_index_and_reference(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "old.db"
    migrate_before_the_rebuild(path)
    before = shape(path)
    store = SQLiteStore(path, clock)
    await store.open()
    try:
        columns, indexes, rows = shape(path)
        # Later migrations may add columns (0013: `author`, 0016: `folded`, 0021:
        # `broadcast_id`), at the end: all else is as before.
        width = len(before[0])
        assert (columns[:width], [row[:width] for row in rows]) == (before[0], before[2])
        assert [c[0] for c in columns[width:]] == ["author", "folded", "broadcast_id"]
        later = {"messages_failed", "messages_by_broadcast"}  # 0015, 0021
        assert indexes - before[1] == later and before[1] <= indexes
        await store.record_outcomes([SendOutcome(1, "massiva", "unconfirmed", error="x")])
        [message, _] = await store.all_messages()
        assert (message.status, message.error, message.provider_id) == ("unconfirmed", "x", "m-1")
        assert len(await store.message_attempts(1)) == 2
        with pytest.raises(sqlite3.IntegrityError):  # references are still enforced
            store.db.execute(
                "INSERT INTO attempts (message_id, at, provider, outcome) "
                "VALUES (99, 'x', 'massiva', 'sent')"
            )
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        await store.close()


@pytest.mark.parametrize("status", OUTBOUND_STATUSES)
async def test_every_outbound_status_is_stored_and_labelled(
    tmp_path: Path, clock: Clock, status: str
) -> None:
    store = SQLiteStore(tmp_path / "s.db", clock)
    await store.open()
    try:
        store.db.execute(
            "INSERT INTO messages (id, phone, direction, text, status, origin, attempts, "
            "created_at, updated_at) VALUES (1, '584121234567', 'out', 'x', ?, 'agent', 0, "
            "'2026-11-23T14:00:00.000000Z', '2026-11-23T14:00:00.000000Z')",
            (status,),
        )
        [message] = await store.all_messages()
        assert message.status == status
    finally:
        await store.close()
    assert STATUS_LABELS[status] and STATUS_LABELS[status] != status  # shown in Spanish


async def test_a_delivery_report_settles_an_unconfirmed_message(
    tmp_path: Path, clock: Clock
) -> None:
    """Unconfirmed is doubt, not an end: when the gateway later reports the id it gave (a
    Massiva answer with a per-number status the manual does not name), the report wins."""
    store = SQLiteStore(tmp_path / "r.db", clock)
    await store.open()
    try:
        [queued] = await store.queue_outbound(A_PHONE, [Reply("hola", 1, "massiva")], "agent")
        await store.record_outcomes(
            [SendOutcome(queued.id, "massiva", "unconfirmed", "m-7", error="status '7'")]
        )
        found = await store.apply_status(
            StatusUpdate("massiva", "m-7", "delivered", "+584142122268", clock())
        )
        [message] = await store.all_messages()
        assert found and (message.status, message.error) == ("delivered", None)
    finally:
        await store.close()
