"""Massiva's webhooks: inbound SMS and delivery reports, behind a secret path token."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from responder.engine import InboundMessage
from responder.phone import InvalidPhoneNumber, inbound_phone
from responder.store.models import StatusUpdate, StoreUnavailable
from responder.web.forms import BadBody, BodyTooLarge, read_body, read_fields

if TYPE_CHECKING:
    from responder.service import Service

log = logging.getLogger("responder.webhooks")

ESTATUS = {"1": "delivered", "2": "failed"}
EFFECTIVE_METHODS = ("GET", "POST")  # Massiva calls with either
NOT_FOUND = PlainTextResponse("Not Found", status_code=404)


class Rejection(Exception):
    """A webhook request we cannot use: answered 400, kept raw."""


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _redacted_path(request: Request) -> str:
    return request.url.path.replace(request.path_params.get("token", "\0"), "{token}")


async def _reject(request: Request, body: bytes, reason: str) -> Response:
    await _service(request).reject_webhook(
        request.method,
        _redacted_path(request),
        request.scope.get("query_string", b"").decode("latin-1"),
        body,
        request.headers.get("content-type"),
        reason,
    )
    log.warning("rejected %s webhook: %s", _redacted_path(request), reason)
    return PlainTextResponse(reason, status_code=400)


async def _inbound(request: Request, fields: dict[str, str]) -> Response:
    service = _service(request)
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
    return PlainTextResponse("OK")


async def _status(request: Request, fields: dict[str, str]) -> Response:
    service = _service(request)
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
    return PlainTextResponse("OK")


def _handler(kind: str | None) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        service = _service(request)
        given = request.path_params["token"].encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, service.webhook_token.encode()):
            return NOT_FOUND
        if request.method not in EFFECTIVE_METHODS:
            # Starlette answers HEAD on GET routes; a HEAD must not store or send anything.
            return PlainTextResponse(
                "use GET or POST", status_code=405, headers={"Allow": ", ".join(EFFECTIVE_METHODS)}
            )
        started = service.clock.monotonic()
        try:
            return await _handle(request, kind)
        finally:
            service.metrics.webhook_seconds.observe(service.clock.monotonic() - started)

    return endpoint


async def _handle(request: Request, kind: str | None) -> Response:
    """A webhook with the right token: read, told apart when `kind` is None, and taken."""
    try:
        body = await read_body(request)
    except BodyTooLarge:
        return PlainTextResponse("request body too large (64 KiB at most)", status_code=413)
    try:
        try:
            fields = await read_fields(request, body)
            chosen = kind
            if chosen is None:  # one URL for both: tell them apart by their fields
                chosen = "status" if "estatus" in fields and "msg" not in fields else "inbound"
            if chosen == "status":
                return await _status(request, fields)
            return await _inbound(request, fields)
        except (Rejection, BadBody) as err:
            return await _reject(request, body, str(err))
    except StoreUnavailable:
        # Neither stored nor spooled (or a rejection that could not be kept), so not
        # acknowledged: the provider retries later.
        return PlainTextResponse("temporarily unable to store; retry", status_code=503)


routes = [
    Route("/webhooks/massiva/{token}/inbound", _handler("inbound"), methods=EFFECTIVE_METHODS),
    Route("/webhooks/massiva/{token}/status", _handler("status"), methods=EFFECTIVE_METHODS),
    Route("/webhooks/massiva/{token}", _handler(None), methods=EFFECTIVE_METHODS),
]
