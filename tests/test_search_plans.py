"""A search never reads the table of messages whole, nor every contact: each statement that
searches run (caught with the store's trace, then planned with EXPLAIN QUERY PLAN) finds its
rows through the full-text index, a primary key or a partial index. Digits typed as part of a
number are a range of `contact_number_parts`' key on SQLite, and the trigram index of
`contact_numbers` on PostgreSQL."""

from __future__ import annotations

import functools
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.startup import sqlite_plans
from responder.clock import SystemClock
from responder.engine import Contact, Decision, InboundMessage, Reply
from responder.search_query import search_query
from responder.store import pg_search
from responder.store.models import InboundJob
from responder.store.postgres import PostgresStore
from responder.store.search import SearchQuery, tsquery
from responder.store.sqlite import SQLiteStore
from tests.test_postgres import fresh_database
from tests.test_startup_plans import full_scans, partial_indexes

__all__ = ["fresh_database"]  # a fixture, imported to be used here


async def estimated_share(conn: Any, words: list[str]) -> float:
    return await pg_search._estimated_share(conn, words)


def given(decision: Decision, _: Contact) -> Decision:
    return decision


async def add_contacts(store: PostgresStore, count: int, moment: datetime) -> None:
    """`count` contacts 58412nnnnnnn, their numbers moved into the trigram index as the
    service's sweep moves them, and ANALYZE run so the planner knows the tables' sizes."""
    async with store.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "contacts",
            records=[(f"58412{c:07d}", moment, moment, moment) for c in range(count)],
            columns=["phone", "first_seen_at", "last_message_at", "last_activity_at"],
        )
    while await store.index_new_numbers():
        pass
    async with store.pool.acquire() as conn:
        await conn.execute("ANALYZE")


SEARCHES = ["CAFÉ con", "zarzaparrilla", "promo", "José", "+58 412 123 4567", "0412 12", "¿?"]
NUMBER_PARTS = "SEARCH contact_number_parts USING PRIMARY KEY (part>? AND part<?)"
BIG = [
    ("messages", "messages_by_phone", "1000000 10 1"),
    ("contacts", "contacts_by_last_message", "100000 1"),
    ("contacts", "sqlite_autoindex_contacts_1", "100000 1"),
    ("contacts", "contacts_with_fields", "10000 1"),
]
# A range that holds every conversation is a scan too.
EVERY_CONVERSATION = "USING INDEX contacts_by_last_message (last_message_at>?)"


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
            await store.receive_inbound(InboundJob(message, functools.partial(given, decision)))
        await store.update_fields("584121234560", {"nombre": "José"})
        seen.clear()
        for text in SEARCHES:
            query = search_query(text, "VE")
            await store.search(query, 51)
            await store.search(query, 1)  # enough whole words: the window of the newest
            await store.search(query, 51, mode="human", assigned="ana")
            await store.search_counts("ana", query)
    finally:
        await store.close()
    statements = [s for s in dict.fromkeys(seen) if not s.startswith(("PRAGMA", "--"))]
    with sqlite3.connect(path) as db:  # plan as for a million messages (ANALYZE's figures)
        db.execute("ANALYZE")
        db.execute("DELETE FROM sqlite_stat1 WHERE tbl IN ('messages', 'contacts')")
        db.executemany("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", BIG)
    plans = sqlite_plans(path, statements)
    assert any("messages_fts MATCH" in sql for sql, _ in plans)  # the trace did catch them
    partial = partial_indexes(path)
    scans = {
        sql: full_scans(plan, partial)
        + [line for line in plan if EVERY_CONVERSATION in line and "phone LIKE" not in sql]
        for sql, plan in plans
    }
    assert {sql: lines for sql, lines in scans.items() if lines} == {}
    parts = [plan for sql, plan in plans if "contact_number_parts" in sql]
    assert parts and all(NUMBER_PARTS in plan for plan in parts)
    assert not [sql for sql, _ in plans if "phone LIKE" in sql]  # few numbers: no walk


async def test_postgres_walks_for_a_common_word_and_reads_the_index_for_a_rare_one(
    fresh_database: str,
) -> None:
    store = PostgresStore(fresh_database, SystemClock())
    await store.open()
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        (n, f"58412{n % 2000:07d}", "in", text, "received", "inbound", 0, moment, moment, text)
        for n in range(1, 40_001)
        for text in [f"hola cafe pedido {n}" + (" zarzaparrilla" if n % 9_999 == 0 else "")]
    ]
    seen: list[str] = []
    try:
        async with store.pool.acquire() as conn:
            await conn.copy_records_to_table(
                "messages",
                records=rows,
                columns=[
                    *("id", "phone", "direction", "text", "status", "origin", "attempts"),
                    *("created_at", "updated_at", "folded"),
                ],
            )
        await add_contacts(store, 2000, moment)
        plans: dict[str, list[str]] = {}
        for word in ("cafe", "zarzaparrilla"):
            words = tsquery([word])
            share = await store._read(functools.partial(estimated_share, words=[word]))
            walk = (share * 40_000) ** 2 > 51 * 40_000
            way = pg_search.WALK if walk else pg_search.FROM_INDEX
            switch = "enable_bitmapscan" if walk else "enable_indexscan"
            args = [words, 2**62, 51] + ([[f"%{word}%"]] if walk else [])

            async def explain(
                conn: Any, sql: str = way, off: str = switch, a: list[Any] = args
            ) -> Any:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL {off} = off")
                    return await conn.fetch(f"EXPLAIN {sql.format(condition='true')}", *a)

            plans[word] = [row[0] for row in await store._read(explain)]
            seen += plans[word]
        assert any("Index Scan Backward using messages_pkey" in line for line in plans["cafe"])
        rare = plans["zarzaparrilla"]
        assert any("Bitmap Index Scan on messages_words" in line for line in rare)
        assert not [line for line in seen if "Seq Scan on messages" in line]
        found = await store.search(SearchQuery("ZARZAPARRILLA"), 51)
        assert len(found.conversations) == 4
        assert len((await store.search(SearchQuery("café"), 51)).conversations) == 51
    finally:
        await store.close()


async def test_postgres_reads_parts_of_numbers_from_their_index(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, SystemClock())
    await store.open()
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    seen: list[tuple[str, tuple[Any, ...]]] = []
    try:
        await add_contacts(store, 20_000, moment)
        store.trace = lambda sql, args: seen.append((sql, args))
        await store.close()
        await store.open()  # the trace is set on new connections
        for text in ("0412 0001", "0001234", "19999", "0412"):  # `0412`: every number
            query = search_query(text, "VE")
            assert (await store.search(query, 51)).conversations
            await store.search_counts("ana", query)
        statements = list(dict.fromkeys(s for s in seen if "contact_numbers" in s[0]))
        assert len(statements) == 4

        async def explain(conn: Any, sql: str, args: tuple[Any, ...]) -> list[str]:
            async with conn.transaction():
                await conn.execute(";".join(pg_search.PLANNING))
                return [row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args)]

        async def kept(conn: Any) -> tuple[int, int]:
            """How the triggers read the table, adding a contact and deleting one (undone)."""
            transaction = conn.transaction()
            await transaction.start()
            try:
                await conn.execute(
                    "INSERT INTO contacts (phone, first_seen_at, last_message_at) "
                    "VALUES ('584249876543', now(), now())"
                )
                await conn.execute("DELETE FROM contacts WHERE phone = '584120000777'")
                row = await conn.fetchrow(
                    "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables "
                    "WHERE relname = 'contact_numbers'"
                )
                return row[0], row[1]
            finally:
                await transaction.rollback()

        seq_scans, index_scans = await store._read(kept)
        assert seq_scans == 0 and index_scans > 0  # by the key, never the whole table

        trigrams = 0
        for sql, args in statements:
            plan = await store._read(functools.partial(explain, sql=sql, args=args))
            scans = [line for line in plan if "Scan" in line]
            # Digits most numbers hold may walk the key instead, up to the LIMIT: it stops at
            # MANY_NUMBERS rows, where the index would find them all first.
            assert plan[0].startswith("Limit") and scans, plan
            assert all(
                "Bitmap Heap Scan on contact_numbers" in line
                or "Bitmap Index Scan on contact_numbers_trigrams" in line
                or "Index Only Scan using contact_numbers_pkey" in line
                for line in scans
            ), plan
            if "%412%" not in args:
                assert any("contact_numbers_trigrams" in line for line in scans), plan
                trigrams += 1
        assert trigrams == 3
    finally:
        await store.close()
