"""What a person does to one message from the thread: Reintentar a failed one, Cancelar one
still waiting in the queue."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from responder.store.models import MessageStateError, OptedOutError, UnknownMessageError
from responder.web import views
from responder.web.admin.conversation import _conversation
from responder.web.admin.core import (
    OPTED_OUT_ERROR,
    Refused,
    _redirect,
    _render,
    _service,
    action,
)
from responder.web.sessions import Session

NO_MESSAGE = "No hay ningún mensaje saliente con ese número."


def _message_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise Refused(404, NO_MESSAGE)
    return int(raw)


async def _act(request: Request, session: Session, retry: bool) -> Response:
    service, message_id = _service(request), _message_id(request)
    actor = session.user
    if actor is None:  # `action` lets only signed-in people this far
        raise Refused(403, "Entre de nuevo para hacer esto.")
    found, _ = await service.message_with_attempts(message_id)
    if found is None or found.direction != "out":
        raise Refused(404, NO_MESSAGE)
    try:
        if retry:
            await service.retry_message(message_id, actor)
        else:
            await service.cancel_message(message_id, actor)
    except UnknownMessageError:
        raise Refused(404, NO_MESSAGE) from None
    except OptedOutError:
        error = OPTED_OUT_ERROR
    except MessageStateError as err:
        now = views.STATUS_LABELS.get(err.status, err.status)
        if retry:
            error = f"Solo se reintenta un mensaje que falló; este ya está «{now}»."
        elif err.status == "scheduled":
            error = "Este mensaje ya está en la agenda del proveedor: no se puede cancelar aquí."
        else:
            error = f"Este mensaje ya no está en cola (está «{now}»): no se puede cancelar."
    else:
        return _redirect(
            f"/admin/conversations/{found.phone}", ok="retried" if retry else "cancelled"
        )
    context = await _conversation(request, found.phone, session)
    context["error"] = error
    return _render(request, session, "conversation.html", 409, **context)


async def retry(request: Request, session: Session, form: dict[str, str]) -> Response:
    return await _act(request, session, retry=True)


async def cancel(request: Request, session: Session, form: dict[str, str]) -> Response:
    return await _act(request, session, retry=False)


routes = [
    Route("/admin/messages/{id}/retry", action(retry), methods=["POST"]),
    Route("/admin/messages/{id}/cancel", action(cancel), methods=["POST"]),
]
