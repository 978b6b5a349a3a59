"""Loading and validating rules.yaml: what compiles, and every problem with its line."""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from responder.rules import conditions as cond
from responder.rules.conditions import parse_duration
from responder.rules.model import Limit, Problem
from responder.rules.schema import SETTINGS_KEYS, RuleSet, load_rules
from tests.conftest import MONDAY_10AM

ROOT = Path(__file__).resolve().parent.parent
MARK = "# <--"  # the line a problem must name, marked in the YAML itself
HEADER = "settings:\n  timezone: America/Caracas\nrules:\n"


def load_text(
    tmp_path: Path, text: str, templates: dict[str, str] | None = None, raw: bool = False
) -> RuleSet:
    """Writes `text` (rules only, unless `raw`) and its templates into tmp_path and loads it."""
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    for name, body in (templates or {}).items():
        (folder / name).write_text(body, encoding="utf-8")
    body = textwrap.dedent(text)
    path = tmp_path / "rules.yaml"
    path.write_text(body if raw else HEADER + body, encoding="utf-8")
    return load_rules(path, folder, MONDAY_10AM)


def marked_line(text: str, raw: bool = False) -> int:
    """The 1-based line of the `# <--` marker in the file load_text writes."""
    full = textwrap.dedent(text) if raw else HEADER + textwrap.dedent(text)
    lines = [i for i, line in enumerate(full.splitlines(), 1) if MARK in line]
    assert len(lines) == 1, "mark exactly one line"
    return lines[0]


# --- the bundled file ------------------------------------------------------------------------


def test_the_bundled_rules_load_without_problems() -> None:
    ruleset = load_rules(ROOT / "rules.yaml", ROOT / "templates", MONDAY_10AM)
    assert ruleset.problems == ()
    assert [r.name for r in ruleset.rules] == [
        "horario",
        "precio",
        "precios",
        "direccion",
        "asesor",
        "saludo",
        "fuera_de_horario",
        "otro",
    ]
    settings = ruleset.settings
    assert settings.timezone == ZoneInfo("America/Caracas")
    assert settings.reply_limit == Limit(5, 3600)
    assert settings.opt_out is not None
    assert settings.opt_out.keywords == ("baja", "stop", "cancelar", "alto", "unsubscribe")
    assert settings.opt_in is not None
    assert settings.opt_in.keywords == ("alta", "start")


def test_a_rule_compiles_with_normalised_keywords_and_its_lines(tmp_path: Path) -> None:
    ruleset = load_text(
        tmp_path,
        """\
        - name: horario
          keywords: ["¿A QUÉ HORA?", Horario]
          match: first
          fuzzy: 1
          reply: "8 a 5"
          via: massms
        """,
    )
    (rule,) = ruleset.rules
    assert (rule.name, rule.line, rule.position) == ("horario", 4, 0)
    assert rule.keywords == ("a que hora", "horario")
    assert (rule.mode, rule.fuzzy, rule.via) == ("first", 1, "massms")
    assert ruleset.version.loaded_at == MONDAY_10AM
    raw = (tmp_path / "rules.yaml").read_bytes()
    assert ruleset.version.sha256 == hashlib.sha256(raw).hexdigest()


def test_settings_default_when_left_out(tmp_path: Path) -> None:
    ruleset = load_text(tmp_path, "rules:\n  - {name: a, keywords: [a], reply: b}\n", raw=True)
    settings = ruleset.settings
    assert ruleset.problems == ()
    assert settings.timezone == ZoneInfo("America/Caracas")
    assert (settings.country, settings.smart_encoding) == ("VE", True)
    assert settings.reply_limit == Limit(5, 3600)
    assert settings.loop_guard == Limit(20, 300)
    assert settings.dedupe_window == 10.0
    assert settings.handoff_timeout is None
    assert settings.retention is None
    assert settings.opt_out is not None and "baja" in settings.opt_out.keywords
    assert settings.opt_in is not None and "alta" in settings.opt_in.keywords


def test_every_setting_is_read(tmp_path: Path) -> None:
    ruleset = load_text(
        tmp_path,
        """\
        settings:
          timezone: America/Bogota
          country: CO
          reply_limit: {count: 3, per: 10m}
          loop_guard: {count: 10, per: 1h}
          dedupe_window: 30s
          smart_encoding: false
          handoff_timeout: 2h
          opt_out: {keywords: [SALIR, "No más"], reply: "Adiós."}
          opt_in: false
          retention: {messages: 730d}
        rules:
          - {name: a, keywords: [a], reply: b}
        """,
        raw=True,
    )
    settings = ruleset.settings
    # Without smart encoding, `ó` makes the opt-out reply UCS-2: a warning, not an error.
    assert [(p.line, p.kind) for p in ruleset.problems] == [(9, "ucs2")]
    assert settings.timezone == ZoneInfo("America/Bogota")
    assert settings.country == "CO"
    assert settings.reply_limit == Limit(3, 600)
    assert settings.loop_guard == Limit(10, 3600)
    assert (settings.dedupe_window, settings.handoff_timeout) == (30, 7200)
    assert settings.smart_encoding is False
    assert settings.opt_out is not None
    assert settings.opt_out.keywords == ("salir", "no mas")
    assert settings.opt_out.source == "Adiós."
    assert settings.opt_in is None
    assert settings.retention == 730 * 86400


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("10s", 10), ("5m", 300), ("1h", 3600), ("2d", 172800), (15, 15), ("1.5h", 5400)],
    ids=["seconds", "minutes", "hours", "days", "bare-number", "fraction"],
)
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["10x", "", "una hora", True], ids=str)
def test_bad_durations(raw: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(raw)


def test_yes_no_on_off_stay_words(tmp_path: Path) -> None:
    """YAML 1.1 would read `no` as false: a Spanish `keywords: [si, no]` must stay words."""
    ruleset = load_text(
        tmp_path,
        """\
        - name: respuesta
          keywords: [si, no, NO, on, off, yes, 0412]
          reply: "ok"
        """,
    )
    assert ruleset.problems == ()
    assert ruleset.rules[0].keywords == ("si", "no", "no", "on", "off", "yes", "0412")


def test_a_reply_with_a_colon_inside_quotes_is_fine(tmp_path: Path) -> None:
    ruleset = load_text(tmp_path, '- {name: h, keywords: [h], reply: "Horario: 8:30 a 5"}\n')
    assert ruleset.problems == ()
    assert ruleset.rules[0].reply_source == "Horario: 8:30 a 5"


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(("\ufeff" + HEADER + "  - {name: a, keywords: [a], reply: b}\n").encode())
    ruleset = load_rules(path, tmp_path, MONDAY_10AM)
    assert ruleset.problems == ()
    assert ruleset.settings.timezone == ZoneInfo("America/Caracas")


def test_problems_are_all_reported_at_once_in_line_order(tmp_path: Path) -> None:
    ruleset = load_text(
        tmp_path,
        """\
        - name: a
          keyword: [a]
          reply: "x"
        - name: b
          keywords: [b]
          template: missing.txt
          via: whatsapp
        - name: c
          pattern: '(unclosed'
          reply: "y"
        """,
    )
    lines = [p.line for p in ruleset.errors]
    assert lines == sorted(lines)
    assert len(ruleset.errors) == 5
    assert {p.rule for p in ruleset.errors} == {"a", "b", "c"}


def test_problem_format_names_file_line_and_rule() -> None:
    assert Problem(7, "bad", "horario").format("rules.yaml") == "rules.yaml:7: bad (rule horario)"
    warning = Problem(3, "long", None, "warning")
    assert warning.format("rules.yaml") == "rules.yaml:3: warning: long"


# --- validation: each problem, its line, its severity --------------------------------------

TEMPLATES = {"ok.txt": "Hola {{ contact.nombre }}", "broken.txt": "Hola {{ contact.nombre "}
LONG = "Abrimos de lunes a viernes de 8:00 a 17:00 y los sábados de 9:00 a 13:00; " * 3

# (id, rules yaml with `# <--` on the offending line, message fragment, severity)
PROBLEMS = [
    (
        "unknown-rule-key-did-you-mean",
        """\
        - name: horario
          keyword: [horario]  # <--
          reply: "8 a 5"
        """,
        "unknown key 'keyword' in rule; did you mean 'keywords'?",
        "error",
    ),
    (
        "unknown-when-key-did-you-mean",
        """\
        - name: primera
          when:
            frist_contact: true  # <--
          reply: "Bienvenido"
        """,
        "unknown key 'frist_contact' in when; did you mean 'first_contact'?",
        "error",
    ),
    (
        "duplicate-rule-name",
        """\
        - name: horario
          keywords: [horario]
          reply: "8 a 5"
        - name: horario  # <--
          keywords: [abren]
          reply: "8 a 5"
        """,
        "duplicate rule name (first at line 4)",
        "error",
    ),
    (
        "bad-regex-on-pattern-line",
        """\
        - name: precio
          reply: "x"
          pattern: 'precio (?P<producto>\\w+'  # <--
        """,
        "bad regular expression at character 8: ",
        "error",
    ),
    (
        "pattern-never-sees-question-marks",
        """\
        - name: precio
          reply: "x"
          pattern: '¿Precio (?P<producto>\\w+)?'  # <--
        """,
        "patterns see the message in lowercase, without accents or ¿¡?!.,;: so '¿' never matches",
        "warning",
    ),
    (
        "pattern-never-sees-dots",
        """\
        - name: precio
          reply: "x"
          pattern: 'cuesta 10\\.50'  # <--
        """,
        "so '\\.' never matches",
        "warning",
    ),
    (
        "pattern-never-sees-accents",
        """\
        - name: manana
          reply: "x"
          pattern: 'mañana'  # <--
        """,
        "so 'ñ' never matches",
        "warning",
    ),
    (
        "missing-template",
        """\
        - name: precio
          keywords: [precio]
          template: precios.txt  # <--
        """,
        "template 'precios.txt' not found in the templates folder",
        "error",
    ),
    (
        "template-syntax-error-inline",
        """\
        - name: saludo
          keywords: [hola]
          reply: "Hola {{ contact.nombre "  # <--
        """,
        "template syntax error: ",
        "error",
    ),
    (
        "template-syntax-error-in-file",
        """\
        - name: saludo
          keywords: [hola]
          template: broken.txt  # <--
        """,
        "template syntax error: broken.txt:1: ",
        "error",
    ),
    (
        "unknown-via",
        """\
        - name: a
          keywords: [a]
          reply: "b"
          via: whatsapp  # <--
        """,
        "unknown via 'whatsapp'; use massiva, massms, sandbox",
        "error",
    ),
    (
        "unreachable-same-keyword",
        """\
        - name: horario
          keywords: [horario, abren]
          reply: "8 a 5"
        - name: horas  # <--
          keywords: [Horario]
          reply: "nunca"
        """,
        "unreachable: rule 'horario' (line 4) already answers these keywords",
        "warning",
    ),
    (
        "unreachable-word-covers-exact",
        """\
        - name: hola
          keywords: [hola]
          reply: "Hola"
        - name: solo_hola  # <--
          keywords: [hola]
          match: exact
          reply: "nunca"
        """,
        "unreachable: rule 'hola'",
        "warning",
    ),
    (
        "reply-never-fits-one-sms",
        f"""\
        - name: largo
          keywords: [horario]
          reply: "{LONG}"  # <--
        """,
        "reply costs 2 SMS",
        "warning",
    ),
    (
        "empty-reply-would-send-None",
        """\
        - name: a
          keywords: [a]
          reply:  # <--
        """,
        "reply is empty",
        "error",
    ),
    (
        "no-reply-no-handoff",
        """\
        - name: a  # <--
          keywords: [a]
        """,
        "rule needs a reply or a template",
        "error",
    ),
    (
        "nothing-to-match",
        """\
        - name: a  # <--
          reply: "b"
        """,
        "rule needs keywords, pattern, when or fallback: true",
        "error",
    ),
    (
        "no-name",
        """\
        - keywords: [a]  # <--
          reply: "b"
        """,
        "rule has no name",
        "error",
    ),
    (
        "reply-and-template",
        """\
        - name: a
          keywords: [a]
          reply: "b"
          template: ok.txt  # <--
        """,
        "use either reply or template, not both",
        "error",
    ),
    (
        "keywords-and-pattern",
        """\
        - name: a
          keywords: [a]
          pattern: 'a+'  # <--
          reply: "b"
        """,
        "use either keywords or pattern, not both",
        "error",
    ),
    (
        "empty-keyword",
        """\
        - name: a
          keywords: ["¿?"]  # <--
          reply: "b"
        """,
        "keywords must be non-empty words or phrases",
        "error",
    ),
    (
        "unknown-mode",
        """\
        - name: a
          keywords: [a]
          match: regex  # <--
          reply: "b"
        """,
        "match must be one of word, first, exact, contains",
        "error",
    ),
    (
        "fuzzy-out-of-range",
        """\
        - name: a
          keywords: [horario]
          fuzzy: 5  # <--
          reply: "b"
        """,
        "fuzzy must be a number of typos from 0 to 3",
        "error",
    ),
    (
        "fuzzy-with-contains",
        """\
        - name: a
          keywords: [horario]
          match: contains
          fuzzy: 1  # <--
          reply: "b"
        """,
        "fuzzy cannot be combined with match: contains",
        "error",
    ),
    (
        "handoff-not-boolean",
        """\
        - name: asesor
          keywords: [asesor]
          reply: "Ya le atienden"
          handoff: si  # <--
        """,
        "handoff must be true or false",
        "error",
    ),
    (
        "unknown-day",
        """\
        - name: finde
          when:
            days: sabado-domingx  # <--
          reply: "b"
        """,
        "unknown day range",
        "error",
    ),
    (
        "bad-hours",
        """\
        - name: noche
          when:
            hours: 8-17  # <--
          reply: "b"
        """,
        "hours must look like 08:00-17:00",
        "error",
    ),
    (
        "hours-out-of-range",
        """\
        - name: noche
          when: {hours: "22:00-24:30"}  # <--
          reply: "b"
        """,
        "hours out of range",
        "error",
    ),
    (
        "first-contact-not-boolean",
        """\
        - name: nuevo
          when:
            first_contact: si  # <--
          reply: "b"
        """,
        "first_contact must be true or false",
        "error",
    ),
    (
        "field-without-name",
        """\
        - name: vip
          when:
            field: {equals: vip}  # <--
          reply: "b"
        """,
        "field expects {name: FIELD, equals: VALUE}",
        "error",
    ),
    (
        "nested-condition-line",
        """\
        - name: raro
          when:
            any:
              - {days: sat}
              - {hourz: "08:00-09:00"}  # <--
          reply: "b"
        """,
        "unknown key 'hourz' in when; did you mean 'hours'?",
        "error",
    ),
    (
        "when-not-a-mapping",
        """\
        - name: raro
          when: siempre  # <--
          reply: "b"
        """,
        "when: expects open, closed or a mapping",
        "error",
    ),
    (
        "rule-not-a-mapping",
        """\
        - horario  # <--
        """,
        "each rule must be a mapping",
        "error",
    ),
    (
        "yaml-unquoted-colon",
        """\
        - name: horario
          keywords: [horario]
          reply: Horario: 8 a 5  # <--
        """,
        "YAML syntax: a ': ' is not allowed here; a text containing ': ' must be quoted",
        "error",
    ),
    (
        "yaml-unclosed-quote-names-its-start",
        """\
        - name: horario
          keywords: [horario]
          reply: "Abrimos a las 8  # <--
        """,
        'YAML syntax: the quoted text that starts here never ends; close it with "',
        "error",
    ),
    (
        "yaml-duplicate-key",
        """\
        - name: horario
          keywords: [horario]
          reply: "a"
          reply: "b"  # <--
        """,
        "YAML syntax: duplicate key 'reply' (first at line 6)",
        "error",
    ),
]


@pytest.mark.parametrize(
    ("text", "fragment", "severity"),
    [case[1:] for case in PROBLEMS],
    ids=[case[0] for case in PROBLEMS],
)
def test_each_problem_names_its_line(
    tmp_path: Path, text: str, fragment: str, severity: str
) -> None:
    ruleset = load_text(tmp_path, text, TEMPLATES)
    found = [p for p in ruleset.problems if fragment in p.message]
    assert found, [p.format("rules.yaml") for p in ruleset.problems]
    assert (found[0].line, found[0].severity) == (marked_line(text), severity)


# Settings live above `rules:`, so these cases are whole files.
SETTINGS_PROBLEMS = [
    ("unknown-setting", "  timezon: UTC  # <--", "unknown key 'timezon' in settings; did you"),
    ("bad-timezone", "  timezone: America/Caracass  # <--", "unknown timezone"),
    ("bad-country", "  country: ZZ  # <--", "ZZ"),
    ("bad-limit", "  reply_limit: 5  # <--", "reply_limit must be {count: N, per: DURATION}"),
    ("bad-limit-count", "  reply_limit: {count: 0, per: 1h}  # <--", "count must be a positive"),
    ("bad-duration", "  dedupe_window: diez  # <--", "dedupe_window: expected a duration"),
    ("smart-encoding-word", "  smart_encoding: si  # <--", "smart_encoding must be true"),
    ("opt-out-key", "  opt_out: {keywords: [BAJA], respuesta: x}  # <--", "unknown key"),
    ("opt-out-template", '  opt_out: {keywords: [BAJA], reply: "{{ x"}  # <--', "syntax error"),
    ("retention-shape", "  retention: 730d  # <--", "retention must be {messages"),
    ("retention-duration", "  retention: {messages: dos años}  # <--", "retention:"),
    ("retention-short", "  retention: {messages: 1h}  # <--", "1d or more"),
]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [case[1:] for case in SETTINGS_PROBLEMS],
    ids=[case[0] for case in SETTINGS_PROBLEMS],
)
def test_each_settings_problem_names_its_line(tmp_path: Path, line: str, fragment: str) -> None:
    text = f"settings:\n{line}\nrules:\n  - {{name: a, keywords: [a], reply: b}}\n"
    ruleset = load_text(tmp_path, text, raw=True)
    found = [p for p in ruleset.errors if fragment in p.message]
    assert found, [p.format("rules.yaml") for p in ruleset.problems]
    assert found[0].line == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        ("# solo comentarios\n", "the file is empty"),
        ("- a\n- b\n", "the file must be a mapping with settings: and rules:"),
        ("settings: {}\n", "rules: must be a list of rules"),
        ("settings: {}\nrules: {}\nreglas: []\n", "unknown key 'reglas' in the file"),
    ],
    ids=["empty", "only-comments", "a-list", "no-rules", "unknown-top-key"],
)
def test_file_level_problems(tmp_path: Path, text: str, fragment: str) -> None:
    ruleset = load_text(tmp_path, text, raw=True)
    assert any(fragment in p.message for p in ruleset.errors), ruleset.problems


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes("rules:\n  - {name: a, keywords: [año], reply: b}\n".encode("latin-1"))
    (problem,) = load_rules(path, tmp_path, MONDAY_10AM).problems
    assert (problem.line, problem.message) == (1, "the file is not UTF-8 text")


@pytest.mark.parametrize(
    "text",
    [
        # Conditions make both reachable: each answers at other moments.
        """\
        - {name: a, keywords: [hola], reply: x, when: {hours: "08:00-12:00"}}
        - {name: b, keywords: [hola], reply: y}
        """,
        # The later rule tolerates typos the earlier one does not.
        """\
        - {name: a, keywords: [horario], reply: x}
        - {name: b, keywords: [horario], fuzzy: 1, reply: y}
        """,
        # Only one of the later rule's keywords is taken.
        """\
        - {name: a, keywords: [hola], reply: x}
        - {name: b, keywords: [hola, buenas], reply: y}
        """,
        # `exact` does not cover `word`.
        """\
        - {name: a, keywords: [hola], match: exact, reply: x}
        - {name: b, keywords: [hola], reply: y}
        """,
        # A fallback never hides anything.
        """\
        - {name: a, fallback: true, reply: x}
        - {name: b, keywords: [hola], reply: y}
        """,
    ],
    ids=["conditional", "more-fuzzy", "partly-new", "exact-then-word", "fallback-first"],
)
def test_reachable_rules_are_not_flagged(tmp_path: Path, text: str) -> None:
    # Keywords in both rules are still a `duplicate_keyword` warning (tests/test_checks.py).
    problems = load_text(tmp_path, text).problems
    assert [p for p in problems if p.kind != "duplicate_keyword"] == []


def test_dynamic_replies_are_not_measured(tmp_path: Path) -> None:
    long_template = "{{ contact.nombre }} " + LONG
    ruleset = load_text(tmp_path, f'- {{name: a, keywords: [a], reply: "{long_template}"}}\n')
    assert ruleset.problems == ()


def test_reply_length_follows_smart_encoding(tmp_path: Path) -> None:
    """`á` costs a UCS-2 SMS (70 characters) unless smart encoding turns it into `a`."""
    reply = "Sí, abrimos mañana a las 8:00. " * 3  # 93 characters
    rules = f'rules:\n  - {{name: a, keywords: [a], reply: "{reply}"}}\n'
    on = load_text(tmp_path, "settings: {smart_encoding: true}\n" + rules, raw=True)
    off = load_text(tmp_path, "settings: {smart_encoding: false}\n" + rules, raw=True)
    assert on.problems == ()
    # (the default opt-out and opt-in confirmations are UCS-2 then too)
    assert [p.message for p in off.problems if p.rule == "a"] == [
        "reply is sent as UCS-2 (70 characters per SMS) because of 'í': 2 SMS (92 characters)",
        "reply costs 2 SMS (92 characters)",
    ]


def test_handoff_without_reply_is_fine(tmp_path: Path) -> None:
    ruleset = load_text(tmp_path, "- {name: asesor, keywords: [asesor], handoff: true}\n")
    assert ruleset.problems == ()
    assert ruleset.rules[0].handoff and ruleset.rules[0].reply is None


def test_labels_a_rule_adds_and_removes(tmp_path: Path) -> None:
    ruleset = load_text(
        tmp_path,
        "- {name: promo, keywords: [promo], label: promo, reply: Listo}\n"
        "- {name: baja_promo, keywords: [no promo], unlabel: [promo, vip-2, promo]}\n",
    )
    assert ruleset.problems == ()  # a rule that only labels needs no reply
    assert [(r.label, r.unlabel) for r in ruleset.rules[:2]] == [
        (("promo",), ()),
        ((), ("promo", "vip-2")),
    ]


@pytest.mark.parametrize(
    "value", ["'con espacio'", "''", "'" + "a" * 41 + "'", "[ok, 3]", "{a: b}", "ñandú"]
)
def test_a_bad_label_is_an_error(tmp_path: Path, value: str) -> None:
    ruleset = load_text(
        tmp_path, f"- {{name: promo, keywords: [promo], label: {value}, reply: Listo}}\n"
    )
    assert [p.code for p in ruleset.problems if p.severity == "error"] == ["bad_label"]


def test_a_template_file_is_named_on_the_rule(tmp_path: Path) -> None:
    ruleset = load_text(
        tmp_path, "- {name: s, keywords: [hola], template: ok.txt}\n", {"ok.txt": "Hola"}
    )
    assert ruleset.problems == ()
    assert (ruleset.rules[0].template, ruleset.rules[0].reply_source) == ("ok.txt", "ok.txt")


def test_templates_cannot_be_read_from_outside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    ruleset = load_text(tmp_path, "- {name: s, keywords: [a], template: ../secret.txt}\n")
    assert [p.message for p in ruleset.errors] == [
        "template '../secret.txt' not found in the templates folder"
    ]


# --- conditions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        (["sat", "sun"], {5, 6}),
        ("fri-mon", {4, 5, 6, 0}),
        ("lun-vie", {0, 1, 2, 3, 4}),
        ("sáb,dom", {5, 6}),
        ("Lunes-Viernes", {0, 1, 2, 3, 4}),
        (["miércoles"], {2}),
        ("MON - WED", {0, 1, 2}),
    ],
    ids=str,
)
def test_days(raw: object, days: set[int]) -> None:
    assert cond.parse_days(raw) == days


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [
        ("08:00-17:00", (480, 1020)),
        ("22:00-06:00", (1320, 360)),
        ("8:30 - 12:00", (510, 720)),
        ("00:00-24:00", (0, 1440)),
    ],
    ids=str,
)
def test_hours(raw: str, minutes: tuple[int, int]) -> None:
    assert cond.parse_hours(raw) == minutes


def test_a_days_list_is_described_as_written(tmp_path: Path) -> None:
    ruleset = load_text(tmp_path, "- {name: f, when: {days: [sab, dom]}, reply: x}\n")
    when = ruleset.rules[0].when
    assert when is not None and when.describe() == "days sab,dom"


# --- the reference's examples ----------------------------------------------------------------


def doc_examples() -> list[str]:
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("example", doc_examples(), ids=lambda e: e.split("\n", 2)[1].strip())
def test_every_example_in_the_reference_loads(tmp_path: Path, example: str) -> None:
    saludo = "{% if contact.nombre %}¡Hola, {{ contact.nombre }}!{% else %}¡Hola!{% endif %}"
    ruleset = load_text(tmp_path, example, {"saludo.txt": saludo}, raw=True)
    assert ruleset.problems == (), [p.format("rules.yaml") for p in ruleset.problems]


def test_a_deeply_nested_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - " + "[" * 3000 + "]" * 3000 + "\n", encoding="utf-8")
    problems = load_rules(path, tmp_path, MONDAY_10AM).problems
    assert [(p.line, p.message) for p in problems] == [
        (2, "YAML syntax: lists and mappings nest too deeply here")
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", 3), ("1", 1), ("10", 10)],
    ids=["default", "one", "ten"],
)
def test_max_reply_sms(tmp_path: Path, value: str, expected: int) -> None:
    setting = f"settings: {{max_reply_sms: {value}}}\n" if value else ""
    ruleset = load_text(tmp_path, setting + "rules: []\n", raw=True)
    assert ruleset.problems == ()
    assert ruleset.settings.max_reply_sms == expected


@pytest.mark.parametrize("value", ["0", "11", "tres", "true", "2.5"])
def test_max_reply_sms_must_be_a_number_from_1_to_10(tmp_path: Path, value: str) -> None:
    ruleset = load_text(tmp_path, f"settings:\n  max_reply_sms: {value}\nrules: []\n", raw=True)
    assert [p.format("rules.yaml") for p in ruleset.problems] == [
        "rules.yaml:2: max_reply_sms must be a number from 1 to 10"
    ]
    assert ruleset.settings.max_reply_sms == 3


def test_a_fixed_reply_longer_than_max_reply_sms_is_a_warning(tmp_path: Path) -> None:
    reply = "palabra " * 70  # 559 characters as sent, in 4 parts of at most 160
    rules = f'rules:\n  - {{name: a, keywords: [a], reply: "{reply}"}}\n'
    ruleset = load_text(tmp_path, rules, raw=True)
    assert [p.message for p in ruleset.problems] == [
        "reply costs 4 SMS (559 characters): only 3 are sent (max_reply_sms), the rest is cut"
    ]


def test_every_setting_is_in_the_reference_table() -> None:
    """The settings table of docs/rules.md has a row per setting, and no row for another."""
    text = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert sorted(rows) == sorted(SETTINGS_KEYS)
