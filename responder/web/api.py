"""The JSON API under /api, for staff tools and scripts. Every call needs a bearer token: the
admin token (the built-in owner) or a person's own token, which acts as that person; an
agent asking for an owner's action gets 403 (DESIGN §11)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from responder.accounts import AccountError, Identity, normalized_name
from responder.inbox import NoteRefused
from responder.moments import SEND_HORIZON, BadMoment, parse_moment
from responder.phone import InvalidPhoneNumber, inbound_phone, normalize_phone
from responder.rules.model import Problem
from responder.rules.publish import MAX_RULES_BYTES, RulesRefused
from responder.rules.reader import LABEL
from responder.store.models import (
    STATUSES,
    UNASSIGNED,
    OptedOutError,
    RuleVersion,
    StaleRuleVersion,
    StoreUnavailable,
    UnknownContactError,
    UnknownUserError,
    UserExists,
    to_iso,
)
from responder.text import UnsendableText
from responder.web import cursors
from responder.web.forms import MAX_BODY, BadBody, BodyTooLarge, json_object, read_body

if TYPE_CHECKING:
    from responder.service import Service


MAX_ROWID = 2**63 - 1  # SQLite integers: anything larger cannot name a row
MAX_SEARCH_OFFSET = 10_000  # a search reads what it skips: deeper pages cost more each
MAX_MESSAGE_PAGE = 1000  # messages per page of a conversation
MAX_TEXT = 1600  # ten SMS: a longer message is almost surely a mistake
STORE_UNAVAILABLE = (
    "the database cannot store anything right now (disk full or not writable): "
    "nothing was stored or sent; try again later"
)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "60"}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _caller(request: Request) -> Identity | None:
    """Who the bearer token stands for; None for a missing, wrong or revoked one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return await _service(request).accounts.bearer(token)


def caller(request: Request) -> Identity:
    """The identity `_endpoint` found for this request."""
    identity: Identity = request.state.identity
    return identity


async def _json(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    try:
        body = await read_body(request, limit)
    except BodyTooLarge:
        raise ApiError(413, f"request body too large ({limit // 1024} KiB at most)") from None
    try:
        return json_object(body)
    except BadBody as err:
        raise ApiError(400, str(err)) from None


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"'{key}' must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise ApiError(400, f"'{key}' is longer than {MAX_TEXT} characters (ten SMS)")
    return value


def _phone(request: Request, raw: str | None = None, *, strict: bool = False) -> str:
    """The number a path or body names, as stored. Lenient by default, since a conversation
    may come from a short code (`2020`); strict where a message is to be sent to it."""
    value = raw if raw is not None else request.path_params["phone"]
    country = _service(request).rules.current.settings.country
    try:
        return normalize_phone(value, country) if strict else inbound_phone(value, country)
    except InvalidPhoneNumber as err:
        raise ApiError(400, str(err)) from None


Handler = Callable[[Request], Awaitable[Response]]


def _endpoint(handler: Handler, *, owner: bool = False) -> Handler:
    """An API call for anyone with a valid token, or (`owner`) for owners only."""

    async def endpoint(request: Request) -> Response:
        try:
            identity = await _caller(request)
        except StoreUnavailable:
            return _error(503, STORE_UNAVAILABLE)
        if identity is None:
            return _error(
                401, "missing or wrong bearer token (RESPONDER_ADMIN_TOKEN or a personal token)"
            )
        if owner and not identity.owner:
            return _error(403, "only an owner may do this")
        request.state.identity = identity
        try:
            result: Response = await handler(request)
            return result
        except ApiError as err:
            return _error(err.status, err.message)
        except UnknownContactError as err:
            return _error(404, f"no conversation with {err.args[0]}")
        except OptedOutError as err:
            return _error(409, str(err))
        except BadMoment as err:
            return _error(400, f"'send_at': {err}")
        except StoreUnavailable:
            return _error(503, STORE_UNAVAILABLE)
        except AccountError as err:
            return _error(400, err.message)
        except UserExists as err:
            return _error(409, f"a person named {err.args[0]} exists already")
        except UnknownUserError as err:
            return _error(404, f"no person named {err.args[0]}")
        except RulesRefused as err:
            return JSONResponse({"problems": _findings(err.problems)}, status_code=422)
        except StaleRuleVersion as err:
            message = f"the rules changed meanwhile: version {err.active} is in force"
            return JSONResponse({"error": message, "active": err.active}, status_code=409)

    return endpoint


async def list_conversations(request: Request) -> Response:
    try:
        limit = min(500, max(1, int(request.query_params.get("limit", "100"))))
        offset = min(MAX_ROWID, max(0, int(request.query_params.get("offset", "0"))))
    except ValueError:
        raise ApiError(400, "limit and offset must be numbers") from None
    filters: dict[str, Any] = {}
    mode = request.query_params.get("mode")
    if mode is not None:
        if mode not in ("bot", "human"):
            raise ApiError(400, "mode must be 'bot' or 'human'")
        filters["mode"] = mode
    for name in ("needs_attention", "opted_out"):
        value = request.query_params.get(name)
        if value is not None:
            if value not in ("true", "false"):
                raise ApiError(400, f"{name} must be true or false")
            filters[name] = value == "true"
    status = request.query_params.get("status")
    if status is not None:
        if status not in STATUSES:
            raise ApiError(400, "status must be 'open' or 'resolved'")
        filters["status"] = status
    assigned = request.query_params.get("assigned")
    if assigned is not None:
        # Empty or `none`: the conversations nobody handles.
        unassigned = assigned.strip().lower() in ("", "none")
        filters["assigned"] = UNASSIGNED if unassigned else normalized_name(assigned)
    q = request.query_params.get("q", "").strip()
    if q:
        return await _search_conversations(request, q, limit, offset, filters)
    cursor = request.query_params.get("cursor")
    if cursor:
        try:
            filters["after"] = cursors.conversation_key(cursor)
        except cursors.BadCursor:
            raise ApiError(400, "cursor must be a 'next' value this API returned") from None
    rows = await _service(request).conversations(limit, offset, **filters)
    # The cursor of the next page (keyset: no conversation twice or skipped while new messages
    # move others to the top), or null on the last one.
    after = cursors.conversation_cursor(rows[-1]) if len(rows) == limit else None
    return JSONResponse({"conversations": [c.as_json() for c in rows], "next": after})


async def _search_conversations(
    request: Request, q: str, limit: int, offset: int, filters: dict[str, Any]
) -> Response:
    """`?q=`: the inbox's search (README "Inbox search"); each conversation carries `match`,
    its newest message holding the words (null when its number or fields matched)."""
    if offset > MAX_SEARCH_OFFSET:
        raise ApiError(400, f"offset must be at most {MAX_SEARCH_OFFSET:,} with q")
    service = _service(request)
    page = await service.search(service.search_query(q), limit, offset, **filters)
    matches = {m.id: m for m in await service.messages_by_id(list(page.matched.values()))}
    found = []
    for c in page.conversations:
        match = matches.get(page.matched.get(c.phone, 0))
        found.append({**c.as_json(), "match": match.as_json() if match else None})
    return JSONResponse({"conversations": found})


async def list_messages(request: Request) -> Response:
    """The newest `limit` (default 200) messages below `before` (an id), oldest first; `next`
    is the `before` of the page of older ones (null when there are none)."""
    service = _service(request)
    phone = _phone(request)
    try:
        limit = min(MAX_MESSAGE_PAGE, max(1, int(request.query_params.get("limit", "200"))))
        before = request.query_params.get("before")
        below = None if before is None else min(MAX_ROWID, max(0, int(before)))
    except ValueError:
        raise ApiError(400, "limit and before must be numbers") from None
    await service.conversation(phone)  # 404 for an unknown number
    rows = await service.message_page(phone, below, limit)
    after = rows[0].id if len(rows) == limit else None
    # A broadcast's message, and a reply to one, name the broadcast (DESIGN §12).
    named = await service.thread_broadcasts(phone, rows)
    messages = [{**m.as_json(), **named.get(m.id, {})} for m in rows]
    return JSONResponse({"messages": messages, "next": after})


async def send_message(request: Request) -> Response:
    data = await _json(request)
    via = data.get("via")
    if via is not None and via not in _service(request).providers:
        configured = ", ".join(_service(request).providers)
        raise ApiError(400, f"via must be a configured provider ({configured})")
    send_at = _moment(data.get("send_at"), _service(request))
    text = _text(data, "text")
    phone = _phone(request, strict=True)
    await _service(request).conversation(phone)  # an unknown number is a 404
    try:
        messages = await _service(request).send(
            phone, text, via, "agent", send_at, author=caller(request).name
        )
    except UnsendableText as err:
        raise ApiError(400, f"'text': {err}") from None
    body = [m.as_json() for m in messages]
    return JSONResponse({"message": body[0], "messages": body}, status_code=202)


def _moment(value: Any, service: Service) -> datetime | None:
    """`send_at`: ISO 8601 within a year of now; without a UTC offset it is the business's
    local time."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "'send_at' must be an ISO 8601 date and time")
    try:
        timezone = service.rules.current.settings.timezone
        return parse_moment(value, timezone, service.clock(), SEND_HORIZON)
    except BadMoment as err:
        raise ApiError(400, f"'send_at': {err}") from None


async def message_detail(request: Request) -> Response:
    """One message with every attempt to send it."""
    service = _service(request)
    try:
        message_id = int(request.path_params["id"])
    except ValueError:
        raise ApiError(400, "message ids are numbers") from None
    if not 0 < message_id <= MAX_ROWID:
        raise ApiError(404, f"no message {message_id}")
    found, attempts = await service.message_with_attempts(message_id)
    if found is None:
        raise ApiError(404, f"no message {message_id}")
    return JSONResponse({"message": found.as_json(), "attempts": attempts})


async def balances(request: Request) -> Response:
    """Credits at each provider, as last checked (every 15 minutes); `?refresh=true` asks now."""
    service = _service(request)
    known = await service.balances()
    if request.query_params.get("refresh") == "true" or set(known) != set(service.providers):
        known = await service.check_balances()
    return JSONResponse({"balances": known})


async def set_mode(request: Request) -> Response:
    data = await _json(request)
    mode = data.get("mode")
    if mode not in ("bot", "human"):
        raise ApiError(400, "'mode' must be 'bot' or 'human'")
    conversation = await _service(request).set_mode(_phone(request), mode, caller(request).name)
    return JSONResponse(conversation.as_json())


# -- the team inbox: assignment, status, internal notes (DESIGN §11) ------------------------------


async def assign(request: Request) -> Response:
    """`{"user": name}` hands the conversation to that person; `{"user": null}` to nobody."""
    data = await _json(request)
    if "user" not in data or not (data["user"] is None or isinstance(data["user"], str)):
        raise ApiError(400, "'user' must be a person's name, or null for nobody")
    user = data["user"]
    conversation = await _service(request).inbox.assign(
        _phone(request), user if user and user.strip() else None, caller(request).name
    )
    return JSONResponse(conversation.as_json())


async def set_status(request: Request) -> Response:
    data = await _json(request)
    status = data.get("status")
    if status not in STATUSES:
        raise ApiError(400, "'status' must be 'open' or 'resolved'")
    conversation = await _service(request).inbox.set_status(_phone(request), status)
    return JSONResponse(conversation.as_json())


async def add_note(request: Request) -> Response:
    """An internal note in the thread: the staff read it, the customer never gets it."""
    data = await _json(request)
    text = data.get("text")
    if not isinstance(text, str):
        raise ApiError(400, "'text' must be a string")
    try:
        note = await _service(request).inbox.add_note(_phone(request), caller(request).name, text)
    except NoteRefused as err:
        raise ApiError(400, f"'text': {err}") from None
    return JSONResponse({"note": note.as_json()}, status_code=201)


async def list_notes(request: Request) -> Response:
    service = _service(request)
    phone = _phone(request)
    await service.conversation(phone)  # 404 for an unknown number
    return JSONResponse({"notes": [n.as_json() for n in await service.inbox.notes(phone)]})


FIELD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


async def get_contact(request: Request) -> Response:
    conversation = await _service(request).conversation(_phone(request))
    return JSONResponse(conversation.as_json())


async def patch_contact(request: Request) -> Response:
    """Sets contact fields, `{"fields": {"nombre": "Ana", "cliente": null}}` (null removes),
    and labels: `{"labels": {"add": [...], "remove": [...]}}`, or `{"labels": [...]}` (the
    whole set)."""
    data = await _json(request)
    if "fields" not in data and "labels" not in data:
        raise ApiError(400, "give 'fields' or 'labels'")
    changes = data.get("fields", {})
    if not isinstance(changes, dict) or ("fields" in data and not changes):
        raise ApiError(400, "'fields' must be a non-empty object")
    for name, value in changes.items():
        if not FIELD_NAME_RE.match(name):
            raise ApiError(400, f"field name {name!r}: use letters, digits and _")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise ApiError(400, f"field {name}: use a string, number, boolean or null")
    labels = _label_changes(data["labels"]) if "labels" in data else None
    conversation = await _service(request).contacts.change(
        caller(request).name, _phone(request), fields=changes, labels=labels
    )  # on the audit trail; 404 before anything changes
    return JSONResponse(conversation.as_json())


def _label_changes(value: Any) -> tuple[list[str], list[str], bool]:
    """`{"add": [...], "remove": [...]}` or a list (the whole set): add, remove, whole."""
    if isinstance(value, list):
        return _labels(value, "labels"), [], True
    if not isinstance(value, dict) or not value or set(value) - {"add", "remove"}:
        raise ApiError(400, '\'labels\' must be a list or {"add": [...], "remove": [...]}')
    return _labels(value.get("add", []), "add"), _labels(value.get("remove", []), "remove"), False


def _labels(value: Any, key: str) -> list[str]:
    if not isinstance(value, list):
        raise ApiError(400, f"'{key}' must be a list of labels")
    for label in value:
        if not isinstance(label, str) or not LABEL.fullmatch(label):
            raise ApiError(400, f"label {label!r}: letters, digits, _ or -, at most 40")
    return list(dict.fromkeys(value))


async def forget_contact(request: Request) -> Response:
    """Erases the person (DESIGN §13): 200 with what went, 404 when nothing was known."""
    phone = _phone(request)
    forgotten = await _service(request).forget(phone, caller(request).name)
    if forgotten is None:
        raise UnknownContactError(phone)
    return JSONResponse(
        {
            "phone": phone,
            "messages": forgotten.messages,
            "kept_opted_out": forgotten.kept_opted_out,
        }
    )


async def simulate(request: Request) -> Response:
    """`rules` / `templates` (optional): try a draft instead of the rules in force."""
    data = await _json(request, RULES_BODY)
    phone = _phone(request, _text(data, "phone"), strict=True)
    rules, templates = _draft(data, required=False)
    result = await _service(request).simulate(
        phone, str(data.get("text", "")), rules=rules, templates=templates
    )
    return JSONResponse(result)


# A draft travels whole in one body: the rules text and its templates.
RULES_BODY = MAX_RULES_BYTES + 256 * 1024


def _draft(data: dict[str, Any], *, required: bool) -> tuple[str | None, dict[str, str] | None]:
    rules = data.get("rules")
    if rules is None and required:
        raise ApiError(400, "'rules' must be the text of rules.yaml")
    if rules is not None and not isinstance(rules, str):
        raise ApiError(400, "'rules' must be the text of rules.yaml")
    templates = data.get("templates")
    if templates is not None and not (
        isinstance(templates, dict) and all(isinstance(v, str) for v in templates.values())
    ):
        raise ApiError(400, "'templates' must be an object of template names and texts")
    return rules, templates


def _findings(problems: tuple[Problem, ...]) -> list[dict[str, Any]]:
    return [
        {"line": p.line, "kind": p.kind, "message": p.message, "rule": p.rule} for p in problems
    ]


def _version(version: RuleVersion, active: int | None, whole: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": version.id,
        "created_at": to_iso(version.created_at),
        "author": version.author,
        "source": version.source,
        "note": version.note,
        "sha256": version.sha256,
        "active": version.id == active,
    }
    if whole:
        shown["rules"] = version.rules
        shown["templates"] = dict(version.templates)
    return shown


def _version_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not raw.isdigit() or int(raw) > MAX_ROWID:
        raise ApiError(404, f"no rules version {raw}")
    return int(raw)


def _note(data: dict[str, Any]) -> str:
    note = data.get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        raise ApiError(400, "'note' must be a text of at most 500 characters")
    return note.strip()


async def rule_versions(request: Request) -> Response:
    service = _service(request)
    active = service.active_rule_version()
    versions = await service.rule_versions()
    return JSONResponse({"versions": [_version(v, active) for v in versions]})


async def rule_version(request: Request) -> Response:
    service = _service(request)
    version = await service.rule_version(_version_id(request))
    if version is None:
        raise ApiError(404, f"no rules version {request.path_params['id']}")
    return JSONResponse({"version": _version(version, service.active_rule_version(), True)})


async def check_rules(request: Request) -> Response:
    data = await _json(request, RULES_BODY)
    rules, templates = _draft(data, required=True)
    assert rules is not None
    check = await _service(request).check_rules(rules, templates)
    return JSONResponse(
        {
            "ok": check.ok,
            "problems": _findings(check.problems),
            "warnings": _findings(check.warnings),
        }
    )


async def publish_rules(request: Request) -> Response:
    data = await _json(request, RULES_BODY)
    rules, templates = _draft(data, required=True)
    assert rules is not None
    base = data.get("base")
    if not isinstance(base, int) or isinstance(base, bool):
        raise ApiError(400, "'base' must be the id of the version the draft was made from")
    service = _service(request)
    version, check = await service.publish_rules(
        rules, templates, base=base, note=_note(data), author=caller(request).name, source="api"
    )
    shown = _version(version, service.active_rule_version())
    return JSONResponse({"version": shown, "warnings": _findings(check.warnings)}, status_code=201)


async def restore_rules(request: Request) -> Response:
    data = await _json(request)
    service = _service(request)
    version_id = _version_id(request)
    try:
        version = await service.restore_rules(
            version_id, note=_note(data), author=caller(request).name
        )
    except KeyError:
        raise ApiError(404, f"no rules version {version_id}") from None
    return JSONResponse(
        {"version": _version(version, service.active_rule_version())}, status_code=201
    )


async def rules(request: Request) -> Response:
    """The rules in force, what checking them found, and the patterns and templates that went
    over their budget while answering messages."""
    service = _service(request)
    current = service.rules.current
    return JSONResponse(
        {
            "version": {
                "id": current.version.number,
                "sha256": current.version.sha256,
                "loaded_at": current.version.loaded_at.isoformat(),
                "path": current.version.path,
            },
            # False: publishing does not write rules.yaml (a read-only deploy); edit in the
            # browser or through this API.
            "files_writable": service.rules_writable(),
            "rules": [
                {"name": r.name, "line": r.line, "keywords": list(r.keywords), "mode": r.mode}
                for r in current.rules
            ],
            "problems": list(service.rules.last_problems),
            "warnings": [
                {"line": p.line, "kind": p.kind, "message": p.message, "rule": p.rule}
                for p in current.problems
                if p.severity == "warning"
            ],
            "overruns": [
                {
                    "kind": o.kind,
                    "rule": o.rule,
                    "line": o.line,
                    "why": o.why,
                    "count": o.count,
                    "first_at": to_iso(o.first_at),
                    "last_at": to_iso(o.last_at),
                }
                for o in await service.overruns()
            ],
        }
    )


# -- the team (DESIGN §11) ----------------------------------------------------------------------


async def list_users(request: Request) -> Response:
    users = await _service(request).accounts.users()
    return JSONResponse({"users": [u.as_json() for u in users]})


def _name(data: dict[str, Any]) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "'name' must be a non-empty string")
    return name


async def add_user(request: Request) -> Response:
    data = await _json(request)
    user = await _service(request).accounts.add_user(
        caller(request).name, _name(data), data.get("role"), data.get("password")
    )
    return JSONResponse(user.as_json(), status_code=201)


async def change_user(request: Request) -> Response:
    """Any of `role`, `disabled` (true/false) and `password`."""
    data = await _json(request)
    unknown = set(data) - {"role", "disabled", "password"}
    if unknown or not data:
        raise ApiError(400, "give any of 'role', 'disabled' and 'password'")
    disabled = data.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise ApiError(400, "'disabled' must be true or false")
    if "password" in data and data["password"] is None:
        raise ApiError(400, "'password' must be a text")
    user = await _service(request).accounts.change_user(
        caller(request).name,
        request.path_params["name"],
        role=data.get("role"),
        disabled=disabled,
        password=data.get("password"),
    )
    return JSONResponse(user.as_json())


async def create_token(request: Request) -> Response:
    """A personal token for the caller, shown this once."""
    identity = caller(request)
    record, token = await _service(request).accounts.create_token(identity.name, identity.name)
    return JSONResponse({"token": token, "id": record.id}, status_code=201)


async def revoke_token(request: Request) -> Response:
    raw = request.path_params["id"]
    token_id = int(raw) if raw.isdigit() and int(raw) <= MAX_ROWID else 0
    if not await _service(request).accounts.revoke_token(caller(request), token_id):
        raise ApiError(404, f"no valid token {raw} of yours")
    return Response(status_code=204)


async def audit(request: Request) -> Response:
    try:
        limit = min(1000, max(1, int(request.query_params.get("limit", "200"))))
        before = request.query_params.get("before")
        below = None if before is None else min(MAX_ROWID, max(0, int(before)))
    except ValueError:
        raise ApiError(400, "limit and before must be numbers") from None
    events = await _service(request).accounts.audit(limit, below)
    after = events[-1].id if len(events) == limit else None
    return JSONResponse({"events": [e.as_json() for e in events], "next": after})


routes = [
    Route("/api/conversations", _endpoint(list_conversations), methods=["GET"]),
    Route("/api/conversations/{phone}/messages", _endpoint(list_messages), methods=["GET"]),
    Route("/api/conversations/{phone}/messages", _endpoint(send_message), methods=["POST"]),
    Route("/api/conversations/{phone}/mode", _endpoint(set_mode), methods=["POST"]),
    Route("/api/conversations/{phone}/assign", _endpoint(assign), methods=["POST"]),
    Route("/api/conversations/{phone}/status", _endpoint(set_status), methods=["POST"]),
    Route("/api/conversations/{phone}/notes", _endpoint(add_note), methods=["POST"]),
    Route("/api/conversations/{phone}/notes", _endpoint(list_notes), methods=["GET"]),
    Route("/api/contacts/{phone}", _endpoint(get_contact), methods=["GET"]),
    Route("/api/contacts/{phone}", _endpoint(patch_contact), methods=["PATCH"]),
    Route("/api/contacts/{phone}", _endpoint(forget_contact, owner=True), methods=["DELETE"]),
    Route("/api/messages/{id}", _endpoint(message_detail), methods=["GET"]),
    Route("/api/balances", _endpoint(balances), methods=["GET"]),
    Route("/api/simulate", _endpoint(simulate), methods=["POST"]),
    Route("/api/rules", _endpoint(rules), methods=["GET"]),
    Route("/api/rules/check", _endpoint(check_rules, owner=True), methods=["POST"]),
    Route("/api/rules/versions", _endpoint(rule_versions), methods=["GET"]),
    Route("/api/rules/versions", _endpoint(publish_rules, owner=True), methods=["POST"]),
    Route("/api/rules/versions/{id}", _endpoint(rule_version), methods=["GET"]),
    Route(
        "/api/rules/versions/{id}/restore", _endpoint(restore_rules, owner=True), methods=["POST"]
    ),
    Route("/api/users", _endpoint(list_users, owner=True), methods=["GET"]),
    Route("/api/users", _endpoint(add_user, owner=True), methods=["POST"]),
    Route("/api/users/{name}", _endpoint(change_user, owner=True), methods=["POST"]),
    Route("/api/tokens", _endpoint(create_token), methods=["POST"]),
    Route("/api/tokens/{id}", _endpoint(revoke_token), methods=["DELETE"]),
    Route("/api/audit", _endpoint(audit, owner=True), methods=["GET"]),
]
