"""A real PostgreSQL server for the tests (DESIGN §9): a throwaway database for the run, emptied
between tests. Never skipped: without a server the tests that need one fail saying how to start
one. The server is RESPONDER_TEST_POSTGRES (default: the machine's, which `make postgres`
starts)."""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from responder.clock import SystemClock
from responder.store import shown_url
from responder.store.pg_schema import described, scrubbed
from responder.store.postgres import PostgresStore

T = TypeVar("T")
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
HOW_TO_START = (
    "the PostgreSQL tests cannot use {url} ({error}). They need a server where that user may "
    "create databases: run `make postgres` (it starts this machine's cluster, as "
    "`pg_ctlcluster --skip-systemctl-redirect 15 main start` does, or installs Debian's "
    "postgresql as root), or set RESPONDER_TEST_POSTGRES=postgresql://user:password@host:port/db."
)
# Every table but schema_migrations (what a test may leave behind), referring ones first.
TABLES = (
    "broadcast_recipients",
    "notes",
    "typing",
    "attempts",
    "early_reports",
    "messages",
    "contacts",
    "contact_numbers",  # emptied with contacts (pg 0016's trigger): listed all the same
    "rejected_webhooks",
    "meta",
    "sessions",
    "leases",
    "send_budgets",
    "sign_in_failures",
    "balances",
    "rule_versions",
    "users",
    "api_tokens",
    "audit_events",
    "saved_replies",
    "kept_opt_outs",
    "contact_labels",
    "broadcasts",
    # Counts kept by triggers (pg 0010): after the tables whose deletes change them.
    "message_counts",
    "message_days",
    "message_hours",
    "message_count_changes",
    "conversation_counts",
    "conversation_count_changes",
)


def server_url() -> str:
    return os.environ.get("RESPONDER_TEST_POSTGRES") or DEFAULT_SERVER


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Runs a coroutine to completion on its own loop in a thread: fixtures that are not
    async may be set up while a test's event loop exists."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(_awaited(make)))
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    if failure:
        raise failure[0]
    if not result:
        raise TimeoutError("a PostgreSQL fixture took more than 120 s")
    return result[0]


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


async def _admin(url: str) -> Any:
    return await asyncpg.connect(url, timeout=5)


async def _create(server: str, name: str) -> str:
    conn = await _admin(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        # A throwaway database: a commit need not wait for the disk.
        await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await conn.close()
    url = with_database(server, name)
    store = PostgresStore(url, SystemClock())
    await store.open()  # applies the migrations once for the whole run
    await store.close()
    return url


async def _drop(server: str, name: str) -> None:
    conn = await _admin(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def empty(url: str) -> None:
    """Empties every table and restarts the ids: each test starts from a new database.
    (DELETE, not TRUNCATE: on tables this small it is ten times faster.)"""
    conn = await _admin(url)
    try:
        sequences = await conn.fetch(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
        )
        script = [
            "SET lock_timeout = '10s'",
            *(f"DELETE FROM {table}" for table in TABLES),
            *(f"ALTER SEQUENCE {row[0]} RESTART" for row in sequences),
            # The one row of the inbox's counts, as the migration leaves it on no contacts.
            "INSERT INTO conversation_counts VALUES (1, 0, 0, 0, 0, 0, 0, 0)",
        ]
        async with conn.transaction():
            await conn.execute(";\n".join(script))
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a database created for this run (and dropped after it), migrated."""
    server = server_url()
    name = f"responder_test_{os.getpid()}_{secrets.token_hex(3)}"
    problem = None
    try:
        url = run_async(lambda: _create(server, name))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        problem = HOW_TO_START.format(url=shown_url(server), error=described(err))
    if problem is not None:
        pytest.fail(scrubbed(problem, server), pytrace=False)
    yield url
    run_async(lambda: _drop(server, name))


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The run's database, emptied for this test."""
    run_async(lambda: empty(postgres_database))
    return postgres_database
