"""`create_app()`: the ASGI app around a `Service`, with its lifespan and `/healthz`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from responder.clock import Clock
from responder.config import Settings
from responder.providers.base import Provider
from responder.service import Service
from responder.web import admin, api, api_broadcasts, api_contacts, api_inbox, metrics, webhooks
from responder.web.admin.security import AdminSecurityHeaders

log = logging.getLogger("responder")


async def healthz(request: Request) -> Response:
    """200 while the database reads and writes; 503 (the load balancer sends webhooks to
    another instance meanwhile) when it cannot. `spooled` counts the webhooks kept on this
    instance's disk until the database takes them."""
    service: Service = request.app.state.service
    spooled = service.spool.pending
    try:
        ok = await service.ping()
    except Exception:
        ok = False
    if not ok:
        body = {"status": "database unavailable", "spooled": spooled}
        return JSONResponse(body, status_code=503)
    # Reading is not enough: a full disk must not look healthy while every write fails.
    problem = await service.write_problem() or service.replayer.problem
    if problem is not None:
        body = {"status": "database cannot write", "error": problem, "spooled": spooled}
        return JSONResponse(body, status_code=503)
    # Low credit is reported, not failed: the service itself is healthy.
    low = sorted(name for name, entry in (await service.balances()).items() if entry["low"])
    return JSONResponse({"status": "ok", "low_credit": low, "spooled": spooled})


class ResponderApp(Starlette):
    """Starlette, but Massiva's webhook URLs skip its middleware, routing and Response objects:
    they are most of the traffic (see `webhooks`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A root path would make Starlette's routes see another path: left to them.
        if scope["type"] == "http" and not scope.get("root_path"):
            webhook = webhooks.match(scope["path"])
            if webhook is not None:
                await webhooks.serve(self.state.service, *webhook, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Clock,
    providers: dict[str, Provider] | None = None,
    on_ready: Callable[[Service], None] | None = None,
) -> Starlette:
    """Builds the ASGI app; its lifespan opens the database and runs the workers."""
    service = Service(settings, clock=clock, providers=providers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        if on_ready is not None:
            on_ready(service)
        try:
            yield
        finally:
            await service.stop()

    app = ResponderApp(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            *webhooks.routes,
            *metrics.routes,
            *api_contacts.routes,  # before api's /api/contacts/{phone}
            *api.routes,
            *api_inbox.routes,
            *api_broadcasts.routes,
            *admin.routes,
        ],
        middleware=[Middleware(AdminSecurityHeaders)],
        lifespan=lifespan,
    )
    app.state.service = service
    return app
