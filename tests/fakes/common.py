"""Pieces shared by the fake providers: request recording and fault injection."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests import loopback

FAULT_KINDS = ("http500", "html", "empty", "garbage", "garbage-after-sending", "hang")

ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>Internal Server Error</h1><p>The server encountered an internal error "
    "and was unable to complete your request.</p></body></html>"
)
MAINTENANCE_PAGE = (
    "<!DOCTYPE html><html><head><title>Mantenimiento</title></head>"
    "<body><h1>Sitio en mantenimiento</h1><p>Volvemos pronto.</p></body></html>"
)
GARBAGE = "<respuesta><status>3</sta#@!%&"


@dataclass
class Recorded:
    """One request as the fake received it.

    `params` merges the query string and the form body (the body wins);
    `raw` is the form body for a form POST, the query string otherwise.
    """

    method: str
    path: str
    params: dict[str, str]
    raw: str


@dataclass
class SentSms:
    """One message the provider accepted."""

    id: str
    phone: str
    text: str


Handler = Callable[[Recorded], Response]


def _parse(raw: str) -> dict[str, str]:
    return dict(parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="replace"))


async def _record(request: Request) -> Recorded:
    query = request.scope["query_string"].decode("latin-1")
    params = _parse(query)
    raw = query
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and content_type.startswith("application/x-www-form-urlencoded"):
        raw = (await request.body()).decode("utf-8", errors="replace")
        params.update(_parse(raw))
    return Recorded(request.method, request.url.path, params, raw)


def _fault_response(kind: str) -> Response:
    if kind == "http500":
        return Response(ERROR_PAGE, status_code=500, media_type="text/html")
    if kind == "html":
        return Response(MAINTENANCE_PAGE, media_type="text/html")
    if kind == "empty":
        return Response(b"", media_type="text/html")
    if kind == "garbage":
        return Response(GARBAGE, media_type="text/html")
    return Response(b"", status_code=int(kind.removeprefix("status:")))


async def call_webhook(
    url: str, params: dict[str, str], method: str = "GET", encoding: str = "utf-8"
) -> httpx.Response:
    """Call a user's webhook the way a provider does: query string (GET) or form body (POST).

    `encoding` is the charset used to percent-encode the values (`latin-1` sends `Ma%F1ana`).
    """
    data = urlencode(params, encoding=encoding)
    async with loopback.AsyncClient(timeout=10) as client:
        if method.upper() == "GET":
            separator = "&" if "?" in url else "?"
            return await client.get(f"{url}{separator}{data}")
        return await client.request(
            method.upper(),
            url,
            content=data,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )


class FakeProvider:
    """Base of the fakes: records every request and injects faults.

    Subclasses set their state, then call `super().__init__(handlers)` with a
    mapping of path to handler; every route answers GET and POST, other paths 404.
    """

    hang_timeout = 30.0

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.requests: list[Recorded] = []
        self.delay = 0.0
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        routes = [
            Route(path, self._endpoint(handler), methods=["GET", "POST"])
            for path, handler in handlers.items()
        ]
        routes.append(
            Route("/{path:path}", self._endpoint(self._not_found), methods=["GET", "POST"])
        )
        self.app = Starlette(routes=routes)

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Make the next `times` requests fail.

        `kind`: `http500` (500 + HTML page), `html` (200 + HTML page), `empty`
        (200, no body), `garbage` (200, truncated XML / junk), `garbage-after-sending`
        (the request is carried out, messages sent and charged, then the answer is 200 with
        junk: a gateway whose answer broke on the way), `hang` (blocks until `release()` or
        `hang_timeout`, then answers normally) or `status:NNN` (that HTTP status, empty
        body).
        """
        if kind not in FAULT_KINDS:
            code = kind.removeprefix("status:")
            if kind == code or not code.isdigit() or not 100 <= int(code) <= 599:
                raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            if kind == "hang":
                self._released.clear()
            self._faults.extend([kind] * times)

    def recover(self) -> None:
        """Drop every fault still waiting: the gateway is back."""
        with self._lock:
            self._faults.clear()
        self._released.set()

    def release(self) -> None:
        """Let hanging requests (and later ones, until the next `fail_next("hang")`) go on."""
        self._released.set()

    def _next_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    async def _hang(self, request: Request) -> bool:
        """Wait for `release()`; False when the client went away meanwhile."""
        deadline = time.monotonic() + self.hang_timeout
        while not self._released.is_set() and time.monotonic() < deadline:
            if await request.is_disconnected():
                return False
            await asyncio.sleep(0.01)
        return True

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            recorded = await _record(request)
            self.requests.append(recorded)
            if self.delay:
                await asyncio.sleep(self.delay)
            fault = self._next_fault()
            if fault == "hang":
                if not await self._hang(request):
                    return Response(b"", status_code=499)
            elif fault == "garbage-after-sending":
                handler(recorded)
                return _fault_response("garbage")
            elif fault is not None:
                return _fault_response(fault)
            return handler(recorded)

        return endpoint

    @staticmethod
    def _not_found(recorded: Recorded) -> Response:
        return Response("Not Found", status_code=404, media_type="text/plain")
