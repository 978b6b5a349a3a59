"""The inbox search on a big database, both engines: what the migration that builds the
full-text index costs on the messages already there, what one search costs (the list of 51,
the counts that follow it, the matching lines of the 50 shown) for a common word, a rare one,
a prefix, a word in no message, contact fields and numbers, and what the poll that keeps the
tab title up to date costs (`waiting`).

    .venv/bin/python bench/search.py [--messages 200000] [--contacts 20000] [--rounds 5]
    .venv/bin/python bench/search.py --messages 1000000 --contacts 100000
    .venv/bin/python bench/search.py --database /work/scale/medium.sqlite   # a copy of it

Messages are written straight into the tables (folded as the store folds them) of a database
migrated up to the one before the search index (SQLite 0022, PostgreSQL 0010); then the store
opens it and applies the index's migration (timed); then each query runs `--rounds` times
through the store and the median is shown. With `--database FILE` a copy of an existing
SQLite database is measured instead (the migration alters the file it opens). On SQLite the
timed opening applies every migration after 0022, not only the index's.
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
from responder.search_query import search_query  # noqa: E402
from responder.store import make_store  # noqa: E402
from responder.store.base import Store  # noqa: E402
from responder.store.sqlite import add_functions, migrate  # noqa: E402
from responder.text import normalize  # noqa: E402

WORDS = [
    *("hola", "quiero", "saber", "el", "precio", "del", "café", "con", "leche", "mañana"),
    *("gracias", "señor", "envío", "niño", "pedido", "cuánto", "cuesta", "tienen", "talla"),
    *("azul", "rojo", "entrega", "Valencia", "Mérida", "Caracas", "pago", "móvil"),
    *("promoción", "descuento", "factura", "transferencia", "dirección", "teléfono"),
]
RARE = "zarzaparrilla"  # in one message of RARE_EVERY
RARE_EVERY = 40_000
NAMES = ["José Pérez", "María Gómez", "Ana Núñez", "Luis Peña", "Carmen Díaz"]
QUERIES = [
    ("a common word", "CAFÉ"),
    ("two common words", "cafe con"),
    ("a rare word", RARE.upper()),
    ("a prefix", "promo"),
    ("a word in no message", "pinguino"),
    ("a name (contact fields)", "JOSE perez"),
    ("a whole number", "0412 000 0123"),
    ("the busiest number (bench/scale.py)", "0414 999 0000"),
    ("part of a number", "0412 0001"),
]
START = datetime(2024, 1, 1, tzinfo=UTC)
COUNTRY = "VE"
SQLITE_BEFORE = 22  # the last SQLite migration before the search index (0023)
PG_BEFORE = 11  # the PostgreSQL migration that adds it


def phone(contact: int) -> str:
    return f"58412{contact:07d}"


def fake_messages(messages: int, contacts: int) -> list[tuple[Any, ...]]:
    rng = random.Random(7)
    rows = []
    for n in range(1, messages + 1):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20)))
        if n % RARE_EVERY == 0:
            text += f" {RARE}"
        at = START + timedelta(seconds=n * 10)
        rows.append((n, phone(n % contacts), "in" if n % 2 else "out", text, at, normalize(text)))
    return rows


def contact_rows(messages: int, contacts: int) -> list[tuple[Any, ...]]:
    """Each contact's last message is the newest of its messages (n % contacts); one in ten
    has a name."""
    rows = []
    for c in range(contacts):
        last = c + (messages - c) // contacts * contacts
        name = NAMES[c % len(NAMES)] if c % 10 == 0 else None
        rows.append(
            (
                phone(c),
                START,
                START + timedelta(seconds=max(last, 1) * 10),
                1 if c % 50 == 0 else 0,
                "human" if c % 11 == 0 else "bot",
                "{}" if name is None else f'{{"nombre": "{name}"}}',
            )
        )
    return rows


def schema_before_index(path: Path) -> None:
    """A new database migrated up to SQLITE_BEFORE, as an older release left it: the later
    migrations (the index, and what came after it) are then applied by the store, timed.
    Built forward rather than by taking the index back out, which every later migration
    would have to know how to undo."""
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA journal_mode = WAL")
        add_functions(db)
        migrate(db, up_to=SQLITE_BEFORE)


def fill_sqlite(path: Path, rows: list[tuple[Any, ...]], contacts: list[tuple[Any, ...]]) -> None:
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO messages (id, phone, direction, text, status, origin, attempts, "
            "created_at, updated_at, folded) VALUES (?, ?, ?, ?, 'received', 'inbound', 0, "
            "?, ?, ?)",
            [(n, p, d, t, at.isoformat(), at.isoformat(), f) for n, p, d, t, at, f in rows],
        )
        db.executemany(
            "INSERT INTO contacts (phone, first_seen_at, last_message_at, last_activity_at, "
            "unread, mode, fields) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (p, f.isoformat(), last.isoformat(), last.isoformat(), u, m, fl)
                for p, f, last, u, m, fl in contacts
            ],
        )
        db.execute("COMMIT")
        db.execute("ANALYZE")


async def fill_postgres(
    store: Any, rows: list[tuple[Any, ...]], contacts: list[tuple[Any, ...]]
) -> None:
    async with store.pool.acquire() as conn:
        await conn.execute(
            "DROP INDEX messages_words; DROP INDEX contacts_with_fields; "
            f"ALTER TABLE contacts DROP COLUMN folded; "
            f"DELETE FROM schema_migrations WHERE version = {PG_BEFORE}"
        )
        await conn.copy_records_to_table(
            "messages",
            records=[
                (n, p, d, t, "received", "inbound", 0, at, at, f) for n, p, d, t, at, f in rows
            ],
            columns=[
                *("id", "phone", "direction", "text", "status", "origin", "attempts"),
                *("created_at", "updated_at", "folded"),
            ],
            timeout=3600,
        )
        await conn.copy_records_to_table(
            "contacts",
            records=[(p, f, last, last, u, m, fl) for p, f, last, u, m, fl in contacts],
            columns=[
                *("phone", "first_seen_at", "last_message_at", "last_activity_at"),
                *("unread", "mode", "fields"),
            ],
            timeout=3600,
        )
        await conn.execute("ANALYZE", timeout=3600)


async def timed(work: Callable[[], Awaitable[Any]], rounds: int) -> float:
    await work()  # warm the caches once
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        await work()
        took.append(time.perf_counter() - started)
    return statistics.median(took) * 1000


async def measure_search(store: Store, text: str, rounds: int) -> tuple[Any, ...]:
    query = search_query(text, COUNTRY)
    page = await store.search(query, 51)
    ids = list(page.matched.values())[:50]
    counts = await store.search_counts(None, query)
    return (
        len(page.conversations),
        f"{counts.counts['all']}{'' if counts.complete else '+'}",
        await timed(lambda: store.search(query, 51), rounds),
        await timed(lambda: store.search_counts(None, query), rounds),
        await timed(lambda: store.messages_by_id(ids), rounds),
    )


async def measure(store: Store, rounds: int) -> None:
    print(f"  {'search':<40} {'found':>6} {'count':>6} {'list':>8} {'counts':>8} {'lines':>7}")
    for label, text in QUERIES:
        found, count, *ms = await measure_search(store, text, rounds)
        shown = f"{label} «{text}»"
        print(f"  {shown:<40} {found:>6} {count:>6} " + " ".join(f"{t:6.1f} ms" for t in ms))
    print(f"  {'waiting (every poll)':<54} {await timed(store.waiting, rounds):6.1f} ms")
    phones = [c.phone for c in await store.conversations(50)]
    last = await timed(lambda: store.last_messages(phones), rounds)
    print(f"  {'last messages of 50 (the list)':<54} {last:6.1f} ms")


async def run_sqlite(path: Path, rounds: int, build: Callable[[Path], None] | None) -> None:
    clock = SystemClock()
    if build is not None:
        schema_before_index(path)
        build(path)
    store = make_store(str(path), clock)
    started = time.perf_counter()
    await store.open()  # applies the index's migration and the later ones
    took = time.perf_counter() - started
    print(
        f"  migrations {SQLITE_BEFORE + 1:04d} and later (the full-text index first): {took:.1f} s"
    )
    try:
        await measure(store, rounds)
    finally:
        await store.close()


async def run_postgres(
    url: str, rows: list[tuple[Any, ...]], contacts: list[tuple[Any, ...]], rounds: int
) -> None:
    clock = SystemClock()
    store = make_store(url, clock)
    await store.open()
    await fill_postgres(store, rows, contacts)
    await store.close()
    store = make_store(url, clock)
    started = time.perf_counter()
    await store.open()
    took = time.perf_counter() - started
    print(f"  migration (GIN index of the words, fields folded): {took:.1f} s")
    try:
        async with store.pool.acquire() as conn:  # type: ignore[attr-defined]
            await conn.execute("ANALYZE", timeout=3600)
        await measure(store, rounds)
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--database", type=Path, help="measure a copy of this SQLite database")
    args = parser.parse_args()
    if args.database:
        with tempfile.TemporaryDirectory() as work:
            copy = Path(work) / "copy.db"
            # SQLite's online backup: a consistent copy even while another process has it open.
            source = sqlite3.connect(f"file:{args.database}?mode=ro", uri=True)
            with sqlite3.connect(copy) as target:
                source.backup(target)
            source.close()
            print(f"\nsqlite: a copy of {args.database}")
            asyncio.run(run_sqlite(copy, args.rounds, None))
        return 0
    started = time.perf_counter()
    rows = fake_messages(args.messages, args.contacts)
    contacts = contact_rows(args.messages, args.contacts)
    print(f"{len(rows):,} messages made in {time.perf_counter() - started:.0f} s")
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as work:
            print(f"\nsqlite: {len(rows):,} messages, {len(contacts):,} conversations")
            path = Path(work) / "bench.db"
            asyncio.run(run_sqlite(path, args.rounds, lambda p: fill_sqlite(p, rows, contacts)))
    if args.only in (None, "postgres"):
        name, url = create_postgres_database()
        try:
            print(f"\npostgres: {len(rows):,} messages, {len(contacts):,} conversations")
            asyncio.run(run_postgres(url, rows, contacts, args.rounds))
        finally:
            drop_postgres_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
