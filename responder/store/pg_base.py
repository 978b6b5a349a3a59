"""The PostgreSQL backend's footing: the pool, transactions, what counts as "the database is
unreachable" (StoreUnavailable), health, and NOTIFY. The parts of PostgresStore build on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from responder.clock import Clock
from responder.store import health, pg_schema
from responder.store.common import instance_id
from responder.store.models import OutboxItem, StoreUnavailable

T = TypeVar("T")
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: an unreachable server fails fast
COMMAND_TIMEOUT = 30.0  # seconds any statement may take before the store gives up on it
PING_TIMEOUT = 2.0  # /healthz never hangs longer than this on the database
OUTBOX_CHANNEL = "responder_outbox"
RULES_CHANNEL = "responder_rules"


class PgBase:
    """Connections and transactions on PostgreSQL."""

    def __init__(
        self,
        url: str,
        clock: Clock,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self.url = url
        self.clock = clock
        self.instance = instance_id()
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: Any = None
        # /healthz's own connection, outside the pool: a health check never waits behind
        # reports or a burst of webhooks holding every pooled connection.
        self._health: Any = None
        self._health_lock = asyncio.Lock()
        self.health = health.WriteHealth()  # how the last write went, for /healthz
        # Called after a commit that queued outbound messages, here or (heard through NOTIFY)
        # at another instance; the outbox worker wakes on it.
        self.on_outbox: Callable[[], None] = lambda: None
        # When set, auto-replies are committed already claimed ('sending', leased to this
        # instance) and handed over here after the commit.
        self.hand_over: Callable[[list[OutboxItem]], None] | None = None
        # Called when another instance published a rules version.
        self.on_rules_changed: Callable[[], None] = lambda: None
        # Given every statement the pool's connections run, with its arguments (bench/startup.py).
        self.trace: Callable[[str, tuple[Any, ...]], None] | None = None

    def _connection_options(self) -> dict[str, Any]:
        return {
            "timeout": self.connect_timeout,
            "command_timeout": self.command_timeout,
            "server_settings": {"application_name": "responder", "timezone": "UTC"},
        }

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    def _unavailable(self, err: BaseException) -> StoreUnavailable:
        shown = pg_schema.scrubbed(pg_schema.described(err), self.url)
        failure = StoreUnavailable(f"the database cannot be reached: {shown}")
        failure.__cause__ = err
        return failure

    async def _run(
        self, work: Callable[[Any], Awaitable[T]], *, write: bool, begin: str = "BEGIN"
    ) -> T:
        """Runs `work` on a pooled connection, in a transaction when `write`, opened by
        `begin` (statements without parameters, sent together in one round trip). A
        connection that turns out dead is replaced once (for a write, only before it began);
        any error saying the server cannot serve becomes StoreUnavailable."""
        for attempt in (1, 2):
            started = False
            try:
                async with self.pool.acquire(timeout=self.connect_timeout) as conn:
                    if not write:
                        return await work(conn)
                    try:
                        await conn.execute(begin)  # no arguments: the simple query protocol
                        started = True
                        result = await work(conn)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            await conn.execute("ROLLBACK")
                        raise
                    await conn.execute("COMMIT")
            except Exception as err:
                if not pg_schema.unavailable(err):
                    raise
                # A connection that died in the pool: a fresh one may work. Only before a write
                # began (or for a read): a write may have reached the server.
                retry = not started or not write
                if attempt == 1 and retry and not isinstance(err, TimeoutError):
                    continue
                failure = self._unavailable(err)
                if write:
                    self.health.failed(failure)
                raise failure from err
            if write:
                self.health.succeeded()
            return result
        raise AssertionError("unreachable")

    async def _transaction(self, work: Callable[[Any], Awaitable[T]], begin: str = "BEGIN") -> T:
        return await self._run(work, write=True, begin=begin)

    async def _read(self, work: Callable[[Any], Awaitable[T]]) -> T:
        return await self._run(work, write=False)

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self._read(lambda conn: conn.fetch(sql, *args))
        return rows

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._read(lambda conn: conn.fetchrow(sql, *args))

    async def ping(self) -> bool:
        """The server answers, within PING_TIMEOUT: never hangs. On /healthz's own
        connection, so it never waits for a pooled one."""
        if self._pool is None:
            return False
        try:
            rows = await asyncio.wait_for(self._health_fetch("SELECT 1"), PING_TIMEOUT)
        except Exception:
            return False
        return [tuple(row) for row in rows] == [(1,)]

    async def _health_fetch(self, sql: str, *args: Any) -> list[Any]:
        """A small read on the health connection (opened on first use, again after a failure)."""
        async with self._health_lock:
            if self._health is None or self._health.is_closed():
                self._health = await asyncpg.connect(self.url, **self._connection_options())
            try:
                rows: list[Any] = await self._health.fetch(sql, *args)
            except BaseException:
                conn, self._health = self._health, None
                conn.terminate()
                raise
            return rows

    async def _close_health(self) -> None:
        async with self._health_lock:
            conn, self._health = self._health, None
        if conn is not None:
            conn.terminate()

    async def write_problem(self) -> str | None:
        """Why the database cannot take writes now, or None: a last write that failed with
        nothing written since (a small probe write retries). PostgreSQL keeps its own room."""
        if self.health.probe_due(self.clock.monotonic()):
            at = self.clock()
            with contextlib.suppress(StoreUnavailable):
                await self._transaction(
                    lambda conn: conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('write_probe', $1) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        at.isoformat(),
                    )
                )
        return self.health.failure

    async def _notify(self, conn: Any, channel: str) -> None:
        """Delivered to the other instances when the transaction commits (not before)."""
        await conn.execute("SELECT pg_notify($1, $2)", channel, self.instance)
