"""Start-up on a big database: how long `responder serve` takes to answer /healthz, and the
plan of every statement run at start-up and by the first rounds of the workers.

    .venv/bin/python bench/startup.py [--messages 2000000] [--only sqlite|postgres]

Messages are written straight into the migrated tables by one SQL statement (nearly all
'received', 'sent' or 'delivered'; a few queued, sending, failed), then `responder serve` is
started three times and the median time to the first 200 on /healthz is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.webhook import create_postgres_database, drop_postgres_database  # noqa: E402
from responder.clock import SystemClock  # noqa: E402
from responder.store.postgres import PostgresStore  # noqa: E402
from responder.store.sqlite import SQLiteStore  # noqa: E402
from responder.text import normalize_cached  # noqa: E402

# One message in n of each kind; the rest are 'received' (in) or 'sent'/'delivered' (out).
STATUS_OF_OUT = """CASE
    WHEN n % 100000 = 0 THEN 'queued'
    WHEN n % 100000 = 2 THEN 'sending'
    WHEN n % 1000 = 4 THEN 'failed'
    WHEN n % 4 = 0 THEN 'delivered'
    ELSE 'sent' END"""

SQLITE_FILL = f"""
WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :messages)
INSERT INTO messages (id, phone, direction, text, status, origin, provider, provider_id,
    created_at, updated_at, folded, lease_until, claimed_by)
SELECT n, printf('58412%07d', n % :contacts),
    CASE WHEN n % 2 THEN 'in' ELSE 'out' END,
    'hola quiero saber el precio ' || n,
    CASE WHEN n % 2 THEN 'received' ELSE {STATUS_OF_OUT} END,
    CASE WHEN n % 2 THEN 'massiva' ELSE 'auto' END,
    'massiva', CASE WHEN n % 2 THEN NULL ELSE 'm' || n END,
    strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + n * 30, 'unixepoch'),
    strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + n * 30, 'unixepoch'),
    'hola quiero saber el precio ' || n,
    CASE WHEN n % 100000 = 2 THEN '2026-01-01T00:00:00.000000Z' END,
    CASE WHEN n % 100000 = 2 THEN 'gone:1:x' END
FROM s;
WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < :contacts - 1)
INSERT INTO contacts (phone, first_seen_at, last_message_at, last_activity_at)
SELECT printf('58412%07d', n), '2026-01-01T00:00:00.000000Z',
    strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + n, 'unixepoch'),
    strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + n, 'unixepoch')
FROM s;
"""

POSTGRES_FILL = f"""
INSERT INTO messages (id, phone, direction, text, status, origin, provider, provider_id,
    created_at, updated_at, folded, lease_until, claimed_by)
SELECT n, '58412' || lpad((n % $2)::text, 7, '0'),
    CASE WHEN n % 2 = 1 THEN 'in' ELSE 'out' END,
    'hola quiero saber el precio ' || n,
    CASE WHEN n % 2 = 1 THEN 'received' ELSE {STATUS_OF_OUT} END,
    CASE WHEN n % 2 = 1 THEN 'massiva' ELSE 'auto' END,
    'massiva', CASE WHEN n % 2 = 1 THEN NULL ELSE 'm' || n END,
    timestamptz '2026-01-01' + n * interval '30 seconds',
    timestamptz '2026-01-01' + n * interval '30 seconds',
    'hola quiero saber el precio ' || n,
    CASE WHEN n % 100000 = 2 THEN timestamptz '2026-01-01' END,
    CASE WHEN n % 100000 = 2 THEN 'gone:1:x' END
FROM generate_series(1, $1) AS n
"""

POSTGRES_CONTACTS = """
INSERT INTO contacts (phone, first_seen_at, last_message_at, last_activity_at)
SELECT '58412' || lpad(n::text, 7, '0'), timestamptz '2026-01-01',
    timestamptz '2026-01-01' + n * interval '1 second',
    timestamptz '2026-01-01' + n * interval '1 second'
FROM generate_series(0, $1 - 1) AS n
"""


def build_sqlite(path: Path, messages: int, contacts: int) -> None:
    async def migrate() -> None:
        store = SQLiteStore(path, SystemClock())
        await store.open()
        await store.close()

    asyncio.run(migrate())
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("BEGIN")
        for statement in SQLITE_FILL.split(";\n"):
            if statement.strip():
                db.execute(statement, {"messages": messages, "contacts": contacts})
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def build_postgres(url: str, messages: int, contacts: int) -> None:
    store = PostgresStore(url, SystemClock())
    await store.open()
    try:
        async with store.pool.acquire() as conn:
            await conn.execute(POSTGRES_FILL, messages, contacts)
            await conn.execute(POSTGRES_CONTACTS, contacts)
            await conn.execute("SELECT setval('messages_id_seq', $1)", messages)
            await conn.execute("VACUUM ANALYZE")
    finally:
        await store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def time_start(database: str, work: Path) -> float:
    """Seconds from launching `responder serve` to the first 200 on /healthz."""
    port = free_port()
    env = {
        **os.environ,
        "RESPONDER_DATABASE": database,
        "RESPONDER_SPOOL": str(work / "spool"),
        "PYTHONPATH": str(ROOT),
    }
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "responder", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError):
                if server.poll() is not None:
                    raise RuntimeError("responder serve exited") from None
                time.sleep(0.01)
    finally:
        server.terminate()
        server.wait()


async def sqlite_statements(path: Path) -> list[str]:
    """What the store runs to open, then what one round of each periodic job runs."""
    seen: list[str] = []
    store = SQLiteStore(path, SystemClock())
    store.trace = seen.append
    await store.open()
    try:
        await run_jobs(store)
    finally:
        await store.close()
    return distinct(seen)


async def postgres_statements(url: str) -> list[tuple[str, tuple[object, ...]]]:
    seen: list[tuple[str, tuple[object, ...]]] = []
    store = PostgresStore(url, SystemClock())
    store.trace = lambda query, args: seen.append((query, args))
    await store.open()
    try:
        await run_jobs(store)
    finally:
        await store.close()
    unique = {query: (query, args) for query, args in seen}
    return list(unique.values())


async def run_jobs(store: SQLiteStore | PostgresStore) -> None:
    """The statements of start-up and of the workers' rounds, called as the service does."""
    await store.meta_value("webhook_token", lambda: "x")
    await store.release_expired()
    await store.claim_outbox(10)
    await store.release_own()
    await store.claim_polls(["massiva"], 10)
    now = SystemClock()()
    await store.purge_sessions(now, now)
    await store.contacts_in_flows()
    await store.try_lease("flow-timeouts", 60)
    await store.balances()
    await store.outbox_backlog()
    await store.ping()


def distinct(statements: list[str]) -> list[str]:
    return list(dict.fromkeys(s for s in statements if s.split()[0].upper() != "PRAGMA"))


def sqlite_plans(path: Path, statements: list[str]) -> list[tuple[str, list[str]]]:
    db = sqlite3.connect(path)
    db.create_function("fold", 1, normalize_cached, deterministic=True)
    plans = []
    for sql in statements:
        if sql.split()[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
            continue
        rows = db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
        plans.append((sql, [row[3] for row in rows]))
    db.close()
    return plans


def show(engine: str, size: str, took: list[float], plans: list[tuple[str, list[str]]]) -> None:
    print(f"\n{engine}: {size}; start to /healthz 200: median {statistics.median(took):.2f} s")
    print("  (" + ", ".join(f"{t:.2f}" for t in took) + ")")
    for sql, plan in plans:
        print("\n  " + " ".join(sql.split())[:160])
        for line in plan:
            print(f"    {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--keep", type=Path, help="build (or reuse) the SQLite file here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if args.only in (None, "sqlite"):
            path = args.keep or work / "big.db"
            if not path.exists():
                build_sqlite(path, args.messages, args.contacts)
            took = [time_start(str(path), work) for _ in range(3)]
            plans = sqlite_plans(path, asyncio.run(sqlite_statements(path)))
            size = f"{args.messages:,} messages, {path.stat().st_size / 2**20:,.0f} MiB"
            show("sqlite", size, took, plans)
        if args.only in (None, "postgres"):
            name, url = create_postgres_database()
            try:
                asyncio.run(build_postgres(url, args.messages, args.contacts))
                took = [time_start(url, work) for _ in range(3)]
                show("postgres", f"{args.messages:,} messages", took, [])
                asyncio.run(show_postgres_plans(url))
            finally:
                drop_postgres_database(name)
    return 0


async def show_postgres_plans(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for query, args in await postgres_statements(url):
            print("\n  " + " ".join(query.split())[:160])
            try:
                for row in await conn.fetch(f"EXPLAIN {query}", *args):
                    print(f"    {row[0]}")
            except asyncpg.PostgresError as err:
                print(f"    (not explained: {err})")
    finally:
        await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
