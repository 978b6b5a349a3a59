"""`GET /metrics` (DESIGN §13): Prometheus text format, for a bearer token only: the admin
token, an owner's personal token, or `RESPONDER_METRICS_TOKEN` when set."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from responder.store.models import StoreUnavailable

if TYPE_CHECKING:
    from responder.service import Service

UNAUTHORIZED = (
    "missing or wrong bearer token (RESPONDER_METRICS_TOKEN, RESPONDER_ADMIN_TOKEN or an "
    "owner's personal token)"
)
UNAVAILABLE = "the database cannot be read right now; try again later"


async def _allowed(service: Service, request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    expected = service.settings.metrics_token
    given = token.encode("utf-8", "surrogateescape")
    if expected and hmac.compare_digest(given, expected.encode()):
        return True
    identity = await service.accounts.bearer(token)
    return identity is not None and identity.owner


async def metrics(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        if not await _allowed(service, request):
            return PlainTextResponse(
                UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        text = await service.metrics_text()
    except StoreUnavailable:
        return PlainTextResponse(UNAVAILABLE, status_code=503, headers={"Retry-After": "60"})
    return Response(text, media_type=CONTENT_TYPE_LATEST)


routes = [Route("/metrics", metrics, methods=["GET"])]
