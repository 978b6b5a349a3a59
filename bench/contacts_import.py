"""The contacts CSV (DESIGN §12) on both engines: importing a file of `--rows` new contacts
(checked, then written in one transaction), importing it again (every row an update), and
exporting it; then, with `--book` contacts in the database, what the Contactos page's queries
cost (first and deepest keyset page, a label, a search) and their plans (EXPLAIN).

    .venv/bin/python bench/contacts_import.py [--rows 10000] [--book 500000] [--only sqlite]

Each timing goes through ContactBook, as the page, the API and the CLI do.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.webhook import create_postgres_database, drop_postgres_database  # noqa: E402
from responder.accounts import Accounts  # noqa: E402
from responder.clock import SystemClock  # noqa: E402
from responder.contacts import ContactBook  # noqa: E402
from responder.phone import normalize_phone  # noqa: E402
from responder.rules.reload import RulesHolder  # noqa: E402
from responder.store import make_store  # noqa: E402
from responder.store.models import ImportRow  # noqa: E402

NAMES = ["José", "María", "Ana", "Luis", "Carmen", "Pedro", "Lucía", "Andrés", "Sofía", "Raúl"]
CITIES = ["Mérida", "Caracas", "Valencia", "Maracaibo", "Barquisimeto", "Cumaná"]
LABELS = ["promo", "vip", "feria", "mayorista", "nuevo"]
CHUNK = 20_000  # book rows written per import when filling


def fake_csv(rows: int, start: int = 0) -> bytes:
    rng = random.Random(7)
    lines = ["phone;labels;nombre;ciudad;cliente_desde"]
    for n in range(start, start + rows):
        labels = ";".join(rng.sample(LABELS, rng.randint(0, 2)))
        name = f"{rng.choice(NAMES)} {rng.choice(NAMES)}"
        lines.append(f'0412{n:07d};"{labels}";{name};{rng.choice(CITIES)};20{n % 25:02d}')
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


def book_for(store: Any, rules: RulesHolder) -> ContactBook:
    return ContactBook(store, Accounts(store, SystemClock(), lambda: "bench-admin-token"), rules)


async def measure_import(book: ContactBook, data: bytes, rows: int) -> None:
    book.plan(fake_csv(10, start=10**6))  # the phone library loads its data once per process
    normalize_phone.cache_clear()  # every number parsed afresh, as in a new file
    started = time.perf_counter()
    plan = book.plan(data)
    checked = time.perf_counter() - started
    assert plan.clean, plan.problems[:3]
    normalize_phone.cache_clear()
    took, report = await timed(lambda: book.import_csv("bench", data))
    print(f"  check {rows:,} rows (no database)          {checked * 1000:8.0f} ms")
    print(f"  import {rows:,} new contacts (check + write) {took * 1000:8.0f} ms  {report}")
    normalize_phone.cache_clear()
    took, report = await timed(lambda: book.import_csv("bench", data))
    print(f"  import them again (all updates)          {took * 1000:8.0f} ms  {report}")

    async def export() -> int:
        return sum([len(chunk) async for chunk in book.export_csv()])

    took, size = await timed(export)
    print(f"  export {rows:,} contacts ({size / 1e6:.1f} MB)            {took * 1000:8.0f} ms")


async def fill_book(store: Any, total: int, have: int) -> None:
    rng = random.Random(11)
    for start in range(have, total, CHUNK):
        rows = [
            ImportRow(
                f"58416{n:07d}",
                {"nombre": f"{rng.choice(NAMES)} {n}", "ciudad": rng.choice(CITIES)},
                ("par",) if n % 2 == 0 else (),
            )
            for n in range(start, min(total, start + CHUNK))
        ]
        await store.import_contacts(rows)


async def explain(store: Any, engine: str, sql: str, *args: Any) -> str:
    if engine == "sqlite":
        rows = await store.reader.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", args)
        return "\n".join(f"      {row[3]}" for row in rows)
    rows = await store._fetch(f"EXPLAIN {sql}", *args)
    return "\n".join(f"      {row[0]}" for row in rows)


async def search(book: ContactBook, query: str) -> Any:
    return await book.page("", text=query)


async def measure_book(store: Any, book: ContactBook, engine: str, size: int) -> None:
    last = f"58416{size - 30:07d}"  # 30 contacts of the book after it, then the file's
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("first page", lambda: book.page("")),
        ("a page deep in the book", lambda: book.page("584160400000")),
        ("the last page", lambda: book.page(last)),
        ("label 'par', deep", lambda: book.page("584160400000", label="par")),
        ("search 'jose' (common)", lambda: book.page("", text="jose")),
        ("search 'ñandú' (nowhere: a full scan)", lambda: book.page("", text="ñandú")),
        ("search a whole number as typed", lambda: search(book, "0416-001 2345")),
        ("search part of a number (a full scan)", lambda: search(book, "001234")),
        ("the inbox's counts (imported left out)", lambda: store.conversation_counts()),
        (
            "the inbox, resolved (imported left out)",
            lambda: store.conversations(51, 0, status="resolved"),
        ),
    ]
    for label, work in cases:
        await work()
        took = min([(await timed(work))[0] for _ in range(3)])
        print(f"  {label:<42} {took * 1000:8.1f} ms")
    if engine == "sqlite":
        page = (
            "SELECT c.phone FROM contacts AS c WHERE c.phone > ? ORDER BY c.phone LIMIT 51",
            "584160400000",
        )
        labelled = (
            "SELECT c.phone FROM contact_labels AS f CROSS JOIN contacts AS c "
            "ON c.phone = f.phone WHERE f.label = ? AND f.phone > ? ORDER BY f.phone LIMIT 51",
            "par",
            "584160400000",
        )
    else:
        page = (
            "SELECT c.phone FROM contacts AS c WHERE c.phone > $1 ORDER BY c.phone LIMIT 51",
            "584160400000",
        )
        labelled = (
            "SELECT c.phone FROM contact_labels AS f JOIN contacts AS c ON c.phone = f.phone "
            "WHERE f.phone > $1 AND c.phone > $1 AND f.label = $2 ORDER BY f.phone LIMIT 51",
            "584160400000",
            "par",
        )
    print("    plan, a page:\n" + await explain(store, engine, *page))
    print("    plan, a page of a label:\n" + await explain(store, engine, *labelled))


async def run(engine: str, args: argparse.Namespace, url: str = "") -> None:
    clock = SystemClock()
    with tempfile.TemporaryDirectory() as work:
        if engine == "sqlite":
            url = str(Path(work) / "bench.db")
        store: Any = make_store(url, clock)  # the engine's own connections, for EXPLAIN
        await store.open()
        rules = RulesHolder(ROOT / "rules.yaml", ROOT / "templates", clock)
        book = book_for(store, rules)
        try:
            print(f"\n{engine}:")
            await measure_import(book, fake_csv(args.rows), args.rows)
            if args.book:
                await fill_book(store, args.book, 0)
                if engine == "postgres":
                    await store._fetch("ANALYZE")
                print(f"  -- with {args.book + args.rows:,} contacts:")
                await measure_book(store, book, engine, args.book)
        finally:
            await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--book", type=int, default=0, help="contacts for the page's queries")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    if args.only in (None, "sqlite"):
        asyncio.run(run("sqlite", args))
    if args.only in (None, "postgres"):
        name, url = create_postgres_database()
        try:
            asyncio.run(run("postgres", args, url))
        finally:
            drop_postgres_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
