"""The API of the inbox's message actions and saved replies (DESIGN §11): retry a failed
message, cancel a queued one; saved replies listed, filled in for a conversation, and managed
by owners. Same bearer tokens and errors as responder/web/api.py."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from responder.saved_replies import SavedReplyError
from responder.store.models import MessageStateError, SavedReplyExists, UnknownMessageError
from responder.web.api import MAX_ROWID, ApiError, _endpoint, _json, _phone, _service, caller


def _id(request: Request, what: str) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or not 0 < int(raw) <= MAX_ROWID:
        raise ApiError(404, f"no {what} {raw}")
    return int(raw)


async def retry_message(request: Request) -> Response:
    """A failed message goes back to the queue as a new attempt; 409 for any other status
    and for a number that opted out."""
    message_id = _id(request, "outbound message")
    try:
        message = await _service(request).retry_message(message_id, caller(request).name)
    except UnknownMessageError:
        raise ApiError(404, f"no outbound message {message_id}") from None
    except MessageStateError as err:
        raise ApiError(409, f"only a failed message is retried; this one is {err.status}") from None
    return JSONResponse({"message": message.as_json()})


async def cancel_message(request: Request) -> Response:
    """A queued or scheduled message is never sent; 409 once it is on its way."""
    message_id = _id(request, "outbound message")
    try:
        message = await _service(request).cancel_message(message_id, caller(request).name)
    except UnknownMessageError:
        raise ApiError(404, f"no outbound message {message_id}") from None
    except MessageStateError as err:
        raise ApiError(409, f"only a message still waiting here can be cancelled: {err}") from None
    return JSONResponse({"message": message.as_json()})


async def list_saved_replies(request: Request) -> Response:
    replies = await _service(request).saved_replies.all()
    return JSONResponse({"saved_replies": [r.as_json() for r in replies]})


async def add_saved_reply(request: Request) -> Response:
    data = await _json(request)
    try:
        reply = await _service(request).saved_replies.add(
            caller(request).name, data.get("name"), data.get("text")
        )
    except SavedReplyError as err:
        raise ApiError(400, err.message) from None
    except SavedReplyExists as err:
        raise ApiError(409, f"a saved reply named {err.args[0]} exists already") from None
    return JSONResponse(reply.as_json(), status_code=201)


async def delete_saved_reply(request: Request) -> Response:
    reply_id = _id(request, "saved reply")
    if await _service(request).saved_replies.delete(caller(request).name, reply_id) is None:
        raise ApiError(404, f"no saved reply {reply_id}")
    return Response(status_code=204)


async def filled_saved_replies(request: Request) -> Response:
    """Every saved reply filled in with this conversation's contact fields."""
    filled = await _service(request).saved_replies.filled(_phone(request))
    return JSONResponse({"saved_replies": [f.as_json() for f in filled]})


routes = [
    Route("/api/messages/{id}/retry", _endpoint(retry_message), methods=["POST"]),
    Route("/api/messages/{id}/cancel", _endpoint(cancel_message), methods=["POST"]),
    Route("/api/saved-replies", _endpoint(list_saved_replies), methods=["GET"]),
    Route("/api/saved-replies", _endpoint(add_saved_reply, owner=True), methods=["POST"]),
    Route("/api/saved-replies/{id}", _endpoint(delete_saved_reply, owner=True), methods=["DELETE"]),
    Route(
        "/api/conversations/{phone}/saved-replies",
        _endpoint(filled_saved_replies),
        methods=["GET"],
    ),
]
