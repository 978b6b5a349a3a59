"""PostgreSQL's side of start-up: which errors mean "the database
is unreachable", and the numbered migrations in `pg_migrations/`, applied under an advisory lock
so that instances starting together never race."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from responder.clock import Clock
from responder.store.search import fold_fields_json
from responder.text import normalize

log = logging.getLogger("responder.store")

# pg_advisory_lock keys: the migrations, and the rules versions (publishing is serialised).
MIGRATION_LOCK = 0x7265_7370_6D69_6772  # "respmigr"
RULES_LOCK = 0x7265_7370_7275_6C65  # "resprule"
MIGRATION_WAIT = 300.0  # seconds another instance may spend migrating before we give up
# A migration's script may build an index over every message (0011: minutes at millions of
# rows); the store's usual 30 s per statement would stop it half way, at every start.
MIGRATION_STATEMENT = 3600.0

# SQLSTATE classes that say the server cannot serve us now (connection lost or refused, too
# many connections or no room, shut down or restarting, I/O failure, authorisation or database
# gone), as opposed to a statement that is wrong.
UNAVAILABLE_CLASSES = frozenset({"08", "28", "3D", "53", "57", "58", "XX"})
READ_ONLY = "25006"  # a standby after a failover: reads work, writes do not


def scrubbed(text: str, url: str) -> str:
    """`text` without the URL's password in it (a driver's message may quote the URL)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, "***") if password else text


def described(err: BaseException) -> str:
    """An error as one line: its type, and its words when it has any (a timeout has none)."""
    words = " ".join(str(err).split())
    return f"{type(err).__name__}: {words}" if words else type(err).__name__


def unavailable(err: BaseException) -> bool:
    """The error says the database cannot be reached or cannot serve now, by its type and
    SQLSTATE class: a lost connection, a refused one, a timeout, a server shutting down."""
    if isinstance(err, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(err, asyncpg.PostgresError):
        state = str(getattr(err, "sqlstate", "") or "")
        return state[:2] in UNAVAILABLE_CLASSES or state == READ_ONLY
    return False


async def _fold_messages(conn: Any, batch: int = 5000) -> None:
    """Fills `messages.folded` (0005) for the rows already there, in Python: the same folding
    as new messages get, and as SQLite's migration gets through its registered function."""
    after = 0
    while rows := await conn.fetch(
        "SELECT id, text FROM messages WHERE id > $1 ORDER BY id LIMIT $2", after, batch
    ):
        await conn.execute(
            "UPDATE messages SET folded = f.folded FROM unnest($1::bigint[], $2::text[]) "
            "AS f(id, folded) WHERE messages.id = f.id",
            [row[0] for row in rows],
            [normalize(row[1]) for row in rows],
        )
        after = rows[-1][0]


async def _fold_fields(conn: Any, batch: int = 5000) -> None:
    """Fills `contacts.folded` (0011) for the contacts that have fields, as the store folds
    them when it writes them (store/search.py fold_fields)."""
    after = ""
    while rows := await conn.fetch(
        "SELECT phone, fields::text FROM contacts "
        """WHERE phone COLLATE "C" > $1 AND fields <> '{}'::jsonb """
        'ORDER BY phone COLLATE "C" LIMIT $2',
        after,
        batch,
    ):
        await conn.execute(
            "UPDATE contacts SET folded = f.folded FROM unnest($1::text[], $2::text[]) "
            "AS f(phone, folded) WHERE contacts.phone = f.phone",
            [row[0] for row in rows],
            [fold_fields_json(row[1]) for row in rows],
        )
        after = rows[-1][0]


# Python steps that complete a migration, in its transaction.
FILL_AFTER: dict[int, Callable[[Any], Awaitable[None]]] = {5: _fold_messages, 11: _fold_fields}


async def migrate(conn: Any, clock: Clock) -> None:
    """Applies the numbered `pg_migrations/NNNN_*.sql` files not yet applied, each in its own
    transaction, while holding an advisory lock: a second instance starting at the same time
    waits, then finds them applied. The versions applied are kept in `schema_migrations`."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK, timeout=MIGRATION_WAIT)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)"
        )
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        folder = resources.files("responder.store") / "pg_migrations"
        scripts = sorted(
            (p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name
        )
        for script in scripts:
            number = int(script.name.split("_", 1)[0])
            if number in done:
                continue
            async with conn.transaction():
                await conn.execute(script.read_text(encoding="utf-8"), timeout=MIGRATION_STATEMENT)
                if number in FILL_AFTER:
                    await FILL_AFTER[number](conn)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    number,
                    script.name,
                    clock(),
                )
            log.info("applied migration %s", script.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def schema_version(conn: Any) -> int:
    value = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    return int(value)
