"""What every admin page shares: the Jinja environment, rendering, the session gatekeeper
(`page`, `partial`, `action`: sign-in, CSRF, Origin, owner-only paths) and refusals.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from responder import failures
from responder import text as sms_text
from responder.store.models import (
    UNASSIGNED,
    Note,
    StoreUnavailable,
    UnknownContactError,
)
from responder.web import views
from responder.web.forms import MAX_BODY as MAX_FORM
from responder.web.forms import BodyTooLarge, parse_urlencoded, read_body
from responder.web.sessions import COOKIE_NAME, Session

if TYPE_CHECKING:
    from responder.service import Service


POLL_INTERVAL = 3.0  # seconds between two looks for new messages on an open page
PAGE_SIZE = 50
MAX_REPLY = 1600  # characters: ten SMS; longer is a paste gone wrong
# "mine" is filled in with the person looking (responder/web/admin/inbox.py).
FILTERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "all": ("Todas", "all", {}),
    "mine": ("Mías", "mine", {}),
    "unassigned": ("Sin asignar", "unassigned", {"assigned": UNASSIGNED}),
    "human": ("Con personas", "human", {"mode": "human"}),
    "attention": ("Requieren atención", "needs_attention", {"needs_attention": True}),
    "open": ("Abiertas", "open", {"status": "open"}),
    "resolved": ("Resueltas", "resolved", {"status": "resolved"}),
    "opted_out": ("Dadas de baja", "opted_out", {"opted_out": True}),
}
NOTICES = {
    "sent": "Mensaje en cola para enviar. Ahora usted atiende esta conversación.",
    "bot": "La conversación volvió al bot: responderá de nuevo con las reglas.",
    "human": "Usted atiende esta conversación: el bot no responderá.",
    "fields": "Datos del contacto guardados.",
    "forgotten": "Se borró el contacto con todos sus mensajes, notas y datos.",
    "assigned": "Conversación asignada.",
    "unassigned": "La conversación quedó sin asignar.",
    "resolved": "Conversación resuelta. Si el cliente escribe de nuevo, se reabre sola.",
    "open": "Conversación reabierta.",
    "note": "Nota interna guardada: el cliente no la ve.",
    "bye": "Sesión cerrada.",
    "retried": "Mensaje en cola otra vez: se reintenta ahora.",
    "cancelled": "Mensaje cancelado: no se enviará.",
}
EXPIRED_FORM = (
    "Formulario rechazado: la página caducó. Vuelva atrás, recárguela e intente de nuevo."
)
STORE_UNAVAILABLE = (
    "No se pudo guardar: la base de datos no admite escrituras ahora (¿disco lleno?). "
    "No se guardó ni se envió nada; intente de nuevo en unos minutos."
)
# Pages and actions for owners only (DESIGN §11): an agent gets 403 and no link to them.
OWNER_ONLY = ("/admin/rules", "/admin/people", "/admin/audit", "/admin/saved-replies")
NOT_AN_OWNER = "Esta página es solo para dueños. Pídale a un dueño que lo haga por usted."
OPTED_OUT_ERROR = (
    "Este número se dio de baja: no se le puede escribir hasta que envíe ALTA por SMS."
)


class Refused(Exception):
    """A request the admin answers with a page saying why (status 403, 404, 413...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class RowMarkup:
    """The markup of the inbox's rows by a digest of everything a row shows, the most recent
    `size` of them: a poll that finds one new message renders one row, not fifty. A
    process-local cache, and safe as one: a row whose data changes has another key."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._kept: OrderedDict[bytes, Markup] = OrderedDict()

    def get(self, key: bytes) -> Markup | None:
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def put(self, key: bytes, markup: Markup) -> None:
        self._kept[key] = markup
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)


@dataclass
class AdminState:
    """Per-app admin state: the page templates, and the inbox rows' markup."""

    env: jinja2.Environment
    rows: RowMarkup = field(default_factory=RowMarkup)


@jinja2.pass_context
def _when(context: Any, value: datetime | None) -> str:
    """A moment in the shop's time zone (`tz` and `now` come with every page)."""
    return views.local_time(value, context["tz"], context["now"])


def _environment() -> jinja2.Environment:
    """A plain autoescaping environment: these are our pages, not the rules' sandboxed replies."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("responder.web", "templates/admin"),
        autoescape=jinja2.select_autoescape(("html",), default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # The templates are the package's own files: no stat() of each on every include (50
        # per inbox poll) to see whether it changed on disk.
        auto_reload=False,
    )
    env.filters.update(
        phone=views.show_phone,
        status=lambda s: views.STATUS_LABELS.get(s, s),
        segments=sms_text.segments,
        name=views.contact_name,
        matching=views.rule_matching,
        preview=views.reply_preview,
        duration=views.duration,
        when=_when,
        status_help=lambda s: failures.STATUS_HELP.get(s, ""),
    )
    env.globals.update(
        origin=views.origin_label, rule_label=views.RULE_LABELS.get, failure=failures.reason
    )
    env.tests["note"] = lambda value: isinstance(value, Note)
    return env


def _state(request: Request) -> AdminState:
    state: AdminState | None = getattr(request.app.state, "admin", None)
    if state is None:
        state = AdminState(_environment())
        request.app.state.admin = state
    return state


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


# -- responses ----------------------------------------------------------------------------


def _fragment(request: Request, template: str, **context: Any) -> Markup:
    """A piece of a page rendered alone, with the shop's time zone and time (its `when`)."""
    service = _service(request)
    base = {"tz": service.rules.current.settings.timezone, "now": service.clock()}
    return Markup(_state(request).env.get_template(template).render({**base, **context}))


def _render(
    request: Request, session: Session, template: str, status: int = 200, **context: Any
) -> HTMLResponse:
    service = _service(request)
    settings = service.rules.current.settings
    base = {
        "csrf": session.csrf,
        "signed_in": session.authenticated,
        "me": session.user,
        "owner": session.owner,
        "section": "",
        "notice": NOTICES.get(request.query_params.get("ok", "")),
        "error": None,
        "tz": settings.timezone,
        "now": service.clock(),
        "poll_ms": int(POLL_INTERVAL * 1000),
        "failed_phones": frozenset(),  # conversations flagged "falló" (inbox, conversation)
    }
    body = _state(request).env.get_template(template).render({**base, **context})
    return HTMLResponse(body, status_code=status)


def _finish(request: Request, response: Response, session: Session) -> None:
    if session.cookie is not None:
        response.set_cookie(
            COOKIE_NAME,
            session.cookie,
            max_age=session.max_age,
            path="/admin",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="lax",
        )


def _redirect(path: str, **query: str) -> RedirectResponse:
    suffix = "?" + urlencode(query) if query else ""
    return RedirectResponse(path + suffix, status_code=303)


def _safe_next(value: str | None) -> str:
    """Only a path inside the admin: a sign-in link must not send anyone elsewhere."""
    if value and re.fullmatch(r"/admin(?:[/?][^\\\s]*)?", value) and not value.startswith("//"):
        return value
    return "/admin"


def _same_origin(request: Request) -> bool:
    """The form came from this site. No `Origin` (old browsers, curl) passes: the CSRF token
    still has to match. Behind a reverse proxy that rewrites `Host`, its `X-Forwarded-Host`
    counts too (a cross-site form cannot set either header)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    hosts = {request.headers.get("host", "").lower()}
    forwarded = request.headers.get("x-forwarded-host")
    if forwarded:
        hosts.add(forwarded.split(",")[0].strip().lower())
    return origin != "null" and urlsplit(origin).netloc.lower() in hosts


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- the gatekeeper ----------------------------------------------------------------------------

Handler = Callable[[Request, Session], Awaitable[Response]]
FormHandler = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]


async def _open_session(request: Request) -> Session:
    return await _service(request).sessions.load(request.cookies.get(COOKIE_NAME))


async def _answer(
    request: Request, session: Session, work: Callable[[], Awaitable[Response]]
) -> Response:
    try:
        response = await work()
    except Refused as err:
        response = _render(request, session, "refused.html", err.status, message=err.message)
    except UnknownContactError as err:
        message = f"No hay ninguna conversación con {views.show_phone(str(err.args[0]))}."
        response = _render(request, session, "refused.html", 404, message=message)
    except StoreUnavailable:
        response = _render(request, session, "refused.html", 503, message=STORE_UNAVAILABLE)
        response.headers["Retry-After"] = "60"
    _finish(request, response, session)
    return response


def _owner_only(request: Request) -> bool:
    path = request.url.path
    return any(path == prefix or path.startswith(prefix + "/") for prefix in OWNER_ONLY)


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page for signed-in staff; others are sent to the sign-in form."""

    async def endpoint(request: Request) -> Response:
        session = await _open_session(request)

        async def work() -> Response:
            if not session.authenticated:
                wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return _redirect("/admin/login", next=wanted)
            if _owner_only(request) and not session.owner:
                raise Refused(403, NOT_AN_OWNER)
            return await handler(request, session)

        return await _answer(request, session, work)

    return endpoint


def partial(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A fragment a page polls for; 401 (not a redirect) once the session is gone."""

    async def endpoint(request: Request) -> Response:
        session = await _open_session(request)
        if not session.authenticated:
            response: Response = JSONResponse({"error": "sign in again"}, status_code=401)
            _finish(request, response, session)
            return response
        if _owner_only(request) and not session.owner:
            response = JSONResponse({"error": "owners only"}, status_code=403)
            _finish(request, response, session)
            return response
        return await _answer(request, session, lambda: handler(request, session))

    return endpoint


def action(
    handler: FormHandler, *, signed_in: bool = True, limit: int = MAX_FORM
) -> Callable[[Request], Awaitable[Response]]:
    """A form POST: same origin, the session's CSRF token, a body of at most `limit` bytes."""

    async def endpoint(request: Request) -> Response:
        session = await _open_session(request)

        async def work() -> Response:
            if not _same_origin(request):
                raise Refused(403, "Formulario rechazado: viene de otro sitio.")
            try:
                form = parse_urlencoded(await read_body(request, limit))
            except BodyTooLarge:
                raise Refused(413, "El formulario es demasiado grande.") from None
            if not session.csrf_matches(form.get("csrf")):
                raise Refused(403, EXPIRED_FORM)
            if signed_in and not session.authenticated:
                return _redirect("/admin/login")
            if signed_in and _owner_only(request) and not session.owner:
                raise Refused(403, NOT_AN_OWNER)
            return await handler(request, session, form)

        return await _answer(request, session, work)

    return endpoint
