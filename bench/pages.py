"""Every page on a big database: builds one (or reuses a copy of one), starts `responder serve`
on it and times each admin page, partial and API call (median of --rounds, after one warm-up).

    .venv/bin/python bench/pages.py --build /tmp/pages.db --messages 2000000 --contacts 500000
    .venv/bin/python bench/pages.py --database /tmp/pages.db
    .venv/bin/python bench/pages.py --build-postgres --messages 2000000 --contacts 500000

Messages are written by SQL straight into the migrated tables (the count triggers run as they
would for the writer): spread over the last 120 days up to now, two providers, a few rules,
one conversation with 1 % of all messages (the busiest), 1 in 500 contacts needing attention.
Never point --database at a shared file: opening it migrates it (copy it first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.startup import free_port  # noqa: E402
from bench.webhook import create_postgres_database, drop_postgres_database  # noqa: E402
from responder.clock import SystemClock  # noqa: E402
from responder.store.postgres import PostgresStore  # noqa: E402
from responder.store.sqlite import SQLiteStore  # noqa: E402

TOKEN = "bench-pages-admin-token-0123456789"
BUSIEST = "584120000000"
SPAN = 120 * 86400  # seconds the messages are spread over, ending now

SQLITE_FILL = """
WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :messages)
INSERT INTO messages (id, phone, direction, text, status, origin, rule, provider, provider_id,
    created_at, updated_at, folded)
SELECT n,
    CASE WHEN n % 100 = 0 THEN :busiest ELSE printf('58412%07d', n % :contacts) END,
    CASE WHEN n % 2 THEN 'in' ELSE 'out' END,
    'hola quiero saber el precio ' || n,
    CASE WHEN n % 2 THEN 'received' WHEN n % 1000 = 4 THEN 'failed'
        WHEN n % 4 = 0 THEN 'delivered' ELSE 'sent' END,
    CASE WHEN n % 2 THEN 'massiva' ELSE 'auto' END,
    CASE n % 10 WHEN 1 THEN 'precio' WHEN 3 THEN 'horario' WHEN 5 THEN 'saludo'
        WHEN 7 THEN 'ubicacion' WHEN 2 THEN 'precio' WHEN 4 THEN 'horario' END,
    CASE WHEN n % 3 = 0 THEN 'massms' ELSE 'massiva' END,
    CASE WHEN n % 2 THEN NULL ELSE 'm' || n END,
    strftime('%Y-%m-%dT%H:%M:%fZ', :start + n * :step, 'unixepoch'),
    strftime('%Y-%m-%dT%H:%M:%fZ', :start + n * :step, 'unixepoch'),
    'hola quiero saber el precio ' || n
FROM s;
WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < :contacts - 1)
INSERT OR IGNORE INTO contacts (phone, first_seen_at, last_message_at, last_activity_at,
    last_text, needs_attention, mode, unread)
SELECT printf('58412%07d', n), strftime('%Y-%m-%dT%H:%M:%fZ', :start, 'unixepoch'),
    strftime('%Y-%m-%dT%H:%M:%fZ', :start + :span * n / :contacts, 'unixepoch'),
    strftime('%Y-%m-%dT%H:%M:%fZ', :start + :span * n / :contacts, 'unixepoch'),
    'hola', n % 500 = 7, CASE WHEN n % 1000 = 3 THEN 'human' ELSE 'bot' END, n % 3
FROM s;
UPDATE contacts SET last_message_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
    needs_attention = 1, unread = 5 WHERE phone = :busiest;
"""

POSTGRES_FILL = """
INSERT INTO messages (id, phone, direction, text, status, origin, rule, provider, provider_id,
    created_at, updated_at, folded)
SELECT n,
    CASE WHEN n % 100 = 0 THEN $3 ELSE '58412' || lpad((n % $2)::text, 7, '0') END,
    CASE WHEN n % 2 = 1 THEN 'in' ELSE 'out' END,
    'hola quiero saber el precio ' || n,
    CASE WHEN n % 2 = 1 THEN 'received' WHEN n % 1000 = 4 THEN 'failed'
        WHEN n % 4 = 0 THEN 'delivered' ELSE 'sent' END,
    CASE WHEN n % 2 = 1 THEN 'massiva' ELSE 'auto' END,
    CASE n % 10 WHEN 1 THEN 'precio' WHEN 3 THEN 'horario' WHEN 5 THEN 'saludo'
        WHEN 7 THEN 'ubicacion' WHEN 2 THEN 'precio' WHEN 4 THEN 'horario' END,
    CASE WHEN n % 3 = 0 THEN 'massms' ELSE 'massiva' END,
    CASE WHEN n % 2 = 1 THEN NULL ELSE 'm' || n END,
    now() - $4 * interval '1 second' + n * ($4::float8 / $1) * interval '1 second',
    now() - $4 * interval '1 second' + n * ($4::float8 / $1) * interval '1 second',
    'hola quiero saber el precio ' || n
FROM generate_series(1, $1) AS n
"""

POSTGRES_CONTACTS = """
INSERT INTO contacts (phone, first_seen_at, last_message_at, last_activity_at, last_text,
    needs_attention, mode, unread)
SELECT '58412' || lpad(n::text, 7, '0'), now() - $2 * interval '1 second',
    now() - $2 * interval '1 second' + ($2::float8 * n / $1) * interval '1 second',
    now() - $2 * interval '1 second' + ($2::float8 * n / $1) * interval '1 second',
    'hola', n % 500 = 7, CASE WHEN n % 1000 = 3 THEN 'human' ELSE 'bot' END, n % 3
FROM generate_series(0, $1 - 1) AS n
ON CONFLICT DO NOTHING
"""


def build_sqlite(path: Path, messages: int, contacts: int) -> None:
    async def migrate() -> None:
        store = SQLiteStore(path, SystemClock())
        await store.open()
        await store.close()

    asyncio.run(migrate())
    params = {
        "messages": messages,
        "contacts": contacts,
        "busiest": BUSIEST,
        "start": time.time() - SPAN,
        "step": SPAN / messages,
        "span": SPAN,
    }
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("BEGIN")
        for statement in SQLITE_FILL.split(";\n"):
            if statement.strip():
                db.execute(statement, {k: v for k, v in params.items() if f":{k}" in statement})
        db.execute("COMMIT")
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# After a fill with the triggers off (millions of rows at once), the counts as migration 0010
# fills them from existing rows.
POSTGRES_RECOUNT = """
INSERT INTO message_counts (hour, direction, provider, status, rule, n)
SELECT message_counts_hour(created_at), direction, COALESCE(provider, ''), status,
    COALESCE(rule, ''), COUNT(*)
FROM messages GROUP BY 1, 2, 3, 4, 5;
INSERT INTO message_days (day, direction, provider, status, rule, n)
SELECT substr(hour, 1, 10), direction, provider, status, rule, sum(n)
FROM message_counts GROUP BY 1, 2, 3, 4, 5;
INSERT INTO message_hours (hour, direction, n)
SELECT hour, direction, sum(n) FROM message_counts GROUP BY 1, 2;
UPDATE conversation_counts SET total = c.total, human = c.human,
    needs_attention = c.needs_attention, opted_out = c.opted_out, unread = c.unread,
    unassigned = c.unassigned, resolved = c.resolved
FROM (SELECT count(*) AS total, count(*) FILTER (WHERE mode = 'human') AS human,
    count(*) FILTER (WHERE needs_attention) AS needs_attention,
    count(*) FILTER (WHERE opted_out) AS opted_out, count(*) FILTER (WHERE unread > 0) AS unread,
    count(*) FILTER (WHERE assigned_to IS NULL) AS unassigned,
    count(*) FILTER (WHERE status = 'resolved') AS resolved FROM contacts) AS c
"""


async def build_postgres(url: str, messages: int, contacts: int) -> None:
    import asyncpg

    store = PostgresStore(url, SystemClock())
    await store.open()  # the migrations
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ALTER TABLE messages DISABLE TRIGGER USER")
        await conn.execute("ALTER TABLE contacts DISABLE TRIGGER USER")
        await conn.execute(POSTGRES_FILL, messages, contacts, BUSIEST, SPAN)
        await conn.execute(POSTGRES_CONTACTS, contacts, SPAN)
        await conn.execute(
            "UPDATE contacts SET last_message_at = now(), needs_attention = true, unread = 5 "
            "WHERE phone = $1",
            BUSIEST,
        )
        await conn.execute("ALTER TABLE messages ENABLE TRIGGER USER")
        await conn.execute("ALTER TABLE contacts ENABLE TRIGGER USER")
        await conn.execute(POSTGRES_RECOUNT)
        await conn.execute("SELECT setval('messages_id_seq', $1)", messages)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def sign_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    form = client.get("/admin/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    data = {"csrf": csrf.group(1), "name": "admin", "password": TOKEN}
    assert client.post("/admin/login", data=data).status_code == 303
    return client


def timed(client: httpx.Client, path: str, rounds: int, **options: object) -> tuple[float, int]:
    client.get(path, **options)  # type: ignore[arg-type]
    took = []
    status = 0
    for _ in range(rounds):
        started = time.perf_counter()
        status = client.get(path, **options).status_code  # type: ignore[arg-type]
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took), status


def measure(database: str, rounds: int, busiest: str = BUSIEST) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "RESPONDER_DATABASE": database,
            "RESPONDER_ADMIN_TOKEN": TOKEN,
            "RESPONDER_SPOOL": str(Path(folder) / "spool"),
            "PYTHONPATH": str(ROOT),
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "responder", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            staff = sign_in(url)
            api = httpx.Client(
                base_url=url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            first = api.get("/api/conversations", params={"limit": 100}).json()
            cursor = first.get("next")
            deep = None
            for _ in range(50):  # 5,000 conversations down, by cursor
                if not cursor:
                    break
                deep = cursor
                cursor = api.get("/api/conversations", params={"cursor": cursor}).json()["next"]
            newest = api.get(f"/api/conversations/{busiest}/messages", params={"limit": 200})
            before = newest.json()["messages"][0]["id"]
            etag = staff.get("/admin/partials/inbox").headers.get("ETag", "")
            rows = [
                ("/healthz", staff, "/healthz", {}),
                ("/admin (inbox)", staff, "/admin", {}),
                ("/admin?f=attention", staff, "/admin?f=attention", {}),
                ("/admin/partials/inbox (inbox poll, changed)", staff, "/admin/partials/inbox", {}),
                (
                    "/admin/partials/inbox (inbox poll, unchanged: 304)",
                    staff,
                    "/admin/partials/inbox",
                    {"headers": {"If-None-Match": etag}},
                ),
                ("/admin/partials/waiting (every page)", staff, "/admin/partials/waiting", {}),
                (
                    "/admin/partials/conversations/… (poll)",
                    staff,
                    f"/admin/partials/conversations/{busiest}",
                    {},
                ),
                ("/admin/dashboard (14 days)", staff, "/admin/dashboard", {}),
                ("/admin/dashboard?period=today", staff, "/admin/dashboard?period=today", {}),
                ("/admin/dashboard?period=90", staff, "/admin/dashboard?period=90", {}),
                (f"/admin/conversations/{busiest}", staff, f"/admin/conversations/{busiest}", {}),
                ("/admin/audit", staff, "/admin/audit", {}),
                ("GET /api/conversations", api, "/api/conversations", {}),
                (
                    "GET /api/conversations?cursor (5,000 down)",
                    api,
                    "/api/conversations",
                    {"params": {"cursor": deep}},
                ),
                (
                    "GET /api/conversations?offset=5000",
                    api,
                    "/api/conversations",
                    {"params": {"offset": 5000}},
                ),
                (
                    "GET /api/conversations?needs_attention=true",
                    api,
                    "/api/conversations",
                    {"params": {"needs_attention": "true"}},
                ),
                (
                    "GET .../messages (busiest, newest 200)",
                    api,
                    f"/api/conversations/{busiest}/messages",
                    {"params": {"limit": 200}},
                ),
                (
                    "GET .../messages?before= (older 200)",
                    api,
                    f"/api/conversations/{busiest}/messages",
                    {"params": {"limit": 200, "before": before}},
                ),
                ("GET /api/audit", api, "/api/audit", {}),
            ]
            print(f"{'what':48} {'median ms':>10}  status")
            for label, client, path, options in rows:
                took, status = timed(client, path, rounds, **options)
                print(f"{label:48} {took:10.1f}  {status}")
        finally:
            server.terminate()
            server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="a SQLite file or PostgreSQL URL to measure")
    parser.add_argument("--build", type=Path, help="build a SQLite file here, then measure it")
    parser.add_argument("--build-postgres", action="store_true", help="build, measure, drop")
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--contacts", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database")
    parser.add_argument("--busiest", default=BUSIEST, help="the conversation to open")
    args = parser.parse_args()
    if args.build is not None:
        started = time.perf_counter()
        build_sqlite(args.build, args.messages, args.contacts)
        print(f"built {args.build} in {time.perf_counter() - started:.0f} s")
        measure(str(args.build), args.rounds)
    elif args.build_postgres:
        name, url = create_postgres_database()
        try:
            started = time.perf_counter()
            asyncio.run(build_postgres(url, args.messages, args.contacts))
            print(f"built PostgreSQL database in {time.perf_counter() - started:.0f} s")
            measure(url, args.rounds)
        finally:
            if args.keep:
                print(f"kept: {url} (drop it with DROP DATABASE {name})")
            else:
                drop_postgres_database(name)
    elif args.database:
        measure(args.database, args.rounds, args.busiest)
    else:
        parser.error("give --database, --build or --build-postgres")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
