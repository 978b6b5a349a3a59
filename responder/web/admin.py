"""The staff web inbox under /admin: sign-in, inbox, conversations, rules and dashboard.

Every page needs a session (signing in takes a person's name and password, or `admin` and the
admin token; the session lives in the store, the cookie holds only its random id); every form
carries the session's CSRF token. Pages under OWNER_ONLY answer 403 to agents. Pages go
through the same service methods as the JSON API.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from responder import engine
from responder import text as sms_text
from responder.accounts import normalized_name
from responder.phone import InvalidPhoneNumber, inbound_phone
from responder.store.models import (
    Conversation,
    OptedOutError,
    StoreUnavailable,
    UnknownContactError,
)
from responder.web import charts, views
from responder.web.api import FIELD_NAME_RE
from responder.web.forms import MAX_BODY as MAX_FORM
from responder.web.forms import BodyTooLarge, parse_urlencoded, read_body
from responder.web.sessions import COOKIE_NAME, Session

if TYPE_CHECKING:
    from responder.service import Service

POLL_INTERVAL = 3.0  # seconds between two looks for new messages on an open page
PAGE_SIZE = 50
MAX_REPLY = 1600  # characters: ten SMS; longer is a paste gone wrong
DASHBOARD_DAYS = 14
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
FILTERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "all": ("Todas", "all", {}),
    "human": ("Con personas", "human", {"mode": "human"}),
    "attention": ("Requieren atención", "needs_attention", {"needs_attention": True}),
    "opted_out": ("Dadas de baja", "opted_out", {"opted_out": True}),
}
NOTICES = {
    "sent": "Mensaje en cola para enviar. Ahora usted atiende esta conversación.",
    "bot": "La conversación volvió al bot: responderá de nuevo con las reglas.",
    "human": "Usted atiende esta conversación: el bot no responderá.",
    "fields": "Datos del contacto guardados.",
    "bye": "Sesión cerrada.",
}
EXPIRED_FORM = (
    "Formulario rechazado: la página caducó. Vuelva atrás, recárguela e intente de nuevo."
)
STORE_UNAVAILABLE = (
    "No se pudo guardar: la base de datos no admite escrituras ahora (¿disco lleno?). "
    "No se guardó ni se envió nada; intente de nuevo en unos minutos."
)
# Pages and actions for owners only (DESIGN §11): an agent gets 403 and no link to them.
OWNER_ONLY = ("/admin/rules", "/admin/people", "/admin/audit")
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


@dataclass
class AdminState:
    """Per-app admin state: the page templates."""

    env: jinja2.Environment


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
    )
    env.globals.update(origin=views.origin_label, rule_label=views.RULE_LABELS.get)
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
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


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


# -- inbox --------------------------------------------------------------------------------------


async def _inbox(request: Request) -> dict[str, Any]:
    service = _service(request)
    params = request.query_params
    chosen = params.get("f", "all")
    if chosen not in FILTERS:
        chosen = "all"
    query = params.get("q", "").strip()[:100]
    try:
        shown = min(500, max(PAGE_SIZE, int(params.get("n", PAGE_SIZE))))
    except ValueError:
        shown = PAGE_SIZE
    filters: dict[str, Any] = FILTERS[chosen][2]
    if query:
        country = service.rules.current.settings.country
        fragments = views.phone_fragments(query, country)
        found = await service.search_conversations(query, fragments, shown + 1, 0, **filters)
    else:
        found = await service.conversations(shown + 1, 0, **filters)
    counts = await service.conversation_counts()
    links = [
        (key, label, counts[count_key], _link("/admin", f=key, q=query))
        for key, (label, count_key, _) in FILTERS.items()
    ]
    return {
        "section": "inbox",
        "conversations": found[:shown],
        "more": _link("/admin", f=chosen, q=query, n=str(shown + PAGE_SIZE))
        if len(found) > shown
        else None,
        "filter": chosen,
        "filters": links,
        "q": query,
        "counts": counts,
        "poll_url": _link("/admin/partials/inbox", f=chosen, q=query, n=str(shown)),
    }


def _link(path: str, **query: str) -> str:
    kept = {k: v for k, v in query.items() if v and not (k == "f" and v == "all")}
    return path + ("?" + urlencode(kept) if kept else "")


async def inbox(request: Request, session: Session) -> Response:
    return _render(request, session, "inbox.html", **await _inbox(request))


async def inbox_partial(request: Request, session: Session) -> Response:
    return _render(request, session, "_inbox_live.html", **await _inbox(request))


# -- one conversation ---------------------------------------------------------------------------


def _phone(request: Request) -> str:
    # Lenient, like the API: a conversation may come from a short code.
    try:
        return inbound_phone(
            request.path_params["phone"], _service(request).rules.current.settings.country
        )
    except InvalidPhoneNumber:
        raise Refused(404, "Ese número de teléfono no es válido.") from None


async def _conversation(request: Request, phone: str) -> dict[str, Any]:
    service = _service(request)
    conversation = await service.conversation(phone)
    if conversation.unread:
        # A database that cannot write must not keep staff from reading: it stays unread.
        with contextlib.suppress(StoreUnavailable):
            await service.mark_read(phone)
            conversation = replace(conversation, unread=0)
    return {
        "section": "inbox",
        "c": conversation,
        "messages": await service.messages(phone),
        "providers": list(service.providers),
        "default_provider": service.default_provider,
        "smart_encoding": service.rules.current.settings.smart_encoding,
        "max_reply": MAX_REPLY,
        "draft": "",
        "field_error": None,
    }


async def conversation_page(request: Request, session: Session) -> Response:
    context = await _conversation(request, _phone(request))
    return _render(request, session, "conversation.html", **context)


async def conversation_partial(request: Request, session: Session) -> Response:
    context = await _conversation(request, _phone(request))
    return _render(request, session, "_conversation_live.html", **context)


async def reply(request: Request, session: Session, form: dict[str, str]) -> Response:
    service, phone = _service(request), _phone(request)
    await service.conversation(phone)  # an unknown number is a 404, not a new contact
    # Browsers send line breaks as CRLF; one character each is what the counter showed.
    text = form.get("text", "").replace("\r\n", "\n").replace("\r", "\n")
    via = form.get("via") or None
    error, status = None, 400
    if not text.strip():
        error = "Escriba un mensaje antes de enviar."
    elif len(text) > MAX_REPLY:
        error = f"El mensaje es demasiado largo ({len(text)} caracteres; máximo {MAX_REPLY})."
    elif via is not None and via not in service.providers:
        error = f"El proveedor {via} no está configurado."
    else:
        try:
            await service.send(phone, text, via, "agent", author=session.user)
        except OptedOutError:
            error, status = OPTED_OUT_ERROR, 409
        except StoreUnavailable:  # the draft stays in the box, to send again later
            error, status = STORE_UNAVAILABLE, 503
        except InvalidPhoneNumber:
            error = "Ese número no puede recibir SMS (no es un número de teléfono válido)."
        except sms_text.UnsendableText as err:
            error = _unsendable(err)
        else:
            return _redirect(f"/admin/conversations/{phone}", ok="sent")
    context = await _conversation(request, phone)
    context.update(error=error, draft=text)
    return _render(request, session, "conversation.html", status, **context)


def _unsendable(err: sms_text.UnsendableText) -> str:
    if err.kind == "empty":
        return (
            "El mensaje no tiene nada visible que enviar (solo espacios o caracteres invisibles)."
        )
    return (
        f"El mensaje tiene un carácter de control invisible ({err.code_point}) en la posición "
        f"{err.position}: los teléfonos no lo muestran y el proveedor no lo acepta. "
        "Bórrelo y vuelva a enviar."
    )


async def set_mode(request: Request, session: Session, form: dict[str, str]) -> Response:
    mode = form.get("mode")
    if mode not in ("bot", "human"):
        raise Refused(400, "Modo desconocido: use bot o human.")
    conversation = await _service(request).set_mode(_phone(request), mode, session.user)
    return _redirect(f"/admin/conversations/{conversation.phone}", ok=mode)


def _field_changes(conversation: Conversation, form: dict[str, str]) -> dict[str, Any]:
    """What the contact form changes: edited values, emptied ones (removed), one new field."""
    changes: dict[str, Any] = {}
    for name, old in conversation.fields.items():
        key = f"field:{name}"
        if key not in form:
            continue
        value = form[key].strip()
        if not value:
            changes[name] = None
        elif value != str(old):
            changes[name] = value
    new_name, new_value = form.get("new_name", "").strip(), form.get("new_value", "").strip()
    if new_name or new_value:
        if not FIELD_NAME_RE.match(new_name):
            raise ValueError(
                "El nombre del dato usa letras sin acentos, números y _ (ej.: nombre)."
            )
        if new_value:
            changes[new_name] = new_value
    return changes


async def set_fields(request: Request, session: Session, form: dict[str, str]) -> Response:
    service, phone = _service(request), _phone(request)
    conversation = await service.conversation(phone)
    try:
        changes = _field_changes(conversation, form)
    except ValueError as err:
        context = await _conversation(request, phone)
        context["field_error"] = str(err)
        return _render(request, session, "conversation.html", 400, **context)
    if changes:
        await service.update_fields(phone, changes)
    return _redirect(f"/admin/conversations/{phone}", ok="fields")


async def sms_alphabet(request: Request, session: Session) -> Response:
    """What the reply box needs to count SMS exactly as the server will."""
    body = {
        "basic": "".join(sorted(sms_text.GSM7_BASIC)),
        "extended": "".join(sorted(sms_text.GSM7_EXTENDED)),
        "smart": sms_text.smart_encode_table(),
        "limit": engine.SMS_LIMIT,
    }
    return JSONResponse(body, headers={"Cache-Control": "private, max-age=3600"})


# -- dashboard -----------------------------------------------------------------------------------


async def dashboard(request: Request, session: Session) -> Response:
    service = _service(request)
    tz = service.rules.current.settings.timezone
    today = service.clock().astimezone(tz).date()
    days = views.local_days(today, DASHBOARD_DAYS)
    since = datetime.combine(days[0], datetime.min.time(), tz)
    numbers = await service.dashboard_numbers(since)
    daily = views.daily_counts(numbers["hourly"], tz, days)
    statuses = numbers["statuses"]
    delivered, failed, sent, unconfirmed = (
        statuses.get(s, 0) for s in ("delivered", "failed", "sent", "unconfirmed")
    )
    settled = delivered + failed + sent + unconfirmed
    pending = sum(statuses.get(s, 0) for s in ("queued", "sending", "scheduled"))
    top = [(views.RULE_LABELS.get(r, r), n) for r, n in numbers["top_rules"]]
    parts = [
        ("entregados", delivered, "delivered"),
        ("enviados, sin informe de entrega", sent, "sent"),
        ("sin confirmar (respuesta ilegible)", unconfirmed, "unconfirmed"),
        ("fallidos", failed, "failed"),
    ]
    return _render(
        request,
        session,
        "dashboard.html",
        section="dashboard",
        days=DASHBOARD_DAYS,
        daily_chart=charts.daily_bars(daily),
        daily=daily,
        totals=(sum(d[1] for d in daily), sum(d[2] for d in daily)),
        delivered=delivered,
        failed=failed,
        sent=sent,
        unconfirmed=unconfirmed,
        pending=pending,
        rate=round(100 * delivered / settled) if settled else None,
        delivery_chart=charts.stacked_bar(parts, width=460) if settled else None,
        top=top,
        top_chart=charts.horizontal_bars(top, width=460, label_width=170) if top else None,
        attention=numbers["attention"],
        counts=numbers["counts"],
        balances=await service.fresh_balances(),
    )


def _static() -> StaticFiles:
    return StaticFiles(packages=[("responder.web", "static")])


routes = [
    Route("/admin", page(inbox), methods=["GET"]),
    Route("/admin/login", login_form, methods=["GET"]),
    Route("/admin/login", action(login, signed_in=False), methods=["POST"]),
    Route("/admin/logout", action(logout, signed_in=False), methods=["POST"]),
    Route("/admin/partials/inbox", partial(inbox_partial), methods=["GET"]),
    Route("/admin/conversations/{phone}", page(conversation_page), methods=["GET"]),
    Route("/admin/partials/conversations/{phone}", partial(conversation_partial), methods=["GET"]),
    Route("/admin/conversations/{phone}/reply", action(reply), methods=["POST"]),
    Route("/admin/conversations/{phone}/mode", action(set_mode), methods=["POST"]),
    Route("/admin/conversations/{phone}/fields", action(set_fields), methods=["POST"]),
    Route("/admin/dashboard", page(dashboard), methods=["GET"]),
    Route("/admin/sms.json", partial(sms_alphabet), methods=["GET"]),
    Mount("/admin/static", app=_static(), name="admin-static"),
]
