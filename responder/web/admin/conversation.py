"""One conversation: the thread, replying, the mode, the contact's fields."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from responder import engine
from responder import text as sms_text
from responder.inbox import MAX_NOTE, NoteRefused
from responder.phone import InvalidPhoneNumber, inbound_phone
from responder.store.models import (
    STATUSES,
    Conversation,
    Message,
    Note,
    OptedOutError,
    StoreUnavailable,
    UnknownContactError,
    UnknownUserError,
)
from responder.web.admin.core import (
    MAX_REPLY,
    NOT_AN_OWNER,
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

THREAD_PAGE = 200  # messages a conversation opens with, and per page loaded on scroll
MAX_LOADED = 5000  # messages a page that scrolled far back still gets on each poll
MAX_ID = 2**63 - 1


# -- one conversation ---------------------------------------------------------------------------


def _phone(request: Request) -> str:
    # Lenient, like the API: a conversation may come from a short code.
    try:
        return inbound_phone(
            request.path_params["phone"], _service(request).rules.current.settings.country
        )
    except InvalidPhoneNumber:
        raise Refused(404, "Ese número de teléfono no es válido.") from None


async def _conversation(request: Request, phone: str, session: Session) -> dict[str, Any]:
    service = _service(request)
    conversation = await service.conversation(phone)
    if conversation.unread:
        # A database that cannot write must not keep staff from reading: it stays unread.
        with contextlib.suppress(StoreUnavailable):
            await service.mark_read(phone)
            conversation = replace(conversation, unread=0)
    # The newest THREAD_PAGE messages; older ones come on scroll (conversation_older). A page
    # that loaded older ones polls with `from` (the oldest it shows): it gets all of them back.
    since = _from_id(request)
    if since is None:
        messages = await service.message_page(phone, None, THREAD_PAGE)
    else:
        messages = await service.message_page(phone, None, MAX_LOADED, since_id=since)
    older = await _older_link(request, phone, messages)
    named = await service.thread_broadcasts(phone, messages)
    notes = await service.inbox.notes(phone)
    if older is not None:  # the notes written since the oldest message shown
        notes = [n for n in notes if n.created_at >= messages[0].created_at]
    return {
        "section": "inbox",
        "failed_phones": await service.failed_phones([phone]),
        "c": conversation,
        "messages": messages,
        # Messages and internal notes in the order they were written.
        "thread": sorted([*messages, *notes], key=lambda item: item.created_at),
        "older": older,
        # Broadcast messages, and answers to them, name their broadcast (DESIGN §12).
        "named": named,
        "seen": messages[-1].id if messages else 0,
        # Broadcast messages, and answers to them, name their broadcast (DESIGN §12).
        "broadcasts": named,
        "typing": await service.inbox.typists(phone, besides=session.user),
        "people": await _people(request, conversation, session),
        "meanwhile": None,
        "note_error": None,
        "note_draft": "",
        "providers": list(service.providers),
        "default_provider": service.default_provider,
        "smart_encoding": service.rules.current.settings.smart_encoding,
        "max_reply": MAX_REPLY,
        "draft": "",
        "field_error": None,
    }


def _from_id(request: Request) -> int | None:
    value = request.query_params.get("from", "")
    return min(int(value), MAX_ID) if value.isdigit() else None


async def _older_link(request: Request, phone: str, messages: list[Message]) -> str | None:
    """Where the messages before the oldest of `messages` come from, or None: there are none."""
    if not messages or not await _service(request).message_page(phone, messages[0].id, 1):
        return None
    return f"/admin/partials/conversations/{phone}/older?before={messages[0].id}"


async def conversation_older(request: Request, session: Session) -> Response:
    """The page of messages (and notes) before `before`, for the thread to put above what it
    shows as the person scrolls up: a keyset page along the number's (phone, id) index."""
    service, phone = _service(request), _phone(request)
    value = request.query_params.get("before", "")
    if not value.isdigit():
        raise Refused(400, "Falta el mensaje desde el que cargar los anteriores.")
    before = min(int(value), MAX_ID)
    await service.conversation(phone)  # an unknown number is a 404
    messages = await service.message_page(phone, before, THREAD_PAGE)
    older = await _older_link(request, phone, messages)
    upto = await service.messages_by_id([before])
    notes = [
        n
        for n in await service.inbox.notes(phone)
        if (not upto or n.created_at < upto[0].created_at)
        and (older is None or n.created_at >= messages[0].created_at)
    ]
    thread: list[Message | Note] = sorted([*messages, *notes], key=lambda item: item.created_at)
    named = await service.thread_broadcasts(phone, messages)
    return _render(
        request,
        session,
        "_thread_page.html",
        c=await service.conversation(phone),
        thread=thread,
        older=older,
        first=messages[0].id if messages else before,
        named=named,
        broadcasts=named,
    )


async def _people(request: Request, conversation: Conversation, session: Session) -> list[str]:
    """Whom the conversation may be assigned to: the people who may sign in, the person
    looking, and whoever has it now."""
    names = {u.name for u in await _service(request).accounts.users() if not u.disabled}
    names.update(n for n in (session.user, conversation.assigned_to) if n)
    return sorted(names)


async def conversation_page(request: Request, session: Session) -> Response:
    context = await _conversation(request, _phone(request), session)
    return _render(request, session, "conversation.html", **context)


async def conversation_partial(request: Request, session: Session) -> Response:
    context = await _conversation(request, _phone(request), session)
    return _render(request, session, "_conversation_live.html", **context)


async def reply(request: Request, session: Session, form: dict[str, str]) -> Response:
    service, phone = _service(request), _phone(request)
    await service.conversation(phone)  # an unknown number is a 404, not a new contact
    # Browsers send line breaks as CRLF; one character each is what the counter showed.
    text = form.get("text", "").replace("\r\n", "\n").replace("\r", "\n")
    via = form.get("via") or None
    error, status = None, 400
    seen = int(form["seen"]) if form.get("seen", "").isdigit() else None
    meanwhile = None
    if seen is not None and form.get("confirm") != "1":
        meanwhile = await service.inbox.replied_meanwhile(phone, seen, session.user)
    if meanwhile is not None:
        # No silent double answer: the person reads what was sent, then sends or not.
        context = await _conversation(request, phone, session)
        context.update(draft=text, meanwhile=meanwhile)
        return _render(request, session, "conversation.html", 409, **context)
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
            if session.user is not None:
                with contextlib.suppress(StoreUnavailable):  # it vanishes in seconds anyway
                    await service.inbox.stopped_typing(phone, session.user)
            return _redirect(f"/admin/conversations/{phone}", ok="sent")
    context = await _conversation(request, phone, session)
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
        context = await _conversation(request, phone, session)
        context["field_error"] = str(err)
        return _render(request, session, "conversation.html", 400, **context)
    if changes:  # on the audit trail
        await service.contacts.change(session.user, phone, fields=changes)
    return _redirect(f"/admin/conversations/{phone}", ok="fields")


async def forget(request: Request, session: Session, form: dict[str, str]) -> Response:
    """Erases the person (DESIGN §13); owners only, and only when `confirm` names the number."""
    if not session.owner:
        raise Refused(403, NOT_AN_OWNER)
    phone = _phone(request)
    if form.get("confirm", "").strip() != phone:
        raise Refused(400, f"Para borrar el contacto escriba su número ({phone}) y confirme.")
    if await _service(request).forget(phone, session.user) is None:
        raise UnknownContactError(phone)
    return _redirect("/admin", ok="forgotten")


# -- the team inbox: assignment, status, internal notes, typing ---------------------------------


async def assign(request: Request, session: Session, form: dict[str, str]) -> Response:
    """`user`: a person's name, or empty for nobody."""
    user = form.get("user", "").strip() or None
    try:
        conversation = await _service(request).inbox.assign(_phone(request), user, session.user)
    except UnknownUserError:
        raise Refused(400, f"No hay ninguna persona activa llamada {user}.") from None
    done = "assigned" if conversation.assigned_to else "unassigned"
    return _redirect(f"/admin/conversations/{conversation.phone}", ok=done)


async def set_status(request: Request, session: Session, form: dict[str, str]) -> Response:
    status = form.get("status")
    if status not in STATUSES:
        raise Refused(400, "Estado desconocido: use open o resolved.")
    conversation = await _service(request).inbox.set_status(_phone(request), status)
    return _redirect(f"/admin/conversations/{conversation.phone}", ok=status)


async def add_note(request: Request, session: Session, form: dict[str, str]) -> Response:
    service, phone = _service(request), _phone(request)
    try:
        await service.inbox.add_note(phone, session.user, form.get("note", ""))
    except NoteRefused:
        context = await _conversation(request, phone, session)
        context["note_error"] = f"Escriba la nota (hasta {MAX_NOTE} caracteres)."
        context["note_draft"] = form.get("note", "")[:MAX_NOTE]
        return _render(request, session, "conversation.html", 400, **context)
    return _redirect(f"/admin/conversations/{phone}", ok="note")


async def typing(request: Request, session: Session, form: dict[str, str]) -> Response:
    """The reply box says its person is typing (every few seconds while they type)."""
    if session.user is not None:
        await _service(request).inbox.typing(_phone(request), session.user)
    return Response(status_code=204)


async def sms_alphabet(request: Request, session: Session) -> Response:
    """What the reply box needs to count SMS exactly as the server will."""
    body = {
        "basic": "".join(sorted(sms_text.GSM7_BASIC)),
        "extended": "".join(sorted(sms_text.GSM7_EXTENDED)),
        "smart": sms_text.smart_encode_table(),
        "limit": engine.SMS_LIMIT,
    }
    return JSONResponse(body, headers={"Cache-Control": "private, max-age=3600"})
