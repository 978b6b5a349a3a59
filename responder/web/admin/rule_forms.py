"""The Reglas page: the rules in force with forms to add, edit, delete and reorder keyword
rules, and to change opt-out/opt-in, the reply limit, the opening hours and the templates.

Each form's change is made by `responder.rules.edit` on the text of the version in force and
published through the service as a new version (source "admin"); the form carries the id of
the version it was drawn from, so a form older than the version in force is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from responder.phone import InvalidPhoneNumber, normalize_phone
from responder.rules import edit
from responder.rules.edit import EditError, RuleForm
from responder.rules.hours_form import (
    DAY_LABELS,
    DAYS,
    HoursForm,
    day_range,
    hours_mapping,
    parse_holidays,
    read_hours,
)
from responder.rules.model import MATCH_MODES
from responder.rules.publish import RulesRefused
from responder.store.models import StaleRuleVersion
from responder.web import views
from responder.web.admin.core import MAX_REPLY, _redirect, _render, _service, action, page
from responder.web.admin.rules import STALE, _findings
from responder.web.sessions import Session

# What a form's change gives: the new rules text, a note for the versions list, and the new
# templates (None: unchanged).
Change = tuple[str, str, dict[str, str] | None]
WHEN_LABELS = {
    "": "siempre",
    "open": "en horario de atención",
    "closed": "fuera del horario de atención",
    "first_contact": "primer mensaje de un cliente",
}
PERIODS = {"10m": "10 minutos", "30m": "30 minutos", "1h": "1 hora", "6h": "6 horas", "1d": "1 día"}
PUBLISHED = "Cambio publicado como versión {id}: ya responde con él."
UNCHANGED = "No había nada que cambiar."


def _base(form: dict[str, str]) -> int | None:
    raw = form.get("base", "")
    return int(raw) if raw.isdigit() and len(raw) < 18 else None


async def _page(
    request: Request,
    session: Session,
    *,
    status: int = 200,
    error: str | None = None,
    problems: list[dict[str, Any]] | None = None,
    rule_form: RuleForm | None = None,
    editing: str | None = None,
    stale: tuple[int | None, int | None] | None = None,
) -> Response:
    """The Reglas page; after a refused form, with its error and what was typed."""
    service = _service(request)
    current = service.rules.current
    text, templates, version_id = service.rules_source()
    view = edit.read_view(text)
    filename = Path(current.version.path).name or "rules.yaml"
    # Errors of the last edit of the files, which kept it out (warnings are listed apart).
    load_problems = _findings(service.rules.file_errors)
    query = request.query_params
    if rule_form is None and (wanted := query.get("editar")):
        found = next((r for r in view.rules if r.name == wanted), None)
        if found is not None:
            rule_form, editing = found.form(), found.name
    if rule_form is None:
        rule_form = RuleForm("")
    edited = next((r for r in view.rules if r.name == editing), None)
    trial, trial_error = None, None
    text_tried = query.get("text")
    phone = query.get("phone", "").strip()
    if text_tried is not None:
        number = "000000000000"
        if phone:
            try:
                number = normalize_phone(phone, current.settings.country)
            except InvalidPhoneNumber:
                trial_error = "Ese número de teléfono no es válido."
        if trial_error is None:
            trial = await service.simulate(number, text_tried[:MAX_REPLY])
    notice = None
    if query.get("ok") == "published" and query.get("v", "").isdigit():
        notice = PUBLISHED.format(id=query["v"])
    elif query.get("ok") == "same":
        notice = UNCHANGED
    warnings: list[dict[str, Any]] = []
    if error is None:
        warnings = _findings((await service.check_rules(text, templates)).warnings)
    hours = read_hours(view.hours)
    return _render(
        request,
        session,
        "rules.html",
        status,
        section="rules",
        sub="list",
        rules=current.rules,
        flows=list(current.flows.values()),
        version=current.version,
        filename=filename,
        problems=load_problems,
        writable=service.rules_writable(),
        trial=trial,
        trial_error=trial_error,
        trial_text=text_tried or "",
        trial_phone=phone,
        **({"notice": notice} if notice else {}),
        error=error,
        form_problems=problems or [],
        stale=stale,
        warnings=warnings,
        base="" if version_id is None else str(version_id),
        view=view,
        rule_form=rule_form,
        editing=editing,
        edited=edited,
        match_modes=[(m, views.MATCH_LABELS[m]) for m in MATCH_MODES],
        when_labels=WHEN_LABELS,
        templates=templates,
        hours=hours,
        days=list(zip(DAYS, DAY_LABELS, hours.days, strict=True)),
        periods=PERIODS,
        smart_encoding=current.settings.smart_encoding,
        max_reply=MAX_REPLY,
    )


async def rules_page(request: Request, session: Session) -> Response:
    return await _page(request, session)


async def _publish(
    request: Request,
    session: Session,
    form: dict[str, str],
    change: Callable[[str, dict[str, str]], Change],
    *,
    rule_form: RuleForm | None = None,
    editing: str | None = None,
) -> Response:
    """Applies `change` to the version in force and publishes the result; on a mistake, the
    page again with the error (and the rule form as typed), nothing changed."""
    service = _service(request)
    text, templates, _ = service.rules_source()
    base = _base(form)
    again: dict[str, Any] = {"rule_form": rule_form, "editing": editing}
    try:
        new_text, note, new_templates = change(text, templates)
    except EditError as err:
        return await _page(request, session, status=400, error=str(err), **again)
    if new_text == text and (new_templates is None or new_templates == templates):
        return _redirect("/admin/rules", ok="same")
    try:
        version, _ = await service.publish_rules(
            new_text, new_templates, base=base, note=note, author=session.user, source="admin"
        )
    except RulesRefused as err:
        message = (
            "No se publicó: el cambio deja las reglas con errores. Siguen en uso las de antes."
        )
        return await _page(
            request, session, status=422, error=message, problems=_findings(err.problems), **again
        )
    except StaleRuleVersion as err:
        return await _page(
            request, session, status=409, error=STALE.format(active=err.active),
            stale=(err.active, base), **again,
        )  # fmt: skip
    return _redirect("/admin/rules", ok="published", v=str(version.id))


def _rule_form(form: dict[str, str]) -> RuleForm:
    fuzzy = form.get("fuzzy", "0")
    return RuleForm(
        name=form.get("name", ""),
        keywords=edit.parse_keywords(form.get("keywords", "")),
        match=form.get("match", "word"),
        fuzzy=int(fuzzy) if fuzzy.isdigit() and len(fuzzy) < 3 else -1,
        reply=form.get("reply", ""),
        template=form.get("template", ""),
        handoff=form.get("handoff") == "on",
        when=form.get("when", ""),
    )


def _position(form: dict[str, str]) -> int | None:
    raw = form.get("position", "")
    return int(raw) if raw.isdigit() and len(raw) < 6 else None


async def add_rule(request: Request, session: Session, form: dict[str, str]) -> Response:
    rule = _rule_form(form)

    def change(text: str, templates: dict[str, str]) -> Change:
        new_text = edit.add_rule(text, rule, _position(form))
        return new_text, f"regla {' '.join(rule.name.split())} agregada", None

    return await _publish(request, session, form, change, rule_form=rule)


async def edit_rule(request: Request, session: Session, form: dict[str, str]) -> Response:
    rule = _rule_form(form)
    original = form.get("original", "")

    def change(text: str, templates: dict[str, str]) -> Change:
        new_text = edit.edit_rule(text, original, rule)
        renamed = " ".join(rule.name.split())
        if renamed != original:
            return new_text, f"regla {original} editada (ahora {renamed})", None
        return new_text, f"regla {original} editada", None

    return await _publish(request, session, form, change, rule_form=rule, editing=original)


async def delete_rule(request: Request, session: Session, form: dict[str, str]) -> Response:
    name = form.get("name", "")

    def change(text: str, templates: dict[str, str]) -> Change:
        new_text = edit.delete_rule(text, name)
        return new_text, f"regla {name} borrada", None

    return await _publish(request, session, form, change)


async def move_rule(request: Request, session: Session, form: dict[str, str]) -> Response:
    name, up = form.get("name", ""), form.get("dir") == "up"

    def change(text: str, templates: dict[str, str]) -> Change:
        new_text = edit.move_rule(text, name, -1 if up else 1)
        return new_text, f"regla {name} {'subida' if up else 'bajada'} un lugar", None

    return await _publish(request, session, form, change)


def _keywords_reply(setter: Callable[[str, list[str], str], str], note: str) -> Any:
    async def handler(request: Request, session: Session, form: dict[str, str]) -> Response:
        def change(text: str, templates: dict[str, str]) -> Change:
            keywords = list(edit.parse_keywords(form.get("keywords", "")))
            new_text = setter(text, keywords, form.get("reply", ""))
            return new_text, note, None

        return await _publish(request, session, form, change)

    return handler


async def set_limit(request: Request, session: Session, form: dict[str, str]) -> Response:
    def change(text: str, templates: dict[str, str]) -> Change:
        raw = form.get("count", "").strip()
        if not raw.isdigit() or len(raw) > 6:
            raise EditError("El límite de respuestas es un número entero (ej.: 5).")
        per = form.get("per", "")
        new_text = edit.set_reply_limit(text, int(raw), per)
        return new_text, f"límite de respuestas: {int(raw)} cada {PERIODS.get(per, per)}", None

    return await _publish(request, session, form, change)


def _hours_form(form: dict[str, str]) -> HoursForm:
    days: list[tuple[str, str] | None] = []
    for day, label in zip(DAYS, DAY_LABELS, strict=True):
        if form.get(f"{day}_closed") == "on":
            days.append(None)
        else:
            days.append(day_range(form.get(f"{day}_from", ""), form.get(f"{day}_to", ""), label))
    quiet = None
    quiet_from, quiet_to = form.get("quiet_from", ""), form.get("quiet_to", "")
    if quiet_from.strip() or quiet_to.strip():
        quiet = day_range(quiet_from, quiet_to, "horario de envíos masivos")
    return HoursForm(tuple(days), parse_holidays(form.get("holidays", "")), quiet)


async def set_hours(request: Request, session: Session, form: dict[str, str]) -> Response:
    def change(text: str, templates: dict[str, str]) -> Change:
        new_text = edit.set_hours(text, hours_mapping(_hours_form(form)))
        return new_text, "horario de atención cambiado", None

    return await _publish(request, session, form, change)


async def set_template(request: Request, session: Session, form: dict[str, str]) -> Response:
    name = form.get("name", "")

    def change(text: str, templates: dict[str, str]) -> Change:
        if name not in templates:
            raise EditError(
                f"No hay ninguna plantilla llamada {name} (¿alguien la borró? Recargue)."
            )
        changed = edit.set_template(templates, name, form.get("text", ""))
        return text, f"plantilla {name} cambiada", changed

    return await _publish(request, session, form, change)


routes = [
    Route("/admin/rules", page(rules_page), methods=["GET"]),
    Route("/admin/rules/add", action(add_rule), methods=["POST"]),
    Route("/admin/rules/edit", action(edit_rule), methods=["POST"]),
    Route("/admin/rules/delete", action(delete_rule), methods=["POST"]),
    Route("/admin/rules/move", action(move_rule), methods=["POST"]),
    Route(
        "/admin/rules/opt-out",
        action(_keywords_reply(edit.set_opt_out, "palabras y respuesta de baja cambiadas")),
        methods=["POST"],
    ),
    Route(
        "/admin/rules/opt-in",
        action(_keywords_reply(edit.set_opt_in, "palabras y respuesta de alta cambiadas")),
        methods=["POST"],
    ),
    Route("/admin/rules/limit", action(set_limit), methods=["POST"]),
    Route("/admin/rules/hours", action(set_hours), methods=["POST"]),
    Route("/admin/rules/template", action(set_template), methods=["POST"]),
]
