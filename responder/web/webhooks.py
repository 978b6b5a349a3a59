"""Massiva's webhooks: inbound SMS and delivery reports, behind a secret path token.

Plain ASGI, not Starlette endpoints: at 1,000 webhooks/s Starlette's middleware, routing and
Response objects took about a seventh of the event loop's time. The app serves these URLs before
its middleware (`app.ResponderApp`, through `match` and `serve`); Starlette's routes stay, on the
same `serve`, for what that fast path leaves to them (a root path; a trailing slash's redirect)."""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, NamedTuple

from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from responder.engine import InboundMessage
from responder.phone import InvalidPhoneNumber, inbound_phone
from responder.store.models import StatusUpdate, StoreUnavailable
from responder.web.forms import BadBody, BodyTooLarge, read_body, read_fields

if TYPE_CHECKING:
    from responder.service import Service

log = logging.getLogger("responder.webhooks")

PREFIX = "/webhooks/massiva/"
SUFFIXES = (("/inbound", "inbound"), ("/status", "status"))  # `match` and `routes` read both
ESTATUS = {"1": "delivered", "2": "failed"}
EFFECTIVE_METHODS = ("GET", "POST")  # Massiva calls with either
TEXT_PLAIN = (b"content-type", b"text/plain; charset=utf-8")


class Answer(NamedTuple):
    """A whole plain-text answer, headers as Starlette's PlainTextResponse wrote them (the
    constant ones shared by every request: the server only reads them)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def answer(status: int, text: str, *headers: tuple[bytes, bytes]) -> Answer:
    body = text.encode()
    return Answer(status, [*headers, (b"content-length", b"%d" % len(body)), TEXT_PLAIN], body)


OK = answer(200, "OK")
NOT_FOUND = answer(404, "Not Found")
# A HEAD (which Starlette's routes took as a GET) must not store or send anything.
USE_GET_OR_POST = answer(405, "use GET or POST", (b"allow", ", ".join(EFFECTIVE_METHODS).encode()))
# What Starlette answered to other methods (its Allow names HEAD too, in a set's random order).
METHOD_NOT_ALLOWED = answer(405, "Method Not Allowed", (b"allow", b"GET, POST, HEAD"))
TOO_LARGE = answer(413, "request body too large (64 KiB at most)")
# Neither stored nor spooled (or a rejection that could not be kept), so not acknowledged: the
# provider retries later.
UNAVAILABLE = answer(503, "temporarily unable to store; retry")
SERVER_ERROR = answer(500, "Internal Server Error")


class Rejection(Exception):
    """A webhook request we cannot use: answered 400, kept raw."""


def match(path: str) -> tuple[str, str | None] | None:
    """The token and kind (None: told apart by the fields) of a webhook URL's path, as
    Starlette's routes below would match it; None for any other path."""
    if not path.startswith(PREFIX):
        return None
    token = path[len(PREFIX) :]
    kind = None
    for suffix, name in SUFFIXES:
        if token.endswith(suffix):
            token, kind = token[: -len(suffix)], name
            break
    if not token or "/" in token:
        return None
    return token, kind


async def serve(
    service: Service, token: str, kind: str | None, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answers one webhook request. An unexpected error is logged and answered 500 without a
    traceback (as Starlette's ServerErrorMiddleware did), the connection kept for the next."""
    try:
        result = await _answer(service, token, kind, scope, receive)
    except Exception:
        log.exception("%s %s webhook failed", scope["method"], _redacted(scope, token))
        result = SERVER_ERROR
    await send({"type": "http.response.start", "status": result.status, "headers": result.headers})
    await send({"type": "http.response.body", "body": result.body})


def _redacted(scope: Scope, token: str) -> str:
    """The request's path as logs and the rejected webhooks keep it: without the secret."""
    return str(scope["path"]).replace(token, "{token}")


async def _answer(
    service: Service, token: str, kind: str | None, scope: Scope, receive: Receive
) -> Answer:
    method = scope["method"]
    if method not in EFFECTIVE_METHODS and method != "HEAD":
        return METHOD_NOT_ALLOWED  # before the token, as Starlette's router did
    given = token.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, service.webhook_token.encode()):
        return NOT_FOUND
    if method == "HEAD":
        return USE_GET_OR_POST
    started = service.clock.monotonic()
    try:
        return await _handle(service, Request(scope, receive), token, kind)
    finally:
        service.metrics.webhook_seconds.observe(service.clock.monotonic() - started)


async def _handle(service: Service, request: Request, token: str, kind: str | None) -> Answer:
    """A webhook with the right token: read, told apart when `kind` is None, and taken."""
    try:
        body = await read_body(request)
    except BodyTooLarge:
        return TOO_LARGE
    try:
        try:
            fields = await read_fields(request, body)
            if kind is None:  # one URL for both: tell them apart by their fields
                kind = "status" if "estatus" in fields and "msg" not in fields else "inbound"
            if kind == "status":
                await _status(service, fields)
            else:
                await _inbound(service, fields)
            return OK
        except (Rejection, BadBody) as err:
            return await _reject(service, request, token, body, str(err))
    except StoreUnavailable:
        return UNAVAILABLE


async def _reject(
    service: Service, request: Request, token: str, body: bytes, reason: str
) -> Answer:
    path = _redacted(request.scope, token)
    await service.reject_webhook(
        request.method,
        path,
        request.scope.get("query_string", b"").decode("latin-1"),
        body,
        request.headers.get("content-type"),
        reason,
    )
    log.warning("rejected %s webhook: %s", path, reason)
    return answer(400, reason)


async def _inbound(service: Service, fields: dict[str, str]) -> None:
    missing = [f for f in ("phone", "msg") if f not in fields]
    if missing:
        raise Rejection(f"missing field(s): {', '.join(missing)}")
    try:
        phone = inbound_phone(fields["phone"], service.rules.current.settings.country)
    except InvalidPhoneNumber as err:
        raise Rejection(f"phone: {err}") from None
    line = fields.get("linea", "").strip() or None
    message = InboundMessage(phone, fields["msg"], service.clock(), line, "massiva")
    await service.take_inbound(message)  # stored, or kept in the spool on disk: either way OK
    service.metrics.inbound("massiva")


async def _status(service: Service, fields: dict[str, str]) -> None:
    missing = [f for f in ("id", "estatus") if not fields.get(f, "").strip()]
    if missing:
        raise Rejection(f"missing field(s): {', '.join(missing)}")
    status = ESTATUS.get(fields["estatus"].strip())
    if status is None:
        raise Rejection(f"estatus must be 1 (delivered) or 2 (failed), got {fields['estatus']!r}")
    detail = fields.get("detalle", "").strip() or None
    update = StatusUpdate("massiva", fields["id"].strip(), status, detail, service.clock())
    if await service.take_status(update) is False:
        # It may have overtaken the send's answer: kept 48 h, applied when the id is recorded.
        log.info("massiva status for id %s not recorded yet: kept for later", update.provider_id)


class RoutedWebhook:
    """One webhook URL as Starlette routes it, every method included: `serve` answers them
    all, the same as on the fast path."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service: Service = scope["app"].state.service
        token: str = scope["path_params"]["token"]
        await serve(service, token, self.kind, scope, receive, send)


routes = [
    *(Route(PREFIX + "{token}" + suffix, RoutedWebhook(kind)) for suffix, kind in SUFFIXES),
    Route(PREFIX + "{token}", RoutedWebhook(None)),
]
