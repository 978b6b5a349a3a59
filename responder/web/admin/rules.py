"""The admin's rules editor (DESIGN §10): the whole `rules.yaml` and its templates in text
areas, checked as one types, tried against a message beside the rules in force, published as
a new version; the list of versions, what each changed, and restoring one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from responder.moments import SIMULATE_HORIZON, BadMoment, within_horizon
from responder.phone import InvalidPhoneNumber, normalize_phone
from responder.rules.messages_es import spanish
from responder.rules.model import Problem
from responder.rules.publish import MAX_RULES_BYTES, RulesCheck, RulesRefused
from responder.store.models import StaleRuleVersion
from responder.web.admin.core import (
    MAX_REPLY,
    Refused,
    _redirect,
    _render,
    _same_origin,
    _service,
    action,
    page,
    partial,
)
from responder.web.forms import BadBody, BodyTooLarge, json_object, read_body
from responder.web.sessions import Session

if TYPE_CHECKING:
    from responder.service import Service

# The editor posts the whole draft: the rules and every template, URL-encoded (up to 3x).
EDITOR_BODY = 3 * (MAX_RULES_BYTES + 256 * 1024)
TEMPLATE_FIELD = "template:"
TRY_PHONE = "000000000000"  # a number nobody has: the try box without a phone

SOURCES = {"file": "archivo", "admin": "navegador", "api": "API", "restore": "restaurada"}
PUBLISHED = "Versión {id} publicada: ya responde con ella."
RESTORED = "Versión {old} restaurada como versión {id}: ya responde con ella."
STALE = (
    "No se publicó: alguien publicó la versión {active} mientras usted editaba. "
    "Vea qué cambió y vuelva a aplicar sus cambios sobre ella."
)


def _findings(problems: tuple[Problem, ...]) -> list[dict[str, Any]]:
    return [
        {"line": p.line, "kind": p.kind, "rule": p.rule, "message": spanish(p)} for p in problems
    ]


def _text(value: str) -> str:
    """A text area's value as stored: browsers send line ends as CRLF."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def _draft(form: dict[str, str]) -> tuple[str, dict[str, str]]:
    rules = _text(form.get("rules", ""))
    templates = {
        name[len(TEMPLATE_FIELD) :]: _text(value)
        for name, value in form.items()
        if name.startswith(TEMPLATE_FIELD) and name[len(TEMPLATE_FIELD) :]
    }
    new_name = form.get("new_template", "").strip()
    if new_name:
        templates.setdefault(new_name, _text(form.get("new_template_text", "")))
    return rules, templates


def _moment(service: Service, raw: str) -> datetime | None:
    """The try box's optional time (a datetime-local value, in the rules' time zone)."""
    if not raw.strip():
        return None
    tz = service.rules.current.settings.timezone
    try:
        local = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise Refused(400, "Esa fecha y hora no es válida.") from None
    moment = local.replace(tzinfo=tz) if local.tzinfo is None else local
    try:
        return within_horizon(moment, service.clock(), SIMULATE_HORIZON)
    except BadMoment:
        raise Refused(400, "Esa fecha está demasiado lejos.") from None


async def _side_by_side(
    service: Service, form: dict[str, str], rules: str, templates: dict[str, str]
) -> dict[str, Any]:
    """The try box: the message against the draft and against the rules in force."""
    text = form.get("try_text", "")[:MAX_REPLY]
    phone = form.get("try_phone", "").strip()
    number = TRY_PHONE
    if phone:
        try:
            number = normalize_phone(phone, service.rules.current.settings.country)
        except InvalidPhoneNumber:
            return {"error": "Ese número de teléfono no es válido.", "text": text, "phone": phone}
    at = _moment(service, form.get("try_at", ""))
    in_force = await service.simulate(number, text, at)
    try:
        draft: dict[str, Any] | None = await service.simulate(
            number, text, at, rules=rules, templates=templates
        )
    except RulesRefused:
        draft = None  # the problems are listed above the editor
    return {
        "text": text,
        "phone": phone,
        "at": form.get("try_at", ""),
        "draft": draft,
        "in_force": in_force,
    }


def _editor(
    request: Request,
    session: Session,
    *,
    rules: str,
    templates: dict[str, str],
    base: int | None,
    check: RulesCheck | None = None,
    trial: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    service = _service(request)
    return _render(
        request,
        session,
        "rules_editor.html",
        status,
        section="rules",
        rules_text=rules,
        templates=templates,
        base=base,
        active=service.active_rule_version(),
        writable=service.rules_writable(),
        problems=_findings(check.problems) if check else [],
        warnings=_findings(check.warnings) if check else [],
        trial=trial,
        error=error,
        filename=service.settings.rules.name,
    )


async def editor_page(request: Request, session: Session) -> Response:
    service = _service(request)
    rules, templates, base = service.rules_source()
    check = await service.check_rules(rules, templates)
    return _editor(request, session, rules=rules, templates=templates, base=base, check=check)


async def editor_post(request: Request, session: Session, form: dict[str, str]) -> Response:
    """Probar (the try box with the draft) or Publicar."""
    service = _service(request)
    rules, templates = _draft(form)
    base_raw = form.get("base", "")
    base = int(base_raw) if base_raw.isdigit() else None
    if form.get("do") == "try":
        check = await service.check_rules(rules, templates)
        trial = await _side_by_side(service, form, rules, templates)
        return _editor(
            request, session, rules=rules, templates=templates, base=base, check=check,
            trial=trial,
        )  # fmt: skip
    note = form.get("note", "").strip()[:500] or "editado en el navegador"
    try:
        version, _ = await service.publish_rules(
            rules, templates, base=base, note=note, author=session.user, source="admin"
        )
    except RulesRefused as err:
        refused = RulesCheck(err.problems, ())
        message = "No se publicó: corrija los errores marcados. Siguen en uso las reglas de antes."
        return _editor(
            request, session, rules=rules, templates=templates, base=base, check=refused,
            error=message, status=422,
        )  # fmt: skip
    except StaleRuleVersion as err:
        check = await service.check_rules(rules, templates)
        return _editor(
            request, session, rules=rules, templates=templates, base=base, check=check,
            error=STALE.format(active=err.active), status=409,
        )  # fmt: skip
    return _redirect(f"/admin/rules/versions/{version.id}", ok="published")


async def check_partial(request: Request, session: Session) -> Response:
    """What the editor shows as one types: the draft's errors and warnings, in Spanish. A
    POST with a JSON body, the session's CSRF token in a header."""
    if not _same_origin(request) or not session.csrf_matches(request.headers.get("x-csrf")):
        return JSONResponse({"error": "formulario caducado: recargue la página"}, 403)
    try:
        data = json_object(await read_body(request, EDITOR_BODY))
    except (BodyTooLarge, BadBody):
        return JSONResponse({"error": "borrador ilegible o demasiado grande"}, 400)
    rules = data.get("rules")
    templates = data.get("templates")
    if not isinstance(rules, str) or not (
        templates is None
        or (isinstance(templates, dict) and all(isinstance(v, str) for v in templates.values()))
    ):
        return JSONResponse({"error": "borrador ilegible"}, 400)
    check = await _service(request).check_rules(_text(rules), templates)
    return JSONResponse(
        {
            "ok": check.ok,
            "problems": _findings(check.problems),
            "warnings": _findings(check.warnings),
        }
    )


async def versions_page(request: Request, session: Session) -> Response:
    service = _service(request)
    return _render(
        request,
        session,
        "rules_versions.html",
        section="rules",
        versions=await service.rule_versions(),
        active=service.active_rule_version(),
        sources=SOURCES,
        writable=service.rules_writable(),
    )


def _version_id(request: Request, key: str = "id") -> int:
    raw = request.path_params.get(key) or request.query_params.get(key) or ""
    if not raw.isdigit() or len(raw) > 18:
        raise Refused(404, "No existe esa versión de las reglas.")
    return int(raw)


async def version_page(request: Request, session: Session) -> Response:
    """One version: who, when, why, and what differs from the version in force (or from the
    one named by ?contra=)."""
    service = _service(request)
    version_id = _version_id(request)
    version = await service.rule_version(version_id)
    active = service.active_rule_version()
    against_raw = request.query_params.get("contra", "")
    against = int(against_raw) if against_raw.isdigit() and len(against_raw) < 18 else None
    if against is None:
        against = active if active != version_id else version_id - 1
    if version is None:
        raise Refused(404, "No existe esa versión de las reglas.")
    other = await service.rule_version(against) if against else None
    if other is None:
        changes = None
    elif other.id < version.id:
        changes = await service.rules_diff(other.id, version.id)
    else:
        changes = await service.rules_diff(version.id, other.id)
    notice = None
    if request.query_params.get("ok") == "published":
        notice = PUBLISHED.format(id=version.id)
    elif request.query_params.get("ok") == "restored":
        notice = RESTORED.format(old=request.query_params.get("from", "?"), id=version.id)
    check = await service.check_rules(version.rules, version.templates)
    return _render(
        request,
        session,
        "rules_version.html",
        section="rules",
        version=version,
        other=other,
        changes=changes,
        active=active,
        sources=SOURCES,
        warnings=_findings(check.warnings),
        notice=notice,
    )


async def restore(request: Request, session: Session, form: dict[str, str]) -> Response:
    service = _service(request)
    version_id = _version_id(request)
    note = form.get("note", "").strip()[:500] or f"restaurada la versión {version_id}"
    try:
        version = await service.restore_rules(version_id, note=note, author=session.user)
    except KeyError:
        raise Refused(404, "No existe esa versión de las reglas.") from None
    except RulesRefused:
        raise Refused(
            422, "Esa versión ya no se puede cargar con esta versión de responder."
        ) from None
    return _redirect(
        f"/admin/rules/versions/{version.id}", ok="restored", **{"from": str(version_id)}
    )


routes = [
    Route("/admin/rules/editor", page(editor_page), methods=["GET"]),
    Route("/admin/rules/editor", action(editor_post, limit=EDITOR_BODY), methods=["POST"]),
    Route("/admin/rules/check", partial(check_partial), methods=["POST"]),
    Route("/admin/rules/versions", page(versions_page), methods=["GET"]),
    Route("/admin/rules/versions/{id}", page(version_page), methods=["GET"]),
    Route("/admin/rules/versions/{id}/restore", action(restore), methods=["POST"]),
]
