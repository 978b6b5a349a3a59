"""Signing in and out."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from responder.accounts import normalized_name
from responder.web.admin.core import (
    _answer,
    _client,
    _open_session,
    _redirect,
    _render,
    _safe_next,
    _service,
)
from responder.web.sessions import Session

if TYPE_CHECKING:
    pass


# -- sign-in --------------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    session = await _open_session(request)
    wanted = _safe_next(request.query_params.get("next"))

    async def work() -> Response:
        if session.authenticated:
            return _redirect(wanted)
        return _render(request, session, "login.html", next=wanted, name="")

    return await _answer(request, session, work)


async def login(request: Request, session: Session, form: dict[str, str]) -> Response:
    """Name and password; the sign-in limit counts failures per client address and per
    account name, in the store (so across instances)."""
    service = _service(request)
    limiter = service.sign_in_limiter
    wanted = _safe_next(form.get("next"))
    name = normalized_name(form.get("name", ""))[:64]
    client = _client(request)
    keys = [f"client:{client}", f"account:{name}"]
    wait = await limiter.retry_after(keys)
    if wait:
        seconds = math.ceil(wait)
        response = _render(
            request, session, "login.html", 429, next=wanted, name=name,
            error=f"Demasiados intentos fallidos. Espere {seconds} s y vuelva a intentarlo.",
        )  # fmt: skip
        response.headers["Retry-After"] = str(seconds)
        return response
    identity = await service.accounts.authenticate(name, form.get("password", ""))
    if identity is None:
        await limiter.failed(keys)
        await service.accounts.record(None, "sign_in_failed", name, client=client)
        return _render(
            request, session, "login.html", 401, next=wanted, name=name,
            error="Nombre o contraseña incorrectos.",
        )  # fmt: skip
    await limiter.succeeded(keys)
    await service.sessions.sign_in(session, identity.name)
    await service.accounts.record(identity.name, "sign_in", identity.name, client=client)
    return _redirect(wanted)


async def logout(request: Request, session: Session, form: dict[str, str]) -> Response:
    service, who = _service(request), session.user
    await service.sessions.sign_out(session)
    if who is not None:
        await service.accounts.record(who, "sign_out", who)
    return _redirect("/admin/login", ok="bye")
