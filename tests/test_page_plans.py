"""The pages' reads never walk a whole table of messages or contacts (DESIGN §13): every
statement the dashboard, the inbox (its list, each filter, its counts and previews, a keyset
page), a conversation (newest page, older page), the audit trail and /healthz run is caught
with the store's trace and planned. SQLite: EXPLAIN QUERY PLAN shows no SCAN of messages or
contacts but of a partial index. PostgreSQL: EXPLAIN, with sequential scans priced out (so a
plan on these small tables still shows whether an index could serve), shows no Seq Scan of
them. Search has its own plans (the search work) and is not read here."""

from __future__ import annotations

import asyncio
import functools
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.startup import sqlite_plans
from responder.clock import SystemClock
from responder.engine import Contact, Decision, InboundMessage, Reply
from responder.store.base import Store
from responder.store.models import UNASSIGNED, InboundJob
from responder.store.postgres import PostgresStore
from responder.store.sqlite import SQLiteStore
from tests.test_startup_plans import full_scans, partial_indexes

PHONE = "584121234567"
# The list in time order, unfiltered or filtered by what most conversations are (open, the
# bot's, nobody's): walking contacts_by_last_message in order stops after about a page. The
# few (needing attention, with people, opted out, resolved) have partial indexes of their own.
ORDERED_WALK = "SCAN contacts USING INDEX contacts_by_last_message"
FEW = re.compile(r"needs_attention = |opted_out = |mode = (\?|'human')|status = (\?|'resolved')")


def given(decision: Decision, _: Contact) -> Decision:
    return decision


async def page_reads(store: Store) -> None:
    """What the pages read, called as they call it."""
    for n in range(3):
        decision = Decision("precio", (Reply("hola", 1, "sandbox"),), "test")
        message = InboundMessage(f"58412000000{n}", "precio", SystemClock()())
        await store.receive_inbound(InboundJob(message, functools.partial(given, decision)))
    now = SystemClock()()
    for since in (now - timedelta(hours=3), now - timedelta(days=90)):
        await store.message_counts_by_hour(since, now)
        await store.outbound_status_counts(since, now)
        await store.provider_counts(since, now)
        await store.top_rules(since, until=now)
    first = await store.conversations(51)
    key = (first[-1].last_message_at, first[-1].phone)
    for filters in (
        {},
        {"needs_attention": True},
        {"mode": "human"},
        {"opted_out": True},
        {"status": "resolved"},
        {"assigned": "ana"},
        {"mode": "bot"},
        {"status": "open"},
        {"assigned": UNASSIGNED},
    ):
        await store.conversations(51, **filters)
        await store.conversations(51, after=key, **filters)
    await store.conversation_counts("ana")
    phones = [c.phone for c in first]
    await store.last_messages(phones)
    await store.failed_phones(phones)
    await store.waiting()
    await store.conversation(phones[0])
    newest = await store.message_page(phones[0], None, 200)
    await store.message_page(phones[0], newest[0].id, 200)
    await store.message_page(phones[0], None, 5000, since_id=newest[0].id)
    await store.notes(phones[0])
    await store.broadcast_names(phones[0], newest[0].id)
    await store.audit_events(300)
    await store.audit_events(300, before=10)
    await store.ping()
    await store.balances()


def scans_allowed(sql: str, line: str) -> bool:
    squashed = " ".join(sql.split())
    return line.startswith(ORDERED_WALK) and FEW.search(squashed) is None


async def test_no_read_of_a_page_scans_messages_or_contacts_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "pages.db"
    seen: list[str] = []
    store = SQLiteStore(path, SystemClock())
    await store.open()
    store.trace = seen.append
    await store.reader.set_trace_callback(seen.append)
    await store.health_reader.set_trace_callback(seen.append)
    try:
        await page_reads(store)
    finally:
        await store.close()
    reads = [s for s in dict.fromkeys(seen) if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    plans = sqlite_plans(path, reads)
    assert any("message_counts" in sql for sql, _ in plans)  # the trace caught the pages
    partial = partial_indexes(path)
    scans = {
        sql: [line for line in full_scans(plan, partial) if not scans_allowed(sql, line)]
        for sql, plan in plans
    }
    assert {sql: lines for sql, lines in scans.items() if lines} == {}


async def test_no_read_of_a_page_scans_messages_or_contacts_on_postgresql(
    postgres_url: str,
) -> None:
    seen: list[tuple[str, tuple[Any, ...]]] = []
    store = PostgresStore(postgres_url, SystemClock())
    store.trace = lambda query, args: seen.append((query, args))
    await store.open()
    try:
        await page_reads(store)
    finally:
        await store.close()
    reads = {
        q: (q, a)
        for q, a in seen
        if q.lstrip().upper().startswith(("SELECT", "WITH")) and ";" not in q.strip().rstrip(";")
    }
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("SET enable_seqscan = off")
        scans = {}
        for query, args in reads.values():
            plan = [row[0] for row in await conn.fetch(f"EXPLAIN {query}", *args)]
            found = [x for x in plan if re.search(r"Seq Scan on (messages|contacts)\b", x)]
            if found:
                scans[query] = found
    finally:
        await conn.close()
    assert any("message_counts" in q for q in reads)
    assert scans == {}


def test_a_scan_of_messages_would_be_caught(tmp_path: Path) -> None:
    path = tmp_path / "caught.db"
    asyncio.run(_migrated(path))
    ((_, plan),) = sqlite_plans(path, ["SELECT COUNT(*) FROM messages WHERE direction = 'in'"])
    assert full_scans(plan, partial_indexes(path)) != []


async def _migrated(path: Path) -> None:
    store = SQLiteStore(path, SystemClock())
    await store.open()
    await store.close()


async def test_what_waits_is_counted_on_its_index_alone_on_sqlite(tmp_path: Path) -> None:
    """Every admin page asks what waits every few seconds: no contact's row is read for it."""
    from responder.store.sqlite import NEWEST_WAITING, WAITING

    path = tmp_path / "waiting.db"
    store = SQLiteStore(path, SystemClock())
    await store.open()
    await store.close()
    count = f"SELECT COUNT(*) FROM contacts WHERE {WAITING}"
    for sql, plan in sqlite_plans(path, [count, NEWEST_WAITING]):
        assert any("USING COVERING INDEX contacts_waiting" in line for line in plan), (sql, plan)
