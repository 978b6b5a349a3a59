"""The API of the contact book (DESIGN §12): contacts listed a keyset page at a time (search,
label), CSV import (owners; all or nothing) and export (owners; streamed). Same bearer tokens
and errors as responder/web/api.py, where PATCH /api/contacts/{phone} lives."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from responder.contacts import PAGE, decode_cursor
from responder.contacts_csv import MAX_IMPORT_BYTES
from responder.rules.reader import LABEL
from responder.web.api import ApiError, _endpoint, _service, caller
from responder.web.forms import BodyTooLarge, read_body

MAX_LIMIT = 500
EXPORT_NAME = "contactos.csv"


async def list_contacts(request: Request) -> Response:
    """`label`, `q` (a number in any form, a field's value, a label), `cursor` (a page's
    `next`), `limit` (at most 500)."""
    params = request.query_params
    label = params.get("label") or None
    if label is not None and not LABEL.fullmatch(label):
        raise ApiError(400, "'label': letters, digits, _ or -, at most 40")
    after = ""
    if params.get("cursor"):
        found = decode_cursor(params["cursor"])
        if found is None:
            raise ApiError(400, "'cursor' is not one this API gave")
        after = found
    try:
        limit = min(MAX_LIMIT, max(1, int(params.get("limit", str(PAGE)))))
    except ValueError:
        raise ApiError(400, "'limit' must be a number") from None
    query = params.get("q", "").strip()[:100]
    book = _service(request).contacts
    records, after_page = await book.page(after, label=label, text=query, limit=limit)
    return JSONResponse({"contacts": [r.as_json() for r in records], "next": after_page})


async def import_contacts(request: Request) -> Response:
    """The body is the CSV file; `?dry_run=1` checks and counts without writing. 422 with
    every problem (line and reason) and nothing written when the file is not clean."""
    try:
        body = await read_body(request, MAX_IMPORT_BYTES)
    except BodyTooLarge:
        raise ApiError(
            413, f"the file is too large ({MAX_IMPORT_BYTES // (1024 * 1024)} MiB at most)"
        ) from None
    dry_run = request.query_params.get("dry_run", "") in ("1", "true", "yes")
    report = await _service(request).contacts.import_csv(
        caller(request).name, body, dry_run=dry_run
    )
    return JSONResponse(report.as_json(), status_code=422 if report.problems else 200)


async def export_contacts(request: Request) -> Response:
    """Every contact as CSV, the import's columns; streamed a page at a time."""
    book = _service(request).contacts
    headers = {"Content-Disposition": f'attachment; filename="{EXPORT_NAME}"'}
    return StreamingResponse(
        book.export_csv(), media_type="text/csv; charset=utf-8", headers=headers
    )


routes = [
    Route("/api/contacts", _endpoint(list_contacts), methods=["GET"]),
    Route("/api/contacts/import", _endpoint(import_contacts, owner=True), methods=["POST"]),
    Route("/api/contacts/export", _endpoint(export_contacts, owner=True), methods=["GET"]),
]
