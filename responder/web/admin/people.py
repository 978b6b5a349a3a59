"""The admin's Personas page (owners only, DESIGN §11): the team's people, adding one,
changing a role, disabling or enabling, a new password; and the audit trail's page."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from responder.accounts import AccountError, normalized_name
from responder.store.models import UnknownUserError, UserExists
from responder.web.admin.core import Refused, _redirect, _render, _service, action, page
from responder.web.sessions import OWNER, Session

ROLE_LABELS = {"owner": "Dueño", "agent": "Agente"}
NOTICES = {
    "added": "Persona agregada: ya puede entrar con su nombre y contraseña.",
    "role": "Rol cambiado.",
    "disabled": "Persona deshabilitada: sus sesiones terminaron y sus claves de API no sirven.",
    "enabled": "Persona habilitada de nuevo.",
    "password": "Contraseña cambiada: las sesiones abiertas con la anterior terminaron.",
}
ACTIONS = {
    "sign_in": "entró",
    "sign_in_failed": "intento de entrada fallido",
    "sign_out": "salió",
    "rules_published": "publicó reglas",
    "user_created": "agregó a una persona",
    "user_changed": "cambió a una persona",
    "token_created": "creó una clave de API",
    "mode_changed": "cambió quién atiende",
    "assigned": "asignó una conversación",
    "broadcast_created": "creó un envío masivo",
    "broadcast_cancelled": "canceló un envío masivo",
    "broadcast_paused": "pausó un envío masivo",
    "broadcast_resumed": "reanudó un envío masivo",
    "contact_forgotten": "borró un contacto",
    "messages_expired": "borró textos de mensajes viejos",
    "message_retried": "reintentó un mensaje",
    "message_cancelled": "canceló un mensaje",
    "saved_reply_created": "guardó una respuesta",
    "saved_reply_deleted": "borró una respuesta guardada",
    "contact_changed": "cambió etiquetas o datos de contactos",
    "contacts_imported": "importó contactos",
}
AUDIT_SHOWN = 300


async def _people_page(
    request: Request, session: Session, status: int = 200, **context: Any
) -> Response:
    people = await _service(request).accounts.users()
    base: dict[str, Any] = {
        "section": "people",
        "people": people,
        "builtin": OWNER,
        "roles": ROLE_LABELS,
        "form": {"name": "", "role": "agent"},
        "notice": NOTICES.get(request.query_params.get("ok", "")),
    }
    return _render(request, session, "people.html", status, **{**base, **context})


async def people_page(request: Request, session: Session) -> Response:
    return await _people_page(request, session)


async def add_person(request: Request, session: Session, form: dict[str, str]) -> Response:
    accounts = _service(request).accounts
    name, role = form.get("name", ""), form.get("role", "")
    error = None
    if form.get("password", "") != form.get("password2", ""):
        error = "Las dos contraseñas no coinciden."
    else:
        try:
            await accounts.add_user(session.user, name, role, form.get("password", ""))
        except AccountError as err:
            error = err.spanish
        except UserExists:
            error = f"Ya hay una persona llamada {normalized_name(name)}."
    if error is not None:
        kept = {"name": name, "role": role if role in ROLE_LABELS else "agent"}
        return await _people_page(request, session, 400, error=error, form=kept)
    return _redirect("/admin/people", ok="added")


async def change_person(request: Request, session: Session, form: dict[str, str]) -> Response:
    """One change per form: `role`, `disabled` ("1" or "0") or `password`."""
    accounts, name = _service(request).accounts, request.path_params["name"]
    change: dict[str, Any] = {}
    if "role" in form:
        change, done = {"role": form["role"]}, "role"
    elif "disabled" in form:
        disabled = form["disabled"] == "1"
        change, done = {"disabled": disabled}, "disabled" if disabled else "enabled"
    elif "password" in form:
        if form["password"] != form.get("password2", ""):
            return await _people_page(
                request, session, 400, error="Las dos contraseñas no coinciden."
            )
        change, done = {"password": form["password"]}, "password"
    else:
        raise Refused(400, "No se indicó ningún cambio.")
    try:
        await accounts.change_user(session.user, name, **change)
    except AccountError as err:
        return await _people_page(request, session, 400, error=err.spanish)
    except UnknownUserError:
        raise Refused(404, f"No hay ninguna persona llamada {name}.") from None
    return _redirect("/admin/people", ok=done)


async def audit_page(request: Request, session: Session) -> Response:
    value = request.query_params.get("before", "")
    before = min(int(value), 2**63 - 1) if value.isdigit() else None
    events = await _service(request).accounts.audit(AUDIT_SHOWN, before)
    older = events[-1].id if len(events) == AUDIT_SHOWN else None  # a keyset page
    return _render(
        request,
        session,
        "audit.html",
        section="audit",
        events=events,
        actions=ACTIONS,
        older=older,
        paged=before is not None,
    )


routes = [
    Route("/admin/people", page(people_page), methods=["GET"]),
    Route("/admin/people", action(add_person), methods=["POST"]),
    Route("/admin/people/{name}", action(change_person), methods=["POST"]),
    Route("/admin/audit", page(audit_page), methods=["GET"]),
]
