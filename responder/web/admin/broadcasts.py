"""Difusiones (DESIGN §12): the broadcasts' list, the form that previews then sends or schedules
one, and each broadcast's progress page with its recipients. Everyone signed in may look; only
owners create, pause, resume and cancel. Every step goes through the Service's broadcast
methods, as the API does (responder/web/api_broadcasts.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from responder import failures
from responder.broadcasts import (
    MAX_NAME,
    MAX_TEXT,
    RECIPIENT_STATUSES,
    Broadcast,
    BroadcastError,
    BroadcastPreview,
    BroadcastStateError,
    Segment,
    UnknownBroadcastError,
    segment_from,
)
from responder.moments import SEND_HORIZON, BadMoment, within_horizon
from responder.store.broadcast_sql import BROADCAST_CANCELLED, SKIPPED_OPTED_OUT
from responder.store.models import CANCELLED_BY
from responder.web.admin.core import (
    NOT_AN_OWNER,
    Refused,
    _redirect,
    _render,
    _service,
    action,
    page,
    partial,
)
from responder.web.sessions import Session

LIST_SIZE = 30
RECIPIENTS_SHOWN = 50
FIELD_ROWS = 3  # field conditions the form offers
POLL_MS = 1500  # the progress page asks for the counts this often while the broadcast runs
MAX_ID = 2**63 - 1
STATUS_LABELS = {
    "scheduled": "programada",
    "running": "enviándose",
    "paused": "en pausa",
    "done": "terminada",
    "cancelled": "cancelada",
}
RECIPIENT_LABELS = {
    "queued": "en cola",
    "sent": "enviados",
    "delivered": "entregados",
    "failed": "fallaron",
    "skipped": "omitidos",
    "cancelled": "cancelados",
}
RECIPIENT_ONE = {
    "queued": "en cola",
    "sent": "enviado",
    "delivered": "entregado",
    "failed": "falló",
    "skipped": "omitido",
    "cancelled": "cancelado",
}
NOTICES = {
    "created": "Difusión creada: ya se está enviando.",
    "scheduled": "Difusión programada.",
    "paused": "Difusión en pausa: no sale ningún mensaje más hasta que la reanude.",
    "resumed": "Difusión reanudada.",
    "cancelled": "Difusión cancelada: los mensajes que no habían salido no se enviarán.",
}


def waiting_words(until: datetime | None) -> str | None:
    """Why a running broadcast sends nothing now (the quiet hours, until a local time), in
    Spanish."""
    if until is None:
        return None
    return f"Horas de silencio: los mensajes salen desde el {until:%d/%m/%Y} a las {until:%H:%M}."


def recipient_reason(status: str, error: str | None, via: str) -> str | None:
    """A recipient's reason, as the shop would say it."""
    if not error:
        return None
    if error == SKIPPED_OPTED_OUT:
        return "Se dio de baja"
    if error == BROADCAST_CANCELLED:
        return "Cancelado con la difusión"
    if error == "skipped: not a valid mobile number":
        return "No es un número móvil válido"
    if error.startswith("skipped: the text failed for it"):
        return "El texto falló para este contacto"
    if error == "skipped: the text came out empty for it":
        return "El texto quedó vacío para este contacto"
    if error.startswith(CANCELLED_BY + "the broadcast"):
        return "Cancelado con la difusión"
    return failures.reason(error, via) if status == "failed" else error


@dataclass
class Draft:
    """The form as the person filled it in, to show it again."""

    name: str = ""
    text: str = ""
    labels: set[str] = field(default_factory=set)
    fields: list[tuple[str, str]] = field(default_factory=lambda: [("", "")] * FIELD_ROWS)
    days: str = ""
    when: str = "now"
    send_at: str = ""
    via: str = ""

    def hidden(self) -> list[tuple[str, str]]:
        """The same draft as form fields, for the confirmation form."""
        pairs = [("name", self.name), ("text", self.text), ("days", self.days)]
        pairs += [(f"label:{label}", "1") for label in sorted(self.labels)]
        for i, (name, value) in enumerate(self.fields, start=1):
            pairs += [(f"field_name_{i}", name), (f"field_value_{i}", value)]
        pairs += [("when", self.when), ("send_at", self.send_at), ("via", self.via)]
        return pairs


def draft_from(form: Any) -> Draft:
    """A Draft from the form's (or the estimate's query) fields; never raises."""
    labels = {k[len("label:") :] for k, v in form.items() if k.startswith("label:") and v}
    rows = [
        (form.get(f"field_name_{i}", "").strip(), form.get(f"field_value_{i}", "").strip())
        for i in range(1, FIELD_ROWS + 1)
    ]
    return Draft(
        name=form.get("name", "").strip(),
        text=form.get("text", "").replace("\r\n", "\n"),
        labels={label for label in labels if label.strip()},
        fields=rows,
        days=form.get("days", "").strip(),
        when="later" if form.get("when") == "later" else "now",
        send_at=form.get("send_at", "").strip(),
        via=form.get("via", "").strip(),
    )


class FormError(ValueError):
    """A draft that cannot be previewed or sent; the message is Spanish."""


def segment_of(draft: Draft) -> Segment:
    fields: dict[str, str] = {}
    for name, value in draft.fields:
        if name and not value:
            raise FormError(f"Escriba el valor que debe tener el campo «{name}».")
        if value and not name:
            raise FormError(f"Escriba el nombre del campo que debe valer «{value}».")
        if name:
            fields[name] = value
    days: int | None = None
    if draft.days:
        if not draft.days.isdigit():
            raise FormError("Los días de actividad deben ser un número entero entre 1 y 3650.")
        days = int(draft.days[:6])
    try:
        return segment_from(
            {"labels": sorted(draft.labels), "fields": fields, "active_within_days": days}
        )
    except BroadcastError as err:
        raise FormError(err.spanish) from None


def send_at_of(draft: Draft, request: Request) -> datetime | None:
    """The chosen moment in the shop's time zone; None to send now."""
    if draft.when != "later":
        return None
    if not draft.send_at:
        raise FormError("Elija la fecha y la hora del envío, o elija enviarla ahora.")
    service = _service(request)
    try:
        local = datetime.fromisoformat(draft.send_at)
    except ValueError:
        raise FormError("Esa fecha y hora no es válida.") from None
    moment = local.replace(tzinfo=service.rules.current.settings.timezone)
    now = service.clock()
    if moment <= now:
        raise FormError("Esa fecha y hora ya pasó: elija una futura, o envíela ahora.")
    try:
        return within_horizon(moment, now, SEND_HORIZON)
    except BadMoment:
        raise FormError("Esa fecha está demasiado lejos: como máximo dentro de un año.") from None


def _via(draft: Draft) -> str | None:
    return draft.via or None


def _owner(session: Session) -> None:
    if not session.owner:
        raise Refused(403, NOT_AN_OWNER)


def _id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        raise Refused(404, "No hay ninguna difusión con ese número.")
    return int(raw)


async def _broadcast(request: Request) -> Broadcast:
    try:
        return await _service(request).get_broadcast(_id(request))
    except UnknownBroadcastError:
        raise Refused(404, "No hay ninguna difusión con ese número.") from None


def progress(broadcast: Broadcast) -> dict[str, Any]:
    """What the progress page shows and polls: statuses, counts, the bar's pieces, waiting."""
    total = broadcast.recipients
    counts = {key: broadcast.counts.get(key, 0) for key in RECIPIENT_STATUSES}
    settled = total - counts["queued"]
    bar, x = [], 0
    for key in ("delivered", "sent", "failed", "skipped", "cancelled"):
        width = round(1000 * counts[key] / total) if total else 0
        bar.append({"key": key, "x": x, "width": width})
        x += width
    return {
        "id": broadcast.id,
        "status": broadcast.status,
        "status_label": STATUS_LABELS.get(broadcast.status, broadcast.status),
        "recipients": total,
        "counts": counts,
        "settled": settled,
        "percent": round(100 * settled / total) if total else 100,
        "bar": bar,
        "waiting": waiting_words(broadcast.waiting_until),
        "final": broadcast.status in ("done", "cancelled") and counts["queued"] == 0,
    }


# -- pages -----------------------------------------------------------------------------------


async def list_page(request: Request, session: Session) -> Response:
    raw = request.query_params.get("before", "")
    before = min(int(raw), MAX_ID) if raw.isdigit() else None
    found = await _service(request).list_broadcasts(before, LIST_SIZE)
    following = found[-1].id if len(found) == LIST_SIZE else None
    return _render(
        request,
        session,
        "broadcasts.html",
        section="broadcasts",
        broadcasts=[(b, progress(b)) for b in found],
        following=following,
        first_page=before is None,
        status_labels=STATUS_LABELS,
        notice=NOTICES.get(request.query_params.get("ok", "")),
    )


async def _form_page(
    request: Request,
    session: Session,
    draft: Draft,
    status: int = 200,
    *,
    error: str | None = None,
    preview: BroadcastPreview | None = None,
    send_at: datetime | None = None,
) -> Response:
    service = _service(request)
    labels = await service.label_counts()
    known = {name for name, _ in labels}
    return _render(
        request,
        session,
        "broadcast_new.html",
        status,
        section="broadcasts",
        draft=draft,
        labels=labels,
        lost_labels=sorted(draft.labels - known),
        providers=list(service.providers),
        default_provider=service.default_provider,
        preview=preview,
        send_at=send_at,
        error=error,
        smart=service.rules.current.settings.smart_encoding,
        max_text=MAX_TEXT,
        max_name=MAX_NAME,
        field_rows=FIELD_ROWS,
    )


async def new_page(request: Request, session: Session) -> Response:
    _owner(session)
    return await _form_page(request, session, Draft())


async def preview_step(request: Request, session: Session, form: dict[str, str]) -> Response:
    """The form again with who would get it and how it reads, and the button that sends."""
    _owner(session)
    draft = draft_from(form)
    try:
        segment = segment_of(draft)
        send_at = send_at_of(draft, request)
        found = await _service(request).preview_broadcast(draft.text, segment, _via(draft))
    except FormError as err:
        return await _form_page(request, session, draft, 400, error=str(err))
    except BroadcastError as err:
        return await _form_page(request, session, draft, 400, error=err.spanish)
    error = None
    if found.recipients == 0:
        error = "Nadie cumple estas condiciones: cambie el segmento."
    return await _form_page(request, session, draft, preview=found, send_at=send_at, error=error)


async def create(request: Request, session: Session, form: dict[str, str]) -> Response:
    _owner(session)
    draft = draft_from(form)
    try:
        segment = segment_of(draft)
        send_at = send_at_of(draft, request)
        created = await _service(request).create_broadcast(
            draft.text,
            segment,
            send_at=send_at,
            via=_via(draft),
            name=draft.name or None,
            by=session.user,
        )
    except FormError as err:
        return await _form_page(request, session, draft, 400, error=str(err))
    except BroadcastError as err:
        return await _form_page(request, session, draft, 400, error=err.spanish)
    except BadMoment:
        error = "Esa fecha está demasiado lejos: como máximo dentro de un año."
        return await _form_page(request, session, draft, 400, error=error)
    done = "scheduled" if created.status == "scheduled" else "created"
    return _redirect(f"/admin/broadcasts/{created.id}", ok=done)


async def estimate(request: Request, session: Session, form: dict[str, str]) -> Response:
    """The form's live estimate: recipients, SMS per message and in all, or the error. A POST
    with the form's own fields (a text of ten SMS does not fit in a URL), changing nothing."""
    _owner(session)
    draft = draft_from(form)
    headers = {"Cache-Control": "no-store"}
    if not draft.text.strip():
        draft.text = "."  # nothing written yet: still count who would get it
    try:
        found = await _service(request).preview_broadcast(
            draft.text, segment_of(draft), _via(draft)
        )
    except FormError as err:
        return JSONResponse({"error": str(err)}, headers=headers)
    except BroadcastError as err:
        return JSONResponse({"error": err.spanish}, headers=headers)
    body = {
        "recipients": found.recipients,
        "parts": found.parts_per_message,
        "estimated_segments": found.estimated_segments,
        "encoding": found.encoding,
    }
    return JSONResponse(body, headers=headers)


async def broadcast_page(request: Request, session: Session) -> Response:
    broadcast = await _broadcast(request)
    status = request.query_params.get("status") or None
    if status not in (None, *RECIPIENT_STATUSES):
        status = None
    after = request.query_params.get("after") or None
    shown = await _service(request).broadcast_recipients(
        broadcast.id, status=status, after=after, limit=RECIPIENTS_SHOWN
    )
    following = shown[-1].phone if len(shown) == RECIPIENTS_SHOWN else None
    reasons = [recipient_reason(r.status, r.error, broadcast.via) for r in shown]
    return _render(
        request,
        session,
        "broadcast.html",
        section="broadcasts",
        b=broadcast,
        p=progress(broadcast),
        recipients=list(zip(shown, reasons, strict=True)),
        filter=status,
        after=after,
        following=following,
        statuses=RECIPIENT_STATUSES,
        recipient_labels=RECIPIENT_LABELS,
        status_labels=STATUS_LABELS,
        recipient_one=RECIPIENT_ONE,
        poll_ms=POLL_MS,
        notice=NOTICES.get(request.query_params.get("ok", "")),
    )


async def progress_json(request: Request, session: Session) -> Response:
    try:
        broadcast = await _service(request).get_broadcast(_id(request))
    except (UnknownBroadcastError, Refused):
        return JSONResponse({"error": "no such broadcast"}, status_code=404)
    return JSONResponse(progress(broadcast), headers={"Cache-Control": "no-store"})


def _change(act: str) -> Any:
    async def change(request: Request, session: Session, form: dict[str, str]) -> Response:
        _owner(session)
        broadcast_id = _id(request)
        try:
            await _service(request).change_broadcast(broadcast_id, act, session.user)
        except UnknownBroadcastError:
            raise Refused(404, "No hay ninguna difusión con ese número.") from None
        except BroadcastStateError as err:
            shown = STATUS_LABELS.get(err.status, err.status)
            verb = {"pause": "pausar", "resume": "reanudar", "cancel": "cancelar"}[act]
            raise Refused(409, f"Esta difusión está {shown}: ya no se puede {verb}.") from None
        done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[act]
        return _redirect(f"/admin/broadcasts/{broadcast_id}", ok=done)

    return change


routes = [
    Route("/admin/broadcasts", page(list_page), methods=["GET"]),
    Route("/admin/broadcasts", action(create), methods=["POST"]),
    Route("/admin/broadcasts/new", page(new_page), methods=["GET"]),
    Route("/admin/broadcasts/preview", action(preview_step), methods=["POST"]),
    Route("/admin/broadcasts/estimate", action(estimate), methods=["POST"]),
    Route("/admin/broadcasts/{id}", page(broadcast_page), methods=["GET"]),
    Route("/admin/partials/broadcasts/{id}", partial(progress_json), methods=["GET"]),
    *(
        Route(f"/admin/broadcasts/{{id}}/{act}", action(_change(act)), methods=["POST"])
        for act in ("pause", "resume", "cancel")
    ),
]
