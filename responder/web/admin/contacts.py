"""The admin's Contactos page (DESIGN §12): every contact, searched (a number in any form, a
field's value, a label) and filtered by label, a keyset page at a time; labels added to or
removed from many at once; one contact's labels and fields edited; and, for owners, the CSV
import (checked line by line first, all or nothing) and export."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from responder.contacts import MAX_QUERY, decode_cursor
from responder.contacts_csv import MAX_IMPORT_BYTES
from responder.rules.reader import LABEL
from responder.web.admin.conversation import _field_changes, _phone
from responder.web.admin.core import (
    EXPIRED_FORM,
    NOT_AN_OWNER,
    Refused,
    _answer,
    _open_session,
    _redirect,
    _render,
    _same_origin,
    _service,
    action,
    page,
)
from responder.web.forms import BodyTooLarge, read_body
from responder.web.sessions import Session

MAX_LABELS = 20  # on one contact, typed in its form
BAD_LABEL = "Etiqueta «{}»: use letras sin acentos, números, _ o - (hasta 40), sin espacios."
TOO_LARGE = f"El archivo es demasiado grande: como máximo {MAX_IMPORT_BYTES // (1024 * 1024)} MB."
UNREADABLE_FORM = "No se pudo leer el formulario: suba el archivo desde la página."
REFUSED_IMPORT = "No se importó nada: corrija estas líneas y vuelva a subir el archivo."


def _filters(params: Any) -> tuple[str, str | None]:
    query = str(params.get("q", "")).strip()[:MAX_QUERY]
    label = str(params.get("label", "")).strip() or None
    return query, label if label is None or LABEL.fullmatch(label) else None


def _link(**query: str | None) -> str:
    kept = {k: v for k, v in query.items() if v}
    return "/admin/contacts" + ("?" + urlencode(kept) if kept else "")


def _notice(params: Any) -> str | None:
    if "imported" in params:
        imported, updated = params.get("imported", "0"), params.get("updated", "0")
        return (
            f"Importación lista: {imported} contactos nuevos, {updated} actualizados. "
            "Los que se habían dado de baja siguen de baja."
        )
    if "labeled" in params:
        verb = "quitó de" if params.get("do") == "remove" else "agregó a"
        return (
            f"Etiqueta «{params.get('done_label', '')}»: se {verb} {params['labeled']} contactos."
        )
    if "saved" in params:
        return "Contacto guardado."
    return None


async def _contacts(
    request: Request, session: Session, status: int = 200, **extra: Any
) -> Response:
    service = _service(request)
    params = request.query_params
    query, label = _filters(params)
    after = decode_cursor(params.get("cursor", "")) or ""
    records, cursor = await service.contacts.page(after, label=label, text=query)
    context: dict[str, Any] = {
        "section": "contacts",
        "contacts": records,
        "q": query,
        "label": label or "",
        "next": _link(q=query, label=label, cursor=cursor) if cursor else None,
        "first": _link(q=query, label=label) if after else None,
        "notice": _notice(params),
        "problems": [],
        "problem_count": 0,
        "max_mb": MAX_IMPORT_BYTES // (1024 * 1024),
    }
    return _render(request, session, "contacts.html", status, **{**context, **extra})


async def contacts_page(request: Request, session: Session) -> Response:
    return await _contacts(request, session)


async def label_many(request: Request, session: Session, form: dict[str, str]) -> Response:
    """`label` added (`do=add`) to or removed (`do=remove`) from the ticked contacts."""
    label = form.get("label", "").strip()
    remove = form.get("do") == "remove"
    phones = [key[4:] for key, value in form.items() if key.startswith("sel.") and value]
    if not LABEL.fullmatch(label):
        raise Refused(400, BAD_LABEL.format(label))
    if not phones:
        raise Refused(400, "No marcó ningún contacto: marque las casillas de la lista.")
    add, take = ([], [label]) if remove else ([label], [])
    found = await _service(request).contacts.label_many(session.user, phones, add, take)
    back = {"q": form.get("f_q", ""), "label": form.get("f_label", "")}
    done = {"labeled": str(len(found)), "done_label": label, "do": "remove" if remove else "add"}
    return _redirect("/admin/contacts", **{k: v for k, v in {**back, **done}.items() if v})


async def _upload(request: Request) -> tuple[dict[str, str], bytes | None]:
    """The form's text fields and the uploaded file's bytes (None: no file chosen)."""
    body = await read_body(request, MAX_IMPORT_BYTES + 64 * 1024)

    async def replay() -> Message:  # the stream was read by read_body
        return {"type": "http.request", "body": body, "more_body": False}

    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Refused(400, "Suba el archivo con el formulario de la página.")
    try:
        form = await Request(request.scope, replay).form(
            max_files=1, max_fields=10, max_part_size=MAX_IMPORT_BYTES + 1
        )
    except (HTTPException, MultiPartException):  # a body that is not the page's form
        raise Refused(
            400, "No se pudo leer el formulario: suba el archivo desde la página."
        ) from None
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("file")
    data = await upload.read() if isinstance(upload, UploadFile) and upload.filename else None
    await form.close()
    return fields, data


def import_action() -> Any:
    """The import form: multipart (a file), so not `action`, with the same checks."""

    async def endpoint(request: Request) -> Response:
        session = await _open_session(request)

        async def work() -> Response:
            if not _same_origin(request):
                raise Refused(403, "Formulario rechazado: viene de otro sitio.")
            if not session.authenticated:
                return _redirect("/admin/login")
            try:
                fields, data = await _upload(request)
            except BodyTooLarge:
                raise Refused(413, TOO_LARGE) from None
            if not session.csrf_matches(fields.get("csrf")):
                raise Refused(403, EXPIRED_FORM)
            if not session.owner:
                raise Refused(403, NOT_AN_OWNER)
            if data is None:
                return await _contacts(request, session, 400, error="Elija un archivo CSV.")
            if len(data) > MAX_IMPORT_BYTES:
                raise Refused(413, TOO_LARGE)
            dry_run = "dry_run" in fields
            report = await _service(request).contacts.import_csv(
                session.user, data, dry_run=dry_run
            )
            if report.problems:
                return await _contacts(
                    request,
                    session,
                    422,
                    error=REFUSED_IMPORT,
                    problems=report.problems,
                    problem_count=report.problem_count,
                )
            if dry_run:
                notice = (
                    f"El archivo está bien: importaría {report.imported} contactos nuevos y "
                    f"actualizaría {report.updated}. No se guardó nada todavía."
                )
                return await _contacts(request, session, notice=notice)
            return _redirect(
                "/admin/contacts", imported=str(report.imported), updated=str(report.updated)
            )

        return await _answer(request, session, work)

    return endpoint


async def export(request: Request, session: Session) -> Response:
    if not session.owner:
        raise Refused(403, NOT_AN_OWNER)
    headers = {"Content-Disposition": 'attachment; filename="contactos.csv"'}
    return StreamingResponse(
        _service(request).contacts.export_csv(),
        media_type="text/csv; charset=utf-8",
        headers=headers,
    )


async def _contact(
    request: Request, session: Session, phone: str, status: int = 200, **extra: Any
) -> Response:
    record = await _service(request).contacts.record(phone)
    context = {"section": "contacts", "r": record, "notice": _notice(request.query_params)}
    return _render(request, session, "contact.html", status, **{**context, **extra})


async def contact_page(request: Request, session: Session) -> Response:
    return await _contact(request, session, _phone(request))


def _labels(raw: str) -> list[str]:
    labels = [part for part in re.split(r"[\s,;]+", raw) if part]
    for label in labels:
        if not LABEL.fullmatch(label):
            raise ValueError(BAD_LABEL.format(label))
    if len(labels) > MAX_LABELS:
        raise ValueError(f"Como máximo {MAX_LABELS} etiquetas por contacto.")
    return list(dict.fromkeys(labels))


async def save_contact(request: Request, session: Session, form: dict[str, str]) -> Response:
    """The contact's whole set of labels, and its fields (as on the conversation's panel)."""
    service, phone = _service(request), _phone(request)
    conversation = await service.conversation(phone)
    try:
        labels = _labels(form.get("labels", ""))
        changes = _field_changes(conversation, form)
    except ValueError as err:
        return await _contact(request, session, phone, 400, error=str(err))
    await service.contacts.change(session.user, phone, fields=changes, labels=(labels, [], True))
    return _redirect(f"/admin/contacts/{phone}", saved="1")


routes = [
    Route("/admin/contacts", page(contacts_page), methods=["GET"]),
    Route("/admin/contacts/import", import_action(), methods=["POST"]),
    Route("/admin/contacts/export", page(export), methods=["GET"]),
    Route("/admin/contacts/labels", action(label_many), methods=["POST"]),
    Route("/admin/contacts/{phone}", page(contact_page), methods=["GET"]),
    Route("/admin/contacts/{phone}", action(save_contact), methods=["POST"]),
]
