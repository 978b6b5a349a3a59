"""One conversation: the thread, replying, the mode, the contact's fields."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from responder import engine
from responder import text as sms_text
from responder.phone import InvalidPhoneNumber, inbound_phone
from responder.store.models import (
    Conversation,
    OptedOutError,
    StoreUnavailable,
)
from responder.web.admin.core import (
    MAX_REPLY,
    OPTED_OUT_ERROR,
    STORE_UNAVAILABLE,
    Refused,
    _redirect,
    _render,
    _service,
)
from responder.web.api import FIELD_NAME_RE
from responder.web.sessions import Session

if TYPE_CHECKING:
    pass


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
        "failed_phones": await service.failed_phones([phone]),
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
