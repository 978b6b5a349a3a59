"""The Reglas page's forms through real HTTP on the bundled rules: each form publishes a new
version made by a round-trip edit, refuses mistakes in Spanish, and refuses a stale form."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from responder.rules import edit
from tests import loopback
from tests.conftest import RunningApp
from tests.test_admin import PHONE, csrf_of, flat, inbound, sign_in

DELIVERY = "Sí: enviamos a domicilio # en todo Caracas."


@pytest.fixture
def app(start_app: Callable[..., RunningApp], bundled: Path) -> RunningApp:
    return start_app(
        RESPONDER_RULES=str(bundled / "rules.yaml"),
        RESPONDER_TEMPLATES=str(bundled / "templates"),
    )


@pytest.fixture
def staff(app: RunningApp) -> Iterator[httpx.Client]:
    client = sign_in(app)
    yield client
    client.close()


def form_fields(page: str, form_id: str) -> dict[str, str]:
    """The fields of one form on the page, as the browser would send them unchanged."""
    found = re.search(rf'<form[^>]*id="{form_id}".*?</form>', page, re.S)
    assert found, f"no form {form_id}"
    body = found.group(0)
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", body):
        name = re.search(r'name="([^"]*)"', tag)
        if not name:
            continue
        kind = re.search(r'type="([^"]*)"', tag)
        if kind and kind.group(1) == "checkbox":
            if " checked" in tag:
                fields[name.group(1)] = "on"
            continue
        value = re.search(r'value="([^"]*)"', tag)
        fields[name.group(1)] = html.unescape(value.group(1)) if value else ""
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', body, re.S):
        fields[name] = html.unescape(text)
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', body, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', options)
        fields[name] = html.unescape(chosen.group(1)) if chosen else ""
    return fields


def submit(
    client: httpx.Client, form_id: str, action: str, page: str = "/admin/rules", **changes: str
) -> httpx.Response:
    fields = form_fields(client.get(page).text, form_id)
    fields.update(changes)
    return client.post(action, data=fields)


def versions(app: RunningApp) -> list[dict[str, object]]:
    with app.api() as api:
        found: list[dict[str, object]] = api.get("/api/rules/versions").json()["versions"]
        return found


def rules_text(app: RunningApp) -> str:
    return app.service.rules_source()[0]


def rule_names(app: RunningApp) -> list[str]:
    return [r.name for r in app.service.rules.current.rules]


def test_the_page_shows_the_forms_with_stable_ids(staff: httpx.Client) -> None:
    page = staff.get("/admin/rules")
    assert page.status_code == 200
    for element in (
        'id="rule-form"', 'id="rule-name"', 'id="rule-keywords"', 'id="rule-match"',
        'id="rule-fuzzy"', 'id="rule-when"', 'id="rule-reply"', 'id="rule-reply-counter"',
        'id="rule-template"', 'id="rule-position"', 'id="rule-handoff"', 'id="rule-submit"',
        'id="optout-form"', 'id="optin-form"', 'id="limit-form"', 'id="hours-form"',
        'id="hours-mon-from"', 'id="hours-sun-closed"', 'id="hours-holidays"',
        'id="template-form-1"', 'id="edit-1"', 'id="up-2"', 'id="down-1"', 'id="delete-1"',
    ):  # fmt: skip
        assert element in page.text, element
    text = flat(page)
    assert "Agregar regla" in text and "Guardar horario" in text
    # The reply boxes have the live counter: the same attribute as the conversation's box.
    assert page.text.count("data-sms-counter") == 3
    # Every form carries the version it was drawn from.
    assert 'name="base" value="1"' in page.text
    # No inline script or style (the CSP forbids them).
    assert "<script>" not in page.text and "style=" not in page.text


def test_adding_a_rule_publishes_a_version_that_answers(
    staff: httpx.Client, app: RunningApp, bundled: Path
) -> None:
    before = rules_text(app)
    response = submit(
        staff, "rule-form", "/admin/rules/add",
        name="delivery", keywords="delivery, envío a domicilio", reply=DELIVERY, position="6",
    )  # fmt: skip
    assert response.status_code == 303, flat(response)
    assert response.headers["location"] == "/admin/rules?ok=published&v=2"
    newest = versions(app)[0]
    assert newest["author"] == "admin" and newest["source"] == "admin"
    assert newest["note"] == "regla delivery agregada"
    text = rules_text(app)
    assert (
        text.replace(
            "  - name: delivery\n"
            "    keywords: [delivery, envío a domicilio]\n"
            f'    reply: "{DELIVERY}"\n\n',
            "",
        )
        == before
    )
    assert rule_names(app)[6] == "delivery"
    # Written back to the file (it is writable), comments included.
    assert (bundled / "rules.yaml").read_text(encoding="utf-8") == text
    page = staff.get(response.headers["location"])
    assert "Cambio publicado como versión 2" in flat(page)
    inbound(app, "¿Hacen delivery?")
    replies = app.wait_for(PHONE, lambda ms: any(m["direction"] == "out" for m in ms))
    # smart encoding (on in the bundled rules) sends í as i
    assert [m["text"] for m in replies if m["direction"] == "out"] == [DELIVERY.replace("í", "i")]


def test_editing_a_rule_from_its_link(staff: httpx.Client, app: RunningApp) -> None:
    page = staff.get("/admin/rules?editar=horario")
    assert "Editar la regla «horario»" in page.text
    fields = form_fields(page.text, "rule-form")
    assert fields["original"] == "horario" and fields["fuzzy"] == "1"
    assert fields["keywords"] == "horario, a que hora, abren, cierran"
    fields["reply"] = "Abrimos de lunes a sábado: 8:00 a 18:00."
    response = staff.post("/admin/rules/edit", data=fields)
    assert response.status_code == 303, flat(response)
    assert versions(app)[0]["note"] == "regla horario editada"
    text = rules_text(app)
    # (an end-of-line comment on the reply, if any, stays)
    assert '    reply: "Abrimos de lunes a sábado: 8:00 a 18:00."' in text
    assert '    keywords: [horario, "a que hora", abren, cierran]\n' in text
    assert app.service.rules.current.rules[0].reply_source.startswith("Abrimos de lunes a sábado")


def test_a_pattern_rule_keeps_what_the_form_does_not_show(
    staff: httpx.Client, app: RunningApp
) -> None:
    page = staff.get("/admin/rules?editar=precio").text
    assert 'id="rule-advanced"' in page
    fields = form_fields(page, "rule-form")
    assert fields["template"] == "precio.txt"
    fields["when"] = "first_contact"
    assert staff.post("/admin/rules/edit", data=fields).status_code == 303
    assert "    pattern: 'precio (?P<producto>\\w+)'\n" in rules_text(app)


def test_moving_and_deleting(staff: httpx.Client, app: RunningApp) -> None:
    order = rule_names(app)
    response = submit(staff, "rule-form", "/admin/rules/move", name="asesor", dir="up")
    assert response.status_code == 303
    assert rule_names(app) == [*order[:3], "asesor", "direccion", *order[5:]]
    assert versions(app)[0]["note"] == "regla asesor subida un lugar"
    response = submit(staff, "rule-form", "/admin/rules/delete", name="saludo")
    assert response.status_code == 303
    assert "saludo" not in rule_names(app)
    assert versions(app)[0]["note"] == "regla saludo borrada"
    assert len(versions(app)) == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "Escriba un nombre para la regla."),
        ({"name": "horario"}, "Ya hay una regla llamada «horario»"),
        ({"name": "x", "keywords": " , "}, "Escriba al menos una palabra clave"),
        ({"name": "x", "keywords": "x", "reply": " "}, "Escriba la respuesta"),
    ],
)
def test_form_mistakes_change_nothing(
    staff: httpx.Client, app: RunningApp, changes: dict[str, str], message: str
) -> None:
    before = rules_text(app)
    fields = {"keywords": "delivery", "reply": "Sí", **changes}
    response = submit(staff, "rule-form", "/admin/rules/add", **fields)
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    # What was typed stays in the form.
    assert form_fields(response.text, "rule-form")["keywords"] == fields["keywords"].strip(" ,")
    assert rules_text(app) == before and len(versions(app)) == 1


def test_a_change_that_breaks_the_rules_is_refused_with_its_lines(
    staff: httpx.Client, app: RunningApp
) -> None:
    response = submit(
        staff, "rule-form", "/admin/rules/add",
        name="mala", keywords="mala", reply="Hola {{ sin cerrar",
    )  # fmt: skip
    assert response.status_code == 422
    assert 'id="form-problems"' in response.text and "Línea" in response.text
    assert "No se publicó" in html.unescape(response.text)
    assert len(versions(app)) == 1


def test_a_stale_form_is_refused_with_a_link(staff: httpx.Client, app: RunningApp) -> None:
    old_page = staff.get("/admin/rules").text
    assert submit(staff, "limit-form", "/admin/rules/limit", count="3").status_code == 303
    fields = form_fields(old_page, "rule-form")
    fields.update(name="delivery", keywords="delivery", reply=DELIVERY)
    response = staff.post("/admin/rules/add", data=fields)
    assert response.status_code == 409
    assert "alguien publicó la versión 2" in html.unescape(response.text)
    assert 'id="stale-link"><a href="/admin/rules/versions/2?contra=1"' in response.text
    assert "delivery" not in rule_names(app)


def test_opt_out_opt_in_and_the_reply_limit(staff: httpx.Client, app: RunningApp) -> None:
    response = submit(
        staff, "optout-form", "/admin/rules/opt-out", keywords="BAJA, STOP, NO MAS",
        reply="Listo: no le escribiremos más.",
    )  # fmt: skip
    assert response.status_code == 303
    settings = app.service.rules.current.settings
    assert settings.opt_out is not None and settings.opt_out.keywords == ("baja", "stop", "no mas")
    assert settings.opt_out.source == "Listo: no le escribiremos más."
    response = submit(staff, "optin-form", "/admin/rules/opt-in", keywords="ALTA")
    assert response.status_code == 303
    assert app.service.rules.current.settings.opt_in.keywords == ("alta",)  # type: ignore[union-attr]
    response = submit(staff, "limit-form", "/admin/rules/limit", count="3", per="30m")
    assert response.status_code == 303
    limit = app.service.rules.current.settings.reply_limit
    assert (limit.count, limit.per) == (3, 1800)
    assert "  reply_limit: {count: 3, per: 30m} # máximo" in rules_text(app)
    assert [v["note"] for v in versions(app)][:3] == [
        "límite de respuestas: 3 cada 30 minutos",
        "palabras y respuesta de alta cambiadas",
        "palabras y respuesta de baja cambiadas",
    ]
    bad = submit(staff, "limit-form", "/admin/rules/limit", count="0")
    assert bad.status_code == 400 and "1 o más" in html.unescape(bad.text)
    bad = submit(staff, "optout-form", "/admin/rules/opt-out", keywords="")
    assert bad.status_code == 400 and "darse de baja" in html.unescape(bad.text)


def test_hours_form(staff: httpx.Client, app: RunningApp) -> None:
    weekdays = {f"{d}_{k}": v for d in ("mon", "tue", "wed", "thu", "fri")
                for k, v in (("from", "08:00"), ("to", "17:00"))}  # fmt: skip
    response = submit(
        staff, "hours-form", "/admin/rules/hours",
        **weekdays, sat_from="09:00", sat_to="13:00", holidays="25/12/2026\n2027-01-01",
        quiet_from="22:00", quiet_to="07:30",
        **{f"{d}_closed": "" for d in ("mon", "tue", "wed", "thu", "fri", "sat")},
    )  # fmt: skip
    assert response.status_code == 303, flat(response)
    assert edit.read_view(rules_text(app)).hours == {
        "mon-fri": "08:00-17:00",
        "sat": "09:00-13:00",
        "closed": ["2026-12-25", "2027-01-01"],
        "quiet": "22:00-07:30",
    }
    assert versions(app)[0]["note"] == "horario de atención cambiado"
    page = staff.get("/admin/rules").text
    fields = form_fields(page, "hours-form")
    assert fields["mon_from"] == "08:00" and fields["sat_to"] == "13:00"
    assert fields["sun_closed"] == "on" and "mon_closed" not in fields
    assert fields["holidays"] == "2026-12-25\n2027-01-01"
    bad = submit(staff, "hours-form", "/admin/rules/hours", tue_to="")
    assert bad.status_code == 400
    assert "Escriba la hora de apertura y la de cierre del martes" in html.unescape(bad.text)


def test_templates_form(staff: httpx.Client, app: RunningApp) -> None:
    page = staff.get("/admin/rules").text
    names = re.findall(r'id="template-form-\d+"[^>]*>\s*<input[^>]*>\s*<input[^>]*>\s*'
                       r'<input type="hidden" name="name" value="([^"]+)"', page)  # fmt: skip
    index = names.index("saludo.txt") + 1
    response = submit(
        staff, f"template-form-{index}", "/admin/rules/template", text="¡Hola! Bienvenido."
    )
    assert response.status_code == 303, flat(response)
    assert app.service.rules_source()[1]["saludo.txt"] == "¡Hola! Bienvenido.\n"
    assert versions(app)[0]["note"] == "plantilla saludo.txt cambiada"
    inbound(app, "hola")
    replies = app.wait_for(PHONE, lambda ms: any(m["direction"] == "out" for m in ms))
    assert [m["text"] for m in replies if m["direction"] == "out"] == ["¡Hola! Bienvenido."]


def test_the_forms_need_the_csrf_token_and_the_same_origin(
    staff: httpx.Client, app: RunningApp
) -> None:
    paths = ["add", "edit", "delete", "move", "opt-out", "opt-in", "limit", "hours", "template"]
    for path in paths:
        response = staff.post(f"/admin/rules/{path}", data={"name": "horario", "base": "1"})
        assert response.status_code == 403, path
    csrf = csrf_of(staff.get("/admin/rules").text)
    response = staff.post(
        "/admin/rules/delete",
        data={"csrf": csrf, "name": "horario", "base": "1"},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert len(versions(app)) == 1
    with loopback.Client(base_url=app.url) as stranger:
        response = stranger.post("/admin/rules/delete", data={"name": "horario"})
        assert response.status_code == 403


def test_saving_without_changes_publishes_nothing(staff: httpx.Client, app: RunningApp) -> None:
    response = submit(staff, "limit-form", "/admin/rules/limit")
    assert response.headers["location"] == "/admin/rules?ok=same"
    assert len(versions(app)) == 1
