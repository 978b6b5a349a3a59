"""Serve an ASGI app with uvicorn on a free local port, in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Literal

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

STARTUP_TIMEOUT = 5.0


class _Server(uvicorn.Server):
    """uvicorn server that notices `should_exit` within 10 ms instead of 100 ms, and shuts down
    as soon as its connections and requests are done instead of waiting 0.1 s in any case
    (uvicorn's own shutdown, otherwise unchanged: over a test run, that wait was minutes)."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter += 1
            await asyncio.sleep(0.01)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle ones close now, busy ones after their response
        try:
            await asyncio.wait_for(self._finished(), self.config.timeout_graceful_shutdown)
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _finished(self) -> None:
        state = self.server_state
        while (state.connections or state.tasks) and not self.force_exit:
            await asyncio.sleep(0.002)
        for server in self.servers:
            await server.wait_closed()


class FakeServer:
    """`with FakeServer(app) as server:` serves `app` at `server.url` until the block ends.

    The server runs its own event loop in its own thread, so it works the same
    from sync and async tests. A request still running one second after exit
    is cancelled.
    """

    def __init__(self, app: ASGIApp, lifespan: Literal["on", "off"] = "off") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=1
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:  # set after the app's lifespan startup, when "on"
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(f"fake server on port {self.port} did not start")
            time.sleep(0.002)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=STARTUP_TIMEOUT)
        self._sock.close()


class SwappableApp:
    """An ASGI app that hands each request to whichever app is current: one server can serve a
    fresh fake per test (starting and stopping uvicorn costs about 0.1 s each time)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no fake is current"
        await self.app(scope, receive, send)
