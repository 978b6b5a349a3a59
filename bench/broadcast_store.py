"""What a broadcast costs the store, both engines: previewing and creating one to N contacts
(the recipients written at once), each look of the feeder while it queues them (the outbox's
claim and the send outcomes stand in for the gateway), and reading its counts and a page of
recipients once it is sent.

    .venv/bin/python bench/broadcast_store.py [--contacts 10000] [--engine sqlite|postgres]

Contacts are written straight into the tables; everything else goes through the service.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from bench.webhook import create_postgres_database, drop_postgres_database  # noqa: E402
from responder.broadcasts import Segment  # noqa: E402
from responder.clock import SystemClock  # noqa: E402
from responder.config import load_settings  # noqa: E402
from responder.service import Service  # noqa: E402
from responder.store.models import SendOutcome  # noqa: E402

RULES = "settings:\n  timezone: America/Caracas\n  country: VE\nrules: []\n"
NOW = "2026-12-07T10:00:00.000000Z"


def phones(contacts: int) -> list[str]:
    return [f"58412{5000000 + i:07d}" for i in range(contacts)]


def fill_sqlite(path: str, contacts: int) -> None:
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO contacts (phone, fields, first_seen_at, last_message_at) "
            'VALUES (?, \'{"nombre": "Ana"}\', ?, ?)',
            [(p, NOW, NOW) for p in phones(contacts)],
        )
        db.executemany(
            "INSERT INTO contact_labels (phone, label) VALUES (?, 'promo')",
            [(p,) for p in phones(contacts)],
        )


async def fill_postgres(url: str, contacts: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO contacts (phone, fields, first_seen_at, last_message_at) "
            'SELECT p, \'{"nombre": "Ana"}\', now(), now() FROM unnest($1::text[]) AS p',
            phones(contacts),
        )
        await conn.execute(
            "INSERT INTO contact_labels (phone, label) SELECT p, 'promo' "
            "FROM unnest($1::text[]) AS p",
            phones(contacts),
        )
    finally:
        await conn.close()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def measure(database: str, folder: Path, contacts: int, engine: str) -> None:
    (folder / "rules.yaml").write_text(RULES, encoding="utf-8")
    (folder / "templates").mkdir(exist_ok=True)
    settings = load_settings(
        {
            "RESPONDER_DATABASE": database,
            "RESPONDER_RULES": str(folder / "rules.yaml"),
            "RESPONDER_TEMPLATES": str(folder / "templates"),
        },
        env_file="/nonexistent",
    )
    service = Service(settings, clock=SystemClock())
    await service.open()  # migrates
    try:
        if engine == "sqlite":
            fill_sqlite(database, contacts)
        else:
            await fill_postgres(database, contacts)
        text, segment = "Hola {{ contact.nombre }}", Segment(labels=("promo",))
        started = time.perf_counter()
        preview = await service.preview_broadcast(text, segment)
        print(f"preview of {preview.recipients} recipients: {ms(time.perf_counter() - started)}")
        started = time.perf_counter()
        created = await service.create_broadcast(text, segment)
        print(f"create (recipients written): {ms(time.perf_counter() - started)}")
        looks = []
        while True:
            started = time.perf_counter()
            fed = await service.feeder.feed_once()
            looks.append(time.perf_counter() - started)
            items = await service.store.claim_outbox(1000)
            if items:
                await service.store.record_outcomes(
                    [SendOutcome(i.id, i.provider, "sent", f"x{i.id}") for i in items]
                )
            if not fed and not items:
                break
        print(
            f"feeder looks: {len(looks)}, median {ms(statistics.median(looks))}, "
            f"max {ms(max(looks))}"
        )
        reads = []
        for _ in range(5):
            started = time.perf_counter()
            found = await service.get_broadcast(created.id)
            reads.append(time.perf_counter() - started)
        print(f"counts {found.counts}: median {ms(statistics.median(reads))}")
        started = time.perf_counter()
        await service.broadcast_recipients(created.id, status="sent", limit=100)
        print(f"a page of 100 sent recipients: {ms(time.perf_counter() - started)}")
    finally:
        await service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10000)
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.engine == "sqlite":
            asyncio.run(measure(str(folder / "bench.db"), folder, args.contacts, "sqlite"))
            return
        name, url = create_postgres_database()
        try:
            asyncio.run(measure(url, folder, args.contacts, "postgres"))
        finally:
            drop_postgres_database(name)


if __name__ == "__main__":
    main()
