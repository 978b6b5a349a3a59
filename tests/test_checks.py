"""The findings of DESIGN §10: every error and warning has its kind, line, rule and a Spanish
text; each warning kind is found where it should be and not where it should not."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from responder.rules.backtracking import NESTED, OVERLAP
from responder.rules.messages_es import KIND_NAMES, MESSAGES, spanish
from responder.rules.model import ERROR_KINDS, WARNING_KINDS, Problem
from responder.rules.schema import RuleSet, load_rules
from tests.conftest import MONDAY_10AM

ROOT = Path(__file__).resolve().parent.parent
MARK = "# <--"
HOURS = '        settings:\n          hours: {mon-fri: "08:00-17:00"}\n'  # as indented as the cases


def load(tmp_path: Path, text: str, templates: dict[str, str] | None = None) -> RuleSet:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for name, body in (templates or {}).items():
        (folder / name).write_text(body, encoding="utf-8")
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules(path, folder, MONDAY_10AM)


def marked(text: str) -> int:
    (line,) = [i for i, t in enumerate(textwrap.dedent(text).splitlines(), 1) if MARK in t]
    return line


# (id, file with `# <--` on the line of the finding, kind, code, rule, English fragment)
WARNINGS = [
    (
        "after-a-when-only-rule",
        HOURS
        + """\
        rules:
          - name: fuera_de_horario
            when: closed
            reply: "Cerrado"
          - name: delivery  # <--
            keywords: [delivery]
            reply: "Enviamos a domicilio."
        """,
        "shadowed",
        "catch_all",
        "delivery",
        "never answers while closed: rule 'fuera_de_horario' (line 4) has no keywords or "
        "pattern and answers every message then; move this rule above it",
    ),
    (
        "same-condition-as-a-when-only-rule",
        HOURS
        + """\
        rules:
          - {name: cerrado, when: closed, reply: "Cerrado"}
          - {name: tarde, keywords: [hola], when: closed, reply: "x"}  # <--
        """,
        "shadowed",
        "catch_all_always",
        "tarde",
        "unreachable: rule 'cerrado' (line 4) has no keywords or pattern",
    ),
    (
        "an-earlier-fallback",
        """\
        rules:
          - {name: otro, fallback: true, reply: "No entendí"}
          - {name: otro2, fallback: true, reply: "Tampoco"}  # <--
        """,
        "shadowed",
        "fallback",
        "otro2",
        "unreachable: fallback 'otro' (line 2) already answers every message",
    ),
    (
        "same-keyword",
        """\
        rules:
          - {name: horario, keywords: [horario], reply: "8 a 5"}
          - {name: horas, keywords: [Horario], reply: "nunca"}  # <--
        """,
        "shadowed",
        "keywords",
        "horas",
        "unreachable: rule 'horario' (line 2) already answers these keywords",
    ),
    (
        "a-flow-trigger",
        """\
        rules:
          - {name: encuesta, keywords: [encuesta], reply: "nunca"}  # <--
        flows:
          sondeo:
            trigger: {keywords: [encuesta]}
            steps:
              - say: "Gracias"
        """,
        "shadowed",
        "flow_keywords",
        "encuesta",
        "unreachable: flow 'sondeo' (line 5) starts on these keywords",
    ),
    (
        "a-shared-keyword",
        """\
        rules:
          - {name: hola, keywords: [hola], match: exact, reply: "Hola"}
          - {name: saludo, keywords: [hola, buenas], reply: "Buenas"}  # <--
        """,
        "duplicate_keyword",
        "",
        "saludo",
        "keyword 'hola' also in rule 'hola' (line 2), which comes first and answers it",
    ),
    (
        "cost",
        """\
        rules:
          - name: largo
            keywords: [largo]
            reply: "%s"  # <--
        """
        % ("Abrimos de lunes a viernes. " * 7),
        "cost",
        "",
        "largo",
        "reply costs 2 SMS (195 characters)",
    ),
    (
        "cost-of-the-hours-shown",
        """\
        settings:
          hours:
            mon: "08:00-12:00, 14:00-18:00"
            tue: "08:30-12:00, 14:00-18:00"
            wed: "08:00-12:30, 14:00-18:00"
            thu: "08:00-12:00, 14:30-18:00"
            fri: "08:00-12:00, 14:00-18:30"
        rules:
          - {name: horario, keywords: [horario], reply: "Horario: {{ hours.week }}"}  # <--
        """,
        "cost",
        "",
        "horario",
        "reply costs 2 SMS",
    ),
    (
        "cost-over-max-reply-sms",
        """\
        settings: {max_reply_sms: 1}
        rules:
          - name: largo
            keywords: [largo]
            reply: "%s"  # <--
        """
        % ("Abrimos de lunes a viernes. " * 7),
        "cost",
        "cut",
        "largo",
        "reply costs 2 SMS (195 characters): only 1 are sent (max_reply_sms)",
    ),
    (
        "ucs2-even-after-smart-encoding",
        """\
        rules:
          - {name: cafe, keywords: [cafe], reply: "Café ☕ listo"}  # <--
        """,
        "ucs2",
        "",
        "cafe",
        "reply is sent as UCS-2 (70 characters per SMS) because of '☕' even after smart "
        "encoding: 1 SMS (12 characters)",
    ),
    (
        "ucs2-in-a-flow-step",
        """\
        rules: []
        flows:
          encuesta:
            trigger: {keywords: [encuesta]}
            steps:
              - say: "Gracias 🙏"  # <--
        """,
        "ucs2",
        "",
        "encuesta",
        "because of '🙏'",
    ),
    (
        "unknown-template-included",
        """\
        rules:
          - {name: menu, keywords: [menu], template: menu.txt}  # <--
        """,
        "unknown_template",
        "",
        "menu",
        "template 'carta.txt' in menu.txt does not exist in the templates folder",
    ),
    (
        "unknown-variable",
        """\
        rules:
          - {name: hola, keywords: [hola], reply: "Hola {{ nombre }}"}  # <--
        """,
        "unknown_variable",
        "name",
        "hola",
        "unknown variable 'nombre': a reply can use message, contact, match, rule, now, hours",
    ),
    (
        "unknown-match-group",
        """\
        rules:
          - name: precio
            pattern: 'precio (?P<producto>\\w+)'
            reply: "{{ match.articulo }} cuesta 5"  # <--
        """,
        "unknown_variable",
        "match",
        "precio",
        "unknown variable 'match.articulo': the pattern's named groups are producto",
    ),
    (
        "match-without-pattern-in-a-file",
        """\
        rules:
          - {name: precio, keywords: [precio], template: precio.txt}  # <--
        """,
        "unknown_variable",
        "no_groups",
        "precio",
        "unknown variable 'match.producto' in precio.txt: match is empty",
    ),
    (
        "unknown-message-field",
        """\
        rules:
          - {name: eco, keywords: [eco], reply: "{{ message.texto }}"}  # <--
        """,
        "unknown_variable",
        "message",
        "eco",
        "unknown variable 'message.texto': message has text, phone, received_at",
    ),
    (
        "unknown-hours-field",
        HOURS
        + """\
        rules:
          - {name: h, keywords: [h], reply: "{{ hours['manana'] }}"}  # <--
        """,
        "unknown_variable",
        "hours",
        "h",
        "unknown variable 'hours.manana': hours has today, week",
    ),
    (
        "backtracking",
        """\
        rules:
          - name: palabras
            pattern: '^(\\w+\\s?)+$'  # <--
            reply: "x"
        """,
        "backtracking",
        "",
        "palabras",
        "pattern can backtrack catastrophically",
    ),
    (
        "pattern-never-matches",
        """\
        rules:
          - {name: p, pattern: '¿precio', reply: "x"}  # <--
        """,
        "regex",
        "never_matches",
        "p",
        "so '¿' never matches",
    ),
]
FILES = {
    "menu.txt": "Menú: {% include 'carta.txt' %}",
    "precio.txt": "{{ match.producto }} cuesta 5",
}


@pytest.mark.parametrize(
    ("text", "kind", "code", "rule", "fragment"),
    [case[1:] for case in WARNINGS],
    ids=[case[0] for case in WARNINGS],
)
def test_each_warning(
    tmp_path: Path, text: str, kind: str, code: str, rule: str, fragment: str
) -> None:
    ruleset = load(tmp_path, text, FILES)
    assert ruleset.errors == (), ruleset.errors
    found = [p for p in ruleset.problems if fragment in p.message]
    assert [(p.line, p.kind, p.code, p.rule) for p in found] == [
        (marked(text), kind, code, rule)
    ], [p.format("rules.yaml") for p in ruleset.problems]
    text_es = spanish(found[0])
    assert text_es and not text_es.startswith(tuple(KIND_NAMES.values()))


def test_every_warning_kind_is_tested() -> None:
    assert {case[2] for case in WARNINGS} == set(WARNING_KINDS)


@pytest.mark.parametrize(
    "text",
    [
        # A rule only for open hours never competes with the one for closed hours.
        HOURS
        + """\
        rules:
          - {name: cerrado, when: closed, reply: "Cerrado"}
          - {name: asesor, keywords: [asesor], when: open, reply: "Ya"}
        """,
        # `not:` of the same condition.
        """\
        rules:
          - {name: noche, when: {hours: "18:00-08:00"}, reply: "Cerrado"}
          - {name: asesor, keywords: [asesor], when: {not: {hours: "18:00-08:00"}}, reply: "Ya"}
        """,
        # Keyword rules above the closed-hours rule answer at any time.
        HOURS
        + """\
        rules:
          - {name: asesor, keywords: [asesor], reply: "Ya"}
          - {name: cerrado, when: closed, reply: "Cerrado"}
          - {name: otro, fallback: true, reply: "No entendí"}
        """,
        # A conditional fallback, then the general one.
        """\
        rules:
          - {name: otro_noche, fallback: true, when: {hours: "18:00-08:00"}, reply: "Mañana"}
          - {name: otro, fallback: true, reply: "No entendí"}
        """,
    ],
    ids=["open-after-closed", "not-after-condition", "above-it", "conditional-fallback"],
)
def test_rules_that_can_answer_are_not_flagged(tmp_path: Path, text: str) -> None:
    assert load(tmp_path, text).problems == ()


def test_the_bundled_rules_have_no_findings() -> None:
    ruleset = load_rules(ROOT / "rules.yaml", ROOT / "templates", MONDAY_10AM)
    assert ruleset.problems == ()


def test_a_rule_below_the_bundled_closed_hours_rule_is_warned(tmp_path: Path) -> None:
    """The issue's case: a delivery rule appended at the end never answers after hours."""
    text = (ROOT / "rules.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  # fallback:", '  - {name: delivery, keywords: [delivery], reply: "Sí"}\n  # fallback:'
    )
    ruleset = load_rules_text(tmp_path, text)
    (warning,) = ruleset.problems
    assert (warning.kind, warning.rule) == ("shadowed", "delivery")
    assert "never answers while closed: rule 'fuera_de_horario'" in warning.message
    assert spanish(warning).startswith(
        "No responde mientras está cerrado: la regla «fuera_de_horario»"
    )


def load_rules_text(tmp_path: Path, text: str) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return load_rules(path, ROOT / "templates", MONDAY_10AM)


# --- errors: each has its kind ---------------------------------------------------------------

ERRORS = [
    ("yaml", "rules: [\n", "syntax"),
    ("not-utf8", None, "syntax"),
    ("unknown-key", "rules:\n  - {name: a, keywords: [a], reply: b, color: x}\n", "schema"),
    ("bad-pattern", "rules:\n  - {name: a, pattern: '(a', reply: b}\n", "regex"),
    ("bad-accept", "flows:\n  f:\n    trigger: {keywords: [f]}\n    steps:\n"
     "      - {ask: x, accept: '[a'}\n", "regex"),
    ("missing-template", "rules:\n  - {name: a, keywords: [a], template: no.txt}\n", "template"),
    ("template-syntax", 'rules:\n  - {name: a, keywords: [a], reply: "{{ x"}\n', "template"),
    ("bad-hours", "settings:\n  hours: {lunez: '08:00-17:00'}\nrules: []\n", "schema"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "kind"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_each_error_has_its_kind(tmp_path: Path, text: str | None, kind: str) -> None:
    if text is None:
        path = tmp_path / "rules.yaml"
        path.write_bytes("rules:\n  - {name: año}\n".encode("latin-1"))
        ruleset = load_rules(path, tmp_path, MONDAY_10AM)
    else:
        ruleset = load(tmp_path, text)
    assert [p.kind for p in ruleset.errors] == [kind]
    assert spanish(ruleset.errors[0])


def test_every_problem_of_the_rules_tests_has_a_known_kind(tmp_path: Path) -> None:
    """The broken files of tests/test_rules.py: errors carry error kinds, warnings warning
    kinds, and each has a Spanish text."""
    from tests.test_rules import PROBLEMS, TEMPLATES, load_text

    for i, (_, text, _, _) in enumerate(PROBLEMS):
        folder = tmp_path / str(i)
        folder.mkdir()
        for problem in load_text(folder, text, TEMPLATES).problems:
            kinds = ERROR_KINDS if problem.severity == "error" else WARNING_KINDS
            assert problem.kind in kinds, problem
            assert spanish(problem), problem


# --- Spanish ---------------------------------------------------------------------------------


def test_every_warning_kind_and_code_has_a_spanish_text() -> None:
    codes = {(kind, code) for kind, code in MESSAGES}
    assert {kind for kind, _ in codes} >= set(WARNING_KINDS)
    for kind, code in codes:
        assert kind in ERROR_KINDS or kind in WARNING_KINDS, (kind, code)


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        (
            Problem(
                9,
                "",
                "b",
                "warning",
                "duplicate_keyword",
                "",
                {
                    "keywords": ["hola", "buenas"],
                    "earlier": "a",
                    "earlier_line": 4,
                    "condition_es": "está abierto",
                },
            ),
            "Las palabras clave «hola» y «buenas» también están en la regla «a» (línea 4), "
            "que va antes y responde primero mientras está abierto.",
        ),
        (
            Problem(3, "", "a", "warning", "cost", "cut", {"parts": 4, "chars": 559, "cap": 3}),
            "La respuesta cuesta 4 SMS (559 caracteres): solo se envían 3 (max_reply_sms) y el "
            "resto se corta.",
        ),
        (
            Problem(3, "", "a", "warning", "backtracking", "", {"why": OVERLAP}),
            "El patrón puede tardar muchísimo con un mensaje largo casi coincidente: "
            "alternativas dentro de una repetición coinciden con el mismo texto, como (a|aa)+.",
        ),
        (
            Problem(3, "", "a", "warning", "backtracking", "", {"why": NESTED}),
            "El patrón puede tardar muchísimo con un mensaje largo casi coincidente: un grupo "
            "repetido contiene algo que coincide con el mismo texto de varias formas, como "
            "(\\w+\\s?)+ o (a+)+; separe las repeticiones.",
        ),
        (
            Problem(
                2,
                "unknown key 'keyword' in rule; did you mean 'keywords'?",
                "a",
                code="unknown_key",
                params={"key": "keyword", "where": "rule", "suggestion": "keywords"},
            ),
            "Clave desconocida «keyword» en la regla; ¿quiso decir «keywords»?",
        ),
        (
            Problem(5, "fuzzy must be a number of typos from 0 to 3", "a"),
            "Valor no válido: fuzzy must be a number of typos from 0 to 3",
        ),
    ],
    ids=["duplicate", "cost-cut", "overlap", "nested", "unknown-key", "no-text-of-its-own"],
)
def test_spanish_texts(problem: Problem, text: str) -> None:
    assert spanish(problem) == text


def test_spanish_texts_use_params_not_the_english_message(tmp_path: Path) -> None:
    ruleset = load(tmp_path, WARNINGS[0][1])
    (warning,) = ruleset.problems
    blank = Problem(warning.line, "", warning.rule, warning.severity, warning.kind, warning.code,
                    warning.params)  # fmt: skip
    assert spanish(blank) == spanish(warning)
    assert re.search(r"la regla «fuera_de_horario» \(línea 4\)", spanish(warning))
