"""Respuestas guardadas: the owners' page to add and delete them, and what the reply box's
picker asks for (every saved reply filled in for one conversation), for anyone signed in."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from responder.saved_replies import MAX_TEXT, SavedReplyError
from responder.store.models import SavedReplyExists
from responder.web.admin.conversation import _phone
from responder.web.admin.core import Refused, _redirect, _render, _service, action, page, partial
from responder.web.sessions import Session

NOTICES = {
    "added": "Respuesta guardada: el equipo la encuentra escribiendo / en la respuesta.",
    "deleted": "Respuesta borrada.",
}


async def _page(request: Request, session: Session, status: int = 200, **context: Any) -> Response:
    base: dict[str, Any] = {
        "section": "saved_replies",
        "replies": await _service(request).saved_replies.all(),
        "form": {"name": "", "text": ""},
        "max_text": MAX_TEXT,
        "notice": NOTICES.get(request.query_params.get("ok", "")),
    }
    return _render(request, session, "saved_replies.html", status, **{**base, **context})


async def saved_replies_page(request: Request, session: Session) -> Response:
    return await _page(request, session)


async def add(request: Request, session: Session, form: dict[str, str]) -> Response:
    name, text = form.get("name", ""), form.get("text", "")
    try:
        await _service(request).saved_replies.add(session.user, name, text)
    except SavedReplyError as err:
        error = err.spanish
    except SavedReplyExists:
        error = f"Ya hay una respuesta llamada {name.strip().lower()}."
    else:
        return _redirect("/admin/saved-replies", ok="added")
    return await _page(request, session, 400, error=error, form={"name": name, "text": text})


async def delete(request: Request, session: Session, form: dict[str, str]) -> Response:
    raw = request.path_params["id"]
    reply_id = int(raw) if raw.isdigit() and int(raw) < 2**63 else 0
    if await _service(request).saved_replies.delete(session.user, reply_id) is None:
        raise Refused(404, "Esa respuesta guardada ya no existe.")
    return _redirect("/admin/saved-replies", ok="deleted")


async def picker(request: Request, session: Session) -> Response:
    """Every saved reply filled in for this conversation, for the `/` picker."""
    filled = await _service(request).saved_replies.filled(_phone(request))
    return JSONResponse(
        {"saved_replies": [f.as_json() for f in filled]}, headers={"Cache-Control": "no-store"}
    )


routes = [
    Route("/admin/saved-replies", page(saved_replies_page), methods=["GET"]),
    Route("/admin/saved-replies", action(add), methods=["POST"]),
    Route("/admin/saved-replies/{id}/delete", action(delete), methods=["POST"]),
    Route("/admin/partials/conversations/{phone}/saved-replies", partial(picker), methods=["GET"]),
]
