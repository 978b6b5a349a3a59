"""Form edits of rules.yaml: each operation changes only its own lines. Exact outputs are pinned
on a copy of the bundled file as it was when these tests were written (rules_edit_sample.yaml);
the properties are also checked on the bundled rules.yaml as it is now."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from responder.rules import edit
from responder.rules.edit import EditError, RuleForm
from responder.rules.schema import compile_rules
from responder.rules.yamlpos import load

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = (Path(__file__).parent / "rules_edit_sample.yaml").read_text(encoding="utf-8")
LIVE = (ROOT / "rules.yaml").read_text(encoding="utf-8")
LIVE_NAMES = [r.name for r in edit.read_view(LIVE).rules]
TEMPLATES = ROOT / "templates"
NAMES = [
    "horario",
    "precio",
    "precios",
    "direccion",
    "asesor",
    "saludo",
    "fuera_de_horario",
    "otro",
]
AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def hunks(old: str, new: str) -> list[tuple[list[str], list[str]]]:
    """The changed regions: (lines removed, lines added) for each."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [(a[i1:i2], b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def one_hunk(old: str, new: str) -> tuple[str, str]:
    found = hunks(old, new)
    assert len(found) == 1, found
    removed, added = found[0]
    return "".join(removed), "".join(added)


def errors(text: str) -> list[str]:
    rules = compile_rules(text.encode(), TEMPLATES, AT, "rules.yaml")
    return [p.format("rules.yaml") for p in rules.errors]


def rule_names(text: str) -> list[str]:
    return [r.name for r in compile_rules(text.encode(), TEMPLATES, AT, "rules.yaml").rules]


def raw_rule(text: str, name: str) -> dict[str, object]:
    return next(dict(r) for r in load(text)["rules"] if r["name"] == name)


def test_the_bundled_file_is_valid_and_read_for_the_forms() -> None:
    assert errors(BUNDLED) == []
    view = edit.read_view(BUNDLED)
    assert [r.name for r in view.rules] == NAMES
    horario = view.rules[0]
    assert horario.keywords == ("horario", "a que hora", "abren", "cierran")
    assert (horario.match, horario.fuzzy, horario.when, horario.advanced) == ("word", 1, "", ())
    assert view.rules[1].advanced == ("pattern",) and view.rules[1].template == "precio.txt"
    assert view.rules[4].handoff and view.rules[5].match == "exact"
    closed = view.rules[6]
    assert closed.when == "other" and closed.advanced == ("when",)
    assert closed.when_text == "{not: {days: mon-fri, hours: 08:00-17:00}}"
    assert view.rules[7].advanced == ("fallback",)
    assert view.opt_out is not None and view.opt_out.keywords[0] == "BAJA"
    assert view.opt_in is not None and view.opt_in.reply.startswith("Suscripción reactivada")
    assert view.reply_limit == (5, "1h")
    assert view.flows == ("encuesta",)


@pytest.mark.parametrize("name", NAMES)
def test_saving_a_rule_unchanged_changes_nothing(name: str) -> None:
    rule = next(r for r in edit.read_view(BUNDLED).rules if r.name == name)
    assert edit.edit_rule(BUNDLED, name, rule.form()) == BUNDLED


def test_adding_a_rule_inserts_only_its_lines_in_the_file_style() -> None:
    form = RuleForm(
        "delivery",
        edit.parse_keywords("delivery, envío a domicilio,\n ¿hacen delivery?"),
        reply="Sí: enviamos a todo Caracas # sin costo",
    )
    new = edit.add_rule(BUNDLED, form, position=6)  # above fuera_de_horario
    removed, added = one_hunk(BUNDLED, new)
    assert removed == ""
    assert added == (
        "  - name: delivery\n"
        "    keywords: [delivery, envío a domicilio, ¿hacen delivery?]\n"
        '    reply: "Sí: enviamos a todo Caracas # sin costo"\n'
        "\n"
    )
    assert errors(new) == []
    assert rule_names(new) == [*NAMES[:6], "delivery", *NAMES[6:]]
    # What the service reads back is exactly what the form said.
    assert raw_rule(new, "delivery")["reply"] == "Sí: enviamos a todo Caracas # sin costo"
    view = edit.read_view(new).rules[6]
    assert view.keywords == ("delivery", "envío a domicilio", "¿hacen delivery?")


@pytest.mark.parametrize(("position", "index"), [(0, 0), (None, 8), (99, 8), (3, 3)])
def test_adding_at_either_end_or_between(position: int | None, index: int) -> None:
    new = edit.add_rule(BUNDLED, RuleForm("nueva", ("nueva",), reply="Hola"), position)
    assert rule_names(new).index("nueva") == index
    assert errors(new) == []
    removed, added = one_hunk(BUNDLED, new)
    assert removed == "" and added.count("- name: nueva") == 1
    # The flows, the settings and every other rule keep their bytes.
    assert new.replace(added, "", 1) == BUNDLED


def test_a_new_rule_with_every_field() -> None:
    form = RuleForm(
        "vip", ("vip",), match="first", fuzzy=2, reply="Línea 1\nLínea 2: #2", handoff=True,
        when="first_contact",
    )  # fmt: skip
    new = edit.add_rule(BUNDLED, form, 0)
    _, added = one_hunk(BUNDLED, new)
    assert added == (
        "  - name: vip\n"
        "    keywords: [vip]\n"
        "    match: first\n"
        "    fuzzy: 2\n"
        "    when: {first_contact: true}\n"
        "    reply: |\n"
        "      Línea 1\n"
        "      Línea 2: #2\n"
        "    handoff: true\n"
        "\n"
    )
    assert errors(new) == []
    assert raw_rule(new, "vip")["reply"] == "Línea 1\nLínea 2: #2\n"


@pytest.mark.parametrize("when", ["open", "closed"])
def test_open_and_closed_are_written_as_plain_words(when: str) -> None:
    new = edit.add_rule(BUNDLED, RuleForm("x", (), reply="Hola", when=when), None)
    assert raw_rule(new, "x")["when"] == when
    assert edit.read_view(new).rules[-1].when == when


def test_editing_a_rule_changes_only_that_rule() -> None:
    form = RuleForm(
        "horario", ("horario", "a que hora"), fuzzy=1,
        reply="Abrimos de lunes a sábado de 8:00 a 18:00.", handoff=True,
    )  # fmt: skip
    new = edit.edit_rule(BUNDLED, "horario", form)
    assert hunks(BUNDLED, new) == [
        (
            ['    keywords: [horario, "a que hora", abren, cierran]\n'],
            ['    keywords: [horario, "a que hora"]\n'],
        ),
        (
            [
                '    reply: "Abrimos de lunes a viernes de 8:00 a 17:00 y los sábados de 9:00 a '
                '13:00."\n'
            ],
            ['    reply: "Abrimos de lunes a sábado de 8:00 a 18:00."\n', "    handoff: true\n"],
        ),
    ]
    assert errors(new) == []
    # The comment above the next rule stayed above it (not under the new last key).
    assert "    handoff: true\n\n  # Una expresión regular" in new


def test_renaming_and_dropping_defaults() -> None:
    new = edit.edit_rule(BUNDLED, "asesor", RuleForm("humano", ("asesor",), reply="Ya viene."))
    removed, added = one_hunk(BUNDLED, new)
    assert "handoff: true" in removed and "handoff" not in added
    assert rule_names(new)[4] == "humano"
    assert errors(new) == []


def test_a_pattern_rule_keeps_its_pattern_when_edited() -> None:
    form = RuleForm("precio", (), template="precio.txt", when="closed")
    new = edit.edit_rule(BUNDLED, "precio", form)
    assert one_hunk(BUNDLED, new) == ("", "    when: closed\n")
    raw = raw_rule(new, "precio")
    assert raw["pattern"] == r"precio (?P<producto>\w+)"
    # The other way round: the form's reply replaces the template, the pattern stays.
    new = edit.edit_rule(BUNDLED, "precio", RuleForm("precio", (), reply="Pregunte."))
    assert raw_rule(new, "precio") == {
        "name": "precio",
        "pattern": r"precio (?P<producto>\w+)",
        "reply": "Pregunte.",
    }
    assert "    pattern: 'precio (?P<producto>\\w+)'\n" in new
    assert errors(new) == []


def test_an_advanced_condition_and_fallback_are_kept() -> None:
    closed = edit.read_view(BUNDLED).rules[6]
    form = RuleForm("fuera_de_horario", (), reply="Cerrado.", when=edit.KEEP_WHEN)
    new = edit.edit_rule(BUNDLED, closed.name, form)
    assert one_hunk(BUNDLED, new)[1] == '    reply: "Cerrado."\n'
    new = edit.edit_rule(BUNDLED, "otro", RuleForm("otro", (), reply="¿Cómo?"))
    assert raw_rule(new, "otro") == {"name": "otro", "fallback": True, "reply": "¿Cómo?"}
    # Choosing "siempre" removes the condition.
    new = edit.edit_rule(
        BUNDLED, "fuera_de_horario", RuleForm("fuera_de_horario", ("x",), reply="y")
    )
    assert "when" not in raw_rule(new, "fuera_de_horario")


def test_deleting_a_rule_takes_its_comments_with_it() -> None:
    new = edit.delete_rule(BUNDLED, "asesor")
    assert new == BUNDLED.replace(
        "\n"
        "  # handoff: true pasa la conversación a una persona; el bot deja de responder.\n"
        "  - name: asesor\n"
        "    keywords: [asesor, humano, agente, persona]\n"
        '    reply: "Un asesor le escribirá pronto. Gracias por su paciencia."\n'
        "    handoff: true\n",
        "",
    )
    assert errors(new) == [] and "asesor" not in rule_names(new)


@pytest.mark.parametrize("name", NAMES)
def test_deleting_any_rule_leaves_a_valid_file(name: str) -> None:
    new = edit.delete_rule(BUNDLED, name)
    assert rule_names(new) == [n for n in NAMES if n != name]
    assert errors(new) == []
    assert len(hunks(BUNDLED, new)) == 1
    assert new.endswith(BUNDLED[BUNDLED.index("# Conversaciones de varios pasos") :])
    assert new.startswith(BUNDLED[: BUNDLED.index("rules:\n") + 7])


def test_deleting_the_first_rule_keeps_the_list_tidy() -> None:
    new = edit.delete_rule(BUNDLED, "horario")
    assert "rules:\n  # Una expresión regular" in new


@pytest.mark.parametrize(("name", "step"), [(n, s) for n in NAMES for s in (-1, 1)])
def test_moving_rules_carries_their_comments(name: str, step: int) -> None:
    new = edit.move_rule(BUNDLED, name, step)
    index = NAMES.index(name)
    expected = list(NAMES)
    if 0 <= index + step < len(NAMES):
        expected[index], expected[index + step] = expected[index + step], expected[index]
    else:
        assert new == BUNDLED
    assert rule_names(new) == expected
    assert errors(new) == []
    assert sorted(new.splitlines()) == sorted(BUNDLED.splitlines())
    # Down and up again is where it started.
    if new != BUNDLED:
        assert edit.move_rule(new, name, -step) == BUNDLED


def test_moving_keeps_each_comment_above_its_rule() -> None:
    new = edit.move_rule(BUNDLED, "asesor", -1)
    assert (
        "  # handoff: true pasa la conversación a una persona; el bot deja de responder.\n"
        "  - name: asesor\n"
    ) in new
    assert new.index("name: asesor") < new.index("name: direccion")


def test_opt_out_and_opt_in() -> None:
    new = edit.set_opt_out(BUNDLED, ["BAJA", "STOP", "no"], "Listo: no recibirá más # SMS.")
    assert one_hunk(BUNDLED, new) == (
        "    keywords: [BAJA, STOP, CANCELAR, ALTO, UNSUBSCRIBE]\n"
        '    reply: "No recibirá más mensajes. Envíe ALTA para volver."\n',
        '    keywords: [BAJA, STOP, no]\n    reply: "Listo: no recibirá más # SMS."\n',
    )
    settings = load(new)["settings"]
    assert settings["opt_out"] == {
        "keywords": ["BAJA", "STOP", "no"],
        "reply": "Listo: no recibirá más # SMS.",
    }
    new = edit.set_opt_in(BUNDLED, ["ALTA"], "Bienvenido")
    assert one_hunk(BUNDLED, new)[1] == '    keywords: [ALTA]\n    reply: "Bienvenido"\n'
    assert errors(new) == []
    # The comment after the settings stays where it was.
    assert '"Bienvenido"\n\n# Las reglas se revisan en orden' in new


def test_reply_limit_is_changed_in_place() -> None:
    new = edit.set_reply_limit(BUNDLED, 3, "30m")
    removed, added = one_hunk(BUNDLED, new)
    assert removed.startswith("  reply_limit: {count: 5, per: 1h} # máximo")
    assert added.startswith("  reply_limit: {count: 3, per: 30m} # máximo")
    assert errors(new) == []
    settings = compile_rules(new.encode(), TEMPLATES, AT, "x").settings
    assert (settings.reply_limit.count, settings.reply_limit.per) == (3, 1800)


def test_hours_are_written_as_one_mapping() -> None:
    hours = {
        "mon-fri": "08:00-17:00",
        "sat": "09:00-13:00",
        "closed": ["2026-12-25", "2027-01-01"],
        "quiet": "21:00-08:00",
    }
    new = edit.set_hours(BUNDLED, hours)
    removed, added = one_hunk(BUNDLED, new)
    assert removed == ""
    assert added == (
        "  hours:\n"
        '    mon-fri: "08:00-17:00"\n'
        '    sat: "09:00-13:00"\n'
        '    closed: ["2026-12-25", "2027-01-01"]\n'
        '    quiet: "21:00-08:00"\n'
    )
    assert edit.read_view(new).hours == hours
    assert load(new)["settings"]["hours"] == hours
    # Changed again: replaced where it is; emptied: gone.
    again = edit.set_hours(new, {"mon-sat": "07:00-19:00"})
    assert edit.read_view(again).hours == {"mon-sat": "07:00-19:00"}
    assert edit.set_hours(again, {}) == BUNDLED


def test_templates_are_texts_by_name() -> None:
    templates = {"saludo.txt": "Hola\n"}
    assert edit.set_template(templates, "saludo.txt", "Buenas\r\ntardes") == {
        "saludo.txt": "Buenas\ntardes\n"
    }
    assert templates == {"saludo.txt": "Hola\n"}
    for name in ("../x.txt", "", "a b.txt", "ñ.txt"):
        with pytest.raises(EditError):
            edit.set_template(templates, name, "x")
    with pytest.raises(EditError, match="vacía"):
        edit.set_template(templates, "saludo.txt", "  \n")


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (RuleForm("", ("x",), reply="y"), "nombre"),
        (RuleForm("   ", ("x",), reply="y"), "nombre"),
        (RuleForm("horario", ("x",), reply="y"), "Ya hay una regla llamada «horario»"),
        (RuleForm("nueva", (), reply="y"), "palabra clave"),
        (RuleForm("nueva", ("", " "), reply="y"), "palabra clave"),
        (RuleForm("nueva", ("x",), reply="  \r\n "), "respuesta"),
        (RuleForm("nueva", ("x",), match="regex", reply="y"), "cómo se buscan"),
        (RuleForm("nueva", ("x",), fuzzy=4, reply="y"), "de 0 a 3"),
        (RuleForm("nueva", ("x",), match="contains", fuzzy=1, reply="y"), "tipeo"),
        (RuleForm("nueva", ("x",), reply="y", when="weekends"), "condición"),
        (RuleForm("n" * 61, ("x",), reply="y"), "largo"),
    ],
)
def test_form_mistakes_are_explained_in_spanish(form: RuleForm, message: str) -> None:
    with pytest.raises(EditError, match=message):
        edit.add_rule(BUNDLED, form)


def test_edit_mistakes_are_explained_in_spanish() -> None:
    with pytest.raises(EditError, match="Ya hay una regla llamada «precios»"):
        edit.edit_rule(BUNDLED, "horario", RuleForm("precios", ("x",), reply="y"))
    with pytest.raises(EditError, match="No hay ninguna regla llamada «nada»"):
        edit.edit_rule(BUNDLED, "nada", RuleForm("nada", ("x",), reply="y"))
    with pytest.raises(EditError, match="expresión regular"):
        edit.edit_rule(BUNDLED, "precio", RuleForm("precio", ("x",), reply="y"))
    with pytest.raises(EditError, match="No hay ninguna regla"):
        edit.delete_rule(BUNDLED, "nada")
    with pytest.raises(EditError, match="darse de baja"):
        edit.set_opt_out(BUNDLED, [" "], "ok")
    with pytest.raises(EditError, match="respuesta"):
        edit.set_opt_in(BUNDLED, ["ALTA"], "")
    with pytest.raises(EditError, match="1 o más"):
        edit.set_reply_limit(BUNDLED, 0, "1h")
    with pytest.raises(EditError, match="30m, 1h o 1d"):
        edit.set_reply_limit(BUNDLED, 5, "una hora")
    with pytest.raises(EditError, match="sintaxis"):
        edit.add_rule("rules: [\n", RuleForm("x", ("x",), reply="y"))


def test_keywords_that_look_like_other_types_stay_words() -> None:
    new = edit.add_rule(BUNDLED, RuleForm("raras", ("no", "true", "1", "8:30", "null"), reply="y"))
    assert raw_rule(new, "raras")["keywords"] == ["no", "true", "1", "8:30", "null"]


def test_other_layouts_are_kept() -> None:
    text = (
        "# mis reglas\n"
        "rules:\n"
        "- name: a\n"
        "  keywords: [a]\n"
        "  reply: A   # primera\n"
        "- name: b\n"
        "  keywords: [b]\n"
        "  reply: |\n"
        "    Dos líneas\n"
        "\n"
        "    # esto es texto, no un comentario\n"
        "- name: c\n"
        "  pattern: 'c+'\n"
        "  reply: C\n"
    )
    new = edit.add_rule(text, RuleForm("d", ("d",), reply="D"), 1)
    assert one_hunk(text, new) == ("", '- name: d\n  keywords: [d]\n  reply: "D"\n')
    moved = edit.move_rule(text, "b", 1)
    assert [r["name"] for r in load(moved)["rules"]] == ["a", "c", "b"]
    assert load(moved)["rules"][2]["reply"] == "Dos líneas\n\n# esto es texto, no un comentario\n"
    edited = edit.edit_rule(text, "a", RuleForm("a", ("a", "aa"), reply="A"))
    assert one_hunk(text, edited) == ("  keywords: [a]\n", "  keywords: [a, aa]\n")


def test_files_without_rules_or_settings_get_them() -> None:
    new = edit.add_rule("settings:\n  country: VE\n", RuleForm("a", ("a",), reply="A"))
    assert load(new)["rules"] == [{"name": "a", "keywords": ["a"], "reply": "A"}]
    new = edit.set_reply_limit("rules: []\n", 2, "1h")
    assert load(new)["settings"] == {"reply_limit": {"count": 2, "per": "1h"}}
    assert edit.read_view("").rules == ()


@pytest.mark.parametrize("name", LIVE_NAMES)
def test_the_bundled_file_as_it_is_now(name: str) -> None:
    """Saving unchanged changes nothing; deleting and moving keep it valid, one hunk each."""
    assert errors(LIVE) == []
    rule = next(r for r in edit.read_view(LIVE).rules if r.name == name)
    assert edit.edit_rule(LIVE, name, rule.form()) == LIVE
    deleted = edit.delete_rule(LIVE, name)
    assert errors(deleted) == [] and len(hunks(LIVE, deleted)) == 1
    assert rule_names(deleted) == [n for n in LIVE_NAMES if n != name]
    for step in (-1, 1):
        moved = edit.move_rule(LIVE, name, step)
        assert errors(moved) == [] and sorted(moved.splitlines()) == sorted(LIVE.splitlines())
    added = edit.add_rule(LIVE, RuleForm("nueva", ("nueva",), reply="Hola"), LIVE_NAMES.index(name))
    assert errors(added) == [] and one_hunk(LIVE, added)[0] == ""
