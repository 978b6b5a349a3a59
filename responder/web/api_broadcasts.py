"""The broadcasts API (DESIGN §12): owners create, preview, pause, resume and cancel; anyone with
a token reads them and their recipients. Same bearer tokens and errors as responder/web/api.py."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from responder.broadcasts import (
    BroadcastError,
    BroadcastStateError,
    Segment,
    UnknownBroadcastError,
    segment_from,
)
from responder.web.api import (
    MAX_ROWID,
    ApiError,
    _endpoint,
    _json,
    _moment,
    _service,
    caller,
)

BODY_KEYS = {"text", "name", "segment", "send_at", "via"}


def _id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ROWID:
        raise ApiError(404, f"no broadcast {raw}")
    return int(raw)


async def _body(request: Request) -> tuple[dict[str, Any], Segment]:
    data = await _json(request)
    unknown = set(data) - BODY_KEYS
    if unknown:
        raise ApiError(400, f"unknown keys: {', '.join(sorted(unknown))}")
    if not isinstance(data.get("text"), str):
        raise ApiError(400, "'text' must be a non-empty string")
    for key in ("via", "name"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ApiError(400, f"'{key}' must be a string")
    try:
        return data, segment_from(data.get("segment"))
    except BroadcastError as err:
        raise ApiError(400, err.message) from None


async def preview(request: Request) -> Response:
    """Who would get it and how it reads, changing nothing."""
    data, segment = await _body(request)
    try:
        found = await _service(request).preview_broadcast(data["text"], segment, data.get("via"))
    except BroadcastError as err:
        raise ApiError(400, err.message) from None
    return JSONResponse(found.as_json())


async def create(request: Request) -> Response:
    data, segment = await _body(request)
    service = _service(request)
    send_at = _moment(data.get("send_at"), service)
    try:
        created = await service.create_broadcast(
            data["text"],
            segment,
            send_at=send_at,
            via=data.get("via"),
            name=data.get("name"),
            by=caller(request).name,
        )
    except BroadcastError as err:
        raise ApiError(400, err.message) from None
    return JSONResponse({"broadcast": created.as_json()}, status_code=201)


async def list_broadcasts(request: Request) -> Response:
    """Newest first, 50 a page; `?before=ID` (the `next` of the last page) goes on."""
    try:
        limit = min(200, max(1, int(request.query_params.get("limit", "50"))))
        before = request.query_params.get("before")
        before_id = min(MAX_ROWID, max(0, int(before))) if before else None
    except ValueError:
        raise ApiError(400, "limit and before must be numbers") from None
    found = await _service(request).list_broadcasts(before_id, limit)
    following = found[-1].id if len(found) == limit else None
    return JSONResponse({"broadcasts": [b.as_json() for b in found], "next": following})


async def get_broadcast(request: Request) -> Response:
    broadcast_id = _id(request)
    try:
        found = await _service(request).get_broadcast(broadcast_id)
    except UnknownBroadcastError:
        raise ApiError(404, f"no broadcast {broadcast_id}") from None
    return JSONResponse({"broadcast": found.as_json()})


async def recipients(request: Request) -> Response:
    """In number order, 100 a page; `?status=` one of the counts' keys; `?cursor=` the `next`
    of the last page."""
    broadcast_id = _id(request)
    try:
        limit = min(1000, max(1, int(request.query_params.get("limit", "100"))))
    except ValueError:
        raise ApiError(400, "limit must be a number") from None
    status = request.query_params.get("status") or None
    cursor = request.query_params.get("cursor") or None
    try:
        found = await _service(request).broadcast_recipients(
            broadcast_id, status=status, after=cursor, limit=limit
        )
    except UnknownBroadcastError:
        raise ApiError(404, f"no broadcast {broadcast_id}") from None
    except BroadcastError as err:
        raise ApiError(400, err.message) from None
    following = found[-1].phone if len(found) == limit else None
    return JSONResponse({"recipients": [r.as_json() for r in found], "next": following})


def _change(action: str) -> Any:
    async def change(request: Request) -> Response:
        broadcast_id = _id(request)
        by = caller(request).name
        try:
            changed = await _service(request).change_broadcast(broadcast_id, action, by)
        except UnknownBroadcastError:
            raise ApiError(404, f"no broadcast {broadcast_id}") from None
        except BroadcastStateError as err:
            raise ApiError(409, str(err)) from None
        return JSONResponse({"broadcast": changed.as_json()})

    return change


routes = [
    Route("/api/broadcasts", _endpoint(list_broadcasts), methods=["GET"]),
    Route("/api/broadcasts", _endpoint(create, owner=True), methods=["POST"]),
    Route("/api/broadcasts/preview", _endpoint(preview, owner=True), methods=["POST"]),
    Route("/api/broadcasts/{id}", _endpoint(get_broadcast), methods=["GET"]),
    Route("/api/broadcasts/{id}/recipients", _endpoint(recipients), methods=["GET"]),
    *(
        Route(
            f"/api/broadcasts/{{id}}/{action}",
            _endpoint(_change(action), owner=True),
            methods=["POST"],
        )
        for action in ("pause", "resume", "cancel")
    ),
]
