"""A search never reads the table of messages whole, nor every contact: each statement that
searches run (caught with the store's trace, then planned with EXPLAIN QUERY PLAN) finds its
rows through the full-text index, a primary key or a partial index. Only digits typed as part
of a number read every number (the primary key's index alone: nothing shorter holds them)."""

from __future__ import annotations

from pathlib import Path

from bench.startup import sqlite_plans
from responder.clock import SystemClock
from responder.engine import Decision, InboundMessage, Reply
from responder.search_query import search_query
from responder.store.models import InboundJob
from responder.store.sqlite import SQLiteStore
from tests.test_startup_plans import full_scans, partial_indexes

SEARCHES = ["CAFÉ con", "zarzaparrilla", "promo", "José", "+58 412 123 4567", "0412 12", "¿?"]
NUMBERS_ALONE = "SCAN contacts USING COVERING INDEX sqlite_autoindex_contacts_1"


async def test_no_statement_of_a_search_scans_messages_or_contacts(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    store = SQLiteStore(path, SystemClock())
    seen: list[str] = []
    store.trace = seen.append
    await store.open()
    try:
        for n, text in enumerate(["Un café con leche", "¿zarzaparrilla?", "promoción"]):
            decision = Decision("r", (Reply(f"re: {text}", 1, "sandbox"),), "test")
            message = InboundMessage(f"58412123456{n}", text, store.clock())
            await store.receive_inbound(InboundJob(message, lambda c, d=decision: d))
        await store.update_fields("584121234560", {"nombre": "José"})
        seen.clear()
        for text in SEARCHES:
            query = search_query(text, "VE")
            await store.search(query, 51)
            await store.search(query, 51, mode="human", assigned="ana")
            await store.search_counts("ana", query)
    finally:
        await store.close()
    statements = [s for s in dict.fromkeys(seen) if not s.startswith(("PRAGMA", "--"))]
    plans = sqlite_plans(path, statements)
    assert any("messages_fts MATCH" in sql for sql, _ in plans)  # the trace did catch them
    partial = partial_indexes(path)
    scans = {
        sql: [line for line in full_scans(plan, partial) if line != NUMBERS_ALONE]
        for sql, plan in plans
    }
    assert {sql: lines for sql, lines in scans.items() if lines} == {}
    numbers_read = [sql for sql, plan in plans if NUMBERS_ALONE in plan]
    assert numbers_read and all("phone LIKE" in sql for sql in numbers_read)
