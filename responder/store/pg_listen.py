"""LISTEN on a dedicated PostgreSQL connection, re-established by itself when it is lost.
Notifications are best effort (the workers still poll): after a reconnection every handler is
called once, for what may have been said meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from responder.store.pg_schema import unavailable

log = logging.getLogger("responder.store")

KEEPALIVE = 10.0  # seconds between checks that the connection still answers
RETRY_FIRST, RETRY_CAP = 0.2, 5.0  # seconds between reconnection attempts, doubling


class Listener:
    """Listens on `handlers`' channels; each handler gets the notification's payload."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        handlers: dict[str, Callable[[str], None]],
        *,
        timeout: float,
    ) -> None:
        self._connect = connect
        self._handlers = handlers
        self._timeout = timeout
        self.connected = asyncio.Event()  # set while listening (tests wait on it)
        self.connections = 0  # how many times a connection was made (tests read it)

    def _notified(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        handler = self._handlers.get(channel)
        if handler is not None:
            try:
                handler(payload)
            except Exception:
                log.exception("handling a notification on %s failed", channel)

    async def run(self) -> None:
        delay = RETRY_FIRST
        while True:
            conn = None
            try:
                conn = await self._connect()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in self._handlers:
                    await conn.add_listener(channel, self._notified)
                self.connections += 1
                self.connected.set()
                delay = RETRY_FIRST
                if self.connections > 1:
                    log.warning("listening for notifications again")
                    for channel in self._handlers:
                        self._notified(conn, 0, channel, "")
                await self._watch(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if not unavailable(err):
                    log.exception("listening for notifications failed")
            finally:
                self.connected.clear()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay)
            delay = min(RETRY_CAP, delay * 2)

    async def _watch(self, conn: Any, lost: asyncio.Event) -> None:
        """Returns when the connection is lost: closed under us, or silent (a cut network)."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), KEEPALIVE)
                return
            await conn.execute("SELECT 1", timeout=self._timeout)
