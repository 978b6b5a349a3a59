"""The inbox search on a big database, both engines: what one search costs (the list of 51,
the counts that follow it, the matching line of the 50 shown) and what the poll that keeps
the tab title up to date costs (`waiting`).

    .venv/bin/python bench/search.py [--messages 200000] [--contacts 20000] [--rounds 5]

Messages are written straight into the tables (folded as the store folds them), then each
query runs `--rounds` times through the store; the median is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.webhook import create_postgres_database, drop_postgres_database  # noqa: E402
from responder.clock import SystemClock  # noqa: E402
from responder.store import make_store  # noqa: E402
from responder.store.base import Store  # noqa: E402
from responder.text import normalize  # noqa: E402

WORDS = [
    *("hola", "quiero", "saber", "el", "precio", "del", "café", "con", "leche", "mañana"),
    *("gracias", "señor", "envío", "niño", "pedido", "cuánto", "cuesta", "tienen", "talla"),
    *("azul", "rojo", "entrega", "Valencia", "Mérida", "Caracas", "pago", "móvil"),
]
QUERIES = ["CAFÉ CON", "pinguino", "0412 100"]  # common words, nowhere, a number fragment
START = datetime(2026, 1, 1, tzinfo=UTC)


def fake_messages(messages: int, contacts: int) -> list[tuple[Any, ...]]:
    rng = random.Random(7)
    rows = []
    for n in range(1, messages + 1):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20)))
        at = START + timedelta(seconds=n * 10)
        rows.append(
            (n, f"58412{n % contacts:07d}", "in" if n % 2 else "out", text, at, normalize(text))
        )
    return rows


def fill_sqlite(path: Path, rows: list[tuple[Any, ...]], contacts: int) -> None:
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO messages (id, phone, direction, text, status, origin, attempts, "
            "created_at, updated_at, folded) VALUES (?, ?, ?, ?, 'received', 'inbound', 0, "
            "?, ?, ?)",
            [(n, p, d, t, at.isoformat(), at.isoformat(), f) for n, p, d, t, at, f in rows],
        )
        db.executemany(
            "INSERT INTO contacts (phone, first_seen_at, last_message_at, unread, mode) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (
                    f"58412{c:07d}",
                    START.isoformat(),
                    (START + timedelta(seconds=c)).isoformat(),
                    1 if c % 50 == 0 else 0,
                    "human" if c % 11 == 0 else "bot",
                )
                for c in range(contacts)
            ],
        )
        db.execute("COMMIT")


async def fill_postgres(store: Any, rows: list[tuple[Any, ...]], contacts: int) -> None:
    async with store.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "messages",
            records=[
                (n, p, d, t, "received", "inbound", 0, at, at, f) for n, p, d, t, at, f in rows
            ],
            columns=[
                "id",
                "phone",
                "direction",
                "text",
                "status",
                "origin",
                "attempts",
                "created_at",
                "updated_at",
                "folded",
            ],
        )
        await conn.copy_records_to_table(
            "contacts",
            records=[
                (
                    f"58412{c:07d}",
                    START,
                    START + timedelta(seconds=c),
                    1 if c % 50 == 0 else 0,
                    "human" if c % 11 == 0 else "bot",
                )
                for c in range(contacts)
            ],
            columns=["phone", "first_seen_at", "last_message_at", "unread", "mode"],
        )
        await conn.execute("ANALYZE")


async def timed(work: Callable[[], Awaitable[Any]], rounds: int) -> float:
    await work()  # warm the caches once
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        await work()
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000


async def measure_search(store: Store, query: str, rounds: int) -> list[tuple[str, float]]:
    fragments = [query.replace(" ", "")] if query[0].isdigit() else []
    phones = [c.phone for c in (await store.search_conversations(query, fragments, 51))[:50]]
    return [
        (
            f"search «{query}»: the list of 51",
            await timed(lambda: store.search_conversations(query, fragments, 51), rounds),
        ),
        (
            f"search «{query}»: the counts",
            await timed(lambda: store.conversation_counts(None, query, fragments), rounds),
        ),
        (
            f"search «{query}»: the lines of 50",
            await timed(lambda: store.search_matches(query, phones), rounds),
        ),
    ]


async def measure(store: Store, rounds: int) -> list[tuple[str, float]]:
    results = []
    for query in QUERIES:
        results += await measure_search(store, query, rounds)
    results.append(("waiting (every poll)", await timed(store.waiting, rounds)))
    phones = [c.phone for c in await store.conversations(50)]
    last = await timed(lambda: store.last_messages(phones), rounds)
    results.append(("last messages of 50 (the list)", last))
    return results


async def run(
    engine: str, rows: list[tuple[Any, ...]], contacts: int, rounds: int, url: str = ""
) -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as work:
        if engine == "sqlite":
            url = str(Path(work) / "bench.db")
            store = make_store(url, clock)
            await store.open()
            await store.close()
            fill_sqlite(Path(url), rows, contacts)
            store = make_store(url, clock)
            await store.open()
        else:
            store = make_store(url, clock)
            await store.open()
            await fill_postgres(store, rows, contacts)
        try:
            print(f"\n{engine}: {len(rows):,} messages, {contacts:,} conversations")
            for label, ms in await measure(store, rounds):
                print(f"  {label:<44} {ms:8.1f} ms")
        finally:
            await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    rows = fake_messages(args.messages, args.contacts)
    if args.only in (None, "sqlite"):
        asyncio.run(run("sqlite", rows, args.contacts, args.rounds))
    if args.only in (None, "postgres"):
        name, url = create_postgres_database()
        try:
            asyncio.run(run("postgres", rows, args.contacts, args.rounds, url))
        finally:
            drop_postgres_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
