"""Every error the rules code can raise has a Spanish text of its own (issue 13): a broken
file per error code, a scan of the code for the codes it raises, and the broken files of the
other rules tests, none of which may fall back to "KIND: <English>"."""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import yaml

from responder.rules import publish
from responder.rules.errors_es import ERRORS
from responder.rules.flows import FLOW_KEYS, STEP_KEYS, TRIGGER_KEYS
from responder.rules.messages_es import KIND_NAMES, MESSAGES, spanish
from responder.rules.model import MATCH_MODES, Problem
from responder.rules.patterns import ENGINE_REFUSES
from responder.rules.schema import (
    PROVIDERS,
    RULE_KEYS,
    SETTINGS_KEYS,
    TOP_KEYS,
    WHEN_KEYS,
    compile_rules,
    syntax_problem,
)
from responder.rules.settings import DELIVERY_MODES
from responder.rules.yamlerrors import explain
from responder.rules.yamlpos import LOADER
from tests.conftest import MONDAY_10AM

RULES_CODE = Path(__file__).resolve().parent.parent / "responder" / "rules"
TEMPLATES = {"ok.txt": "Hola", "broken.txt": "Hola {{ contact.nombre "}
RULE = "rules:\n  - name: a\n    keywords: [a]\n"  # a rule's first lines; the broken one follows


def rule(fields: str) -> str:
    return "rules:\n  - {name: a, keywords: [a], reply: b, " + fields + "}\n"


def when(condition: str) -> str:
    return "rules:\n  - {name: a, reply: b, when: " + condition + "}\n"


def setting(line: str) -> str:
    return f"settings:\n  {line}\nrules: []\n"


def hours(days: str) -> str:
    return setting("hours: {" + days + "}")


def flow(step: str = "{say: hola}", extra: str = "") -> str:
    return f"flows:\n  f:\n    trigger: {{keywords: [f]}}\n{extra}    steps:\n      - {step}\n"


def _explained(err: Exception, text: str) -> Callable[[], Problem]:
    return lambda: syntax_problem(explain(err, text, LOADER))


def _refused(rules: str, templates: dict[str, str]) -> Callable[[], Problem]:
    def problem() -> Problem:
        found = publish.limits(rules, templates)
        assert found is not None
        return found

    return problem


_MARK = yaml.Mark("rules.yaml", 0, 0, 0, "rules: []\n", 0)

# (id, a broken rules file (or what builds the error where no file is known to reach it),
#  the error's kind and code)
SAMPLES: list[tuple[str, str | bytes | Callable[[], Problem], str, str]] = [
    # --- syntax ---------------------------------------------------------------------------
    ("not-utf8", rule("via: massiva").replace("massiva", "año").encode("latin-1"), "syntax",
     "not_utf8"),
    ("not-yaml", _explained(yaml.YAMLError("?"), "rules: []\n"), "syntax", "not_yaml"),
    ("too-deep", "rules:\n  - " + "[" * 1200 + "]" * 1200 + "\n", "syntax", "too_deep"),
    ("unreadable", _explained(yaml.scanner.ScannerError(problem="?", problem_mark=_MARK),
                              "rules: []\n"), "syntax", "unreadable"),
    ("unreadable-marked", _explained(yaml.MarkedYAMLError(problem="?", problem_mark=_MARK),
                                     "rules: []\n"), "syntax", "unreadable"),
    ("check-indentation", "%YAML 1.1\n%YAML 1.1\n---\nrules: []\n", "syntax",
     "check_indentation"),
    ("quote-never-ends", RULE + '    reply: "Abrimos a las 8\n    via: massiva\n', "syntax",
     "quote_never_ends"),
    ("backslash", RULE + '    reply: "C:\\carpeta"\n', "syntax", "backslash"),
    ("quoted-unreadable", RULE + "    reply: 'a\n---\nb'\n", "syntax", "quoted_unreadable"),
    ("colon", RULE + "    reply: Horario: 8 a 5\n", "syntax", "colon"),
    ("tab", RULE + "\treply: x\n", "syntax", "tab"),
    ("starts-with-star", RULE + "    reply: *Oferta* hoy\n", "syntax", "quote_it"),
    ("starts-with-at", RULE + "    reply: @tienda en IG\n", "syntax", "quote_it"),
    ("starts-with-bang", RULE + "    reply: !Hola! bienvenido\n", "syntax", "quote_it"),
    ("key-without-colon", RULE + "    reply [x]\n    via: massiva\n", "syntax",
     "key_without_colon"),
    ("never-closed", "rules:\n  - {name: a, keywords: [a]\n", "syntax", "never_closed"),
    ("expected-comma", "rules:\n  - name: a\n    keywords: [a, b\n    reply: x\n", "syntax",
     "expected_comma"),
    ("closes-nothing", RULE + "    reply: }\n", "syntax", "closes_nothing"),
    ("list-item", "settings: {}\n- name: a\n", "syntax", "list_item"),
    ("after-quote", RULE + "    reply: 'It's ok'\n", "syntax", "after_quote"),
    ("misaligned", RULE + "     reply: x\n", "syntax", "misaligned"),
    ("anchor-repeated", "settings: {a: &x 1}\nrules: [&x 2]\n", "syntax", "anchor_repeated"),
    ("second-document", "rules: []\n---\nrules: []\n", "syntax", "second_document"),
    ("merge-key", "base: &b {via: massiva}\nrules:\n  - <<: *b\n    name: a\n", "syntax",
     "merge_key"),
    ("unknown-value", "rules: &a !!omap {b: 1}\n", "syntax", "unknown_value"),
    ("bad-character", _explained(yaml.reader.ReaderError("rules.yaml", 0, 0, "utf-8", "?"),
                                 "rules: []\n"), "syntax", "bad_character"),
    ("character-not-allowed", RULE + "    reply: a\x07b\n", "syntax", "character_not_allowed"),
    ("duplicate-key", RULE + "    reply: a\n    reply: b\n", "syntax", "duplicate_key"),
    ("tag-misfit", RULE + "    fuzzy: !!int x\n", "syntax", "tag_misfit"),
    # --- the file ---------------------------------------------------------------------------
    ("empty-file", "", "schema", "empty_file"),
    ("not-mapping", "- a\n- b\n", "schema", "not_mapping"),
    ("rules-not-list", "settings: {}\n", "schema", "rules_not_list"),
    ("unknown-top-key", "settings: {}\nrules: []\nreglas: []\n", "schema", "unknown_key"),
    ("too-large", _refused("#" * (publish.MAX_RULES_BYTES + 1), {}), "schema", "too_large"),
    ("too-many-templates", _refused("rules: []\n", {f"{i}.txt": "" for i in range(201)}),
     "schema", "too_many_templates"),
    ("bad-template-name", _refused("rules: []\n", {"../x.txt": ""}), "schema",
     "bad_template_name"),
    # --- rules ------------------------------------------------------------------------------
    ("unknown-rule-key", rule("color: rojo"), "schema", "unknown_key"),
    ("rule-not-mapping", "rules:\n  - hola\n", "schema", "rule_not_mapping"),
    ("no-name", "rules:\n  - {keywords: [a], reply: b}\n", "schema", "no_name"),
    ("duplicate-name", rule("via: massiva") + "  - {name: a, keywords: [c], reply: d}\n",
     "schema", "duplicate_name"),
    ("empty-keyword", "rules:\n  - {name: a, keywords: [''], reply: b}\n", "schema",
     "empty_keyword"),
    ("bad-match", rule("match: todo"), "schema", "bad_match"),
    ("bad-fuzzy", rule("fuzzy: 5"), "schema", "bad_fuzzy"),
    ("fuzzy-contains", rule("match: contains, fuzzy: 1"), "schema", "fuzzy_contains"),
    ("keywords-and-pattern", rule("pattern: 'a+'"), "schema", "keywords_and_pattern"),
    ("answers-nothing", "rules:\n  - {name: a, reply: b}\n", "schema", "answers_nothing"),
    ("reply-and-template", rule("template: ok.txt"), "schema", "reply_and_template"),
    ("empty-reply", RULE + "    reply:\n", "schema", "empty_reply"),
    ("empty-template", RULE + "    template:\n", "schema", "empty_reply"),
    ("no-reply", "rules:\n  - {name: a, keywords: [a]}\n", "schema", "no_reply"),
    ("unknown-via", rule("via: whatsapp"), "schema", "unknown_via"),
    ("handoff-word", rule("handoff: si"), "schema", "not_boolean"),
    ("attention-word", rule("attention: si"), "schema", "not_boolean"),
    ("bad-label", rule("label: 'con espacio'"), "schema", "bad_label"),
    # --- conditions -------------------------------------------------------------------------
    ("bad-when", when("siempre"), "schema", "bad_when"),
    ("no-hours", when("open"), "schema", "no_hours"),
    ("unknown-when-key", when("{dias: lun}"), "schema", "unknown_key"),
    ("first-contact-word", when("{first_contact: si}"), "schema", "not_boolean"),
    ("bad-field", when("{field: ciudad}"), "schema", "bad_field"),
    ("field-unknown-key", when("{field: {name: ciudad, es: Caracas}}"), "schema",
     "unknown_key"),
    ("needs-conditions", when("{any: []}"), "schema", "needs_conditions"),
    ("unknown-day", when("{days: lunez}"), "schema", "unknown_day"),
    ("unknown-day-range", when("{days: lun-vyernes}"), "schema", "unknown_day_range"),
    ("bad-time-range", when("{hours: '8-17'}"), "schema", "bad_time_range"),
    ("time-out-of-range", when("{hours: '08:00-25:00'}"), "schema", "time_out_of_range"),
    # --- patterns and templates -------------------------------------------------------------
    ("bad-regex", "rules:\n  - {name: a, pattern: 'precio (?P<p>\\w+', reply: b}\n", "regex",
     "bad_regex"),
    ("bad-regex-no-position", "rules:\n  - {name: a, pattern: '(?i', reply: b}\n", "regex",
     "bad_regex"),
    ("regex-engine", lambda: Problem(3, ENGINE_REFUSES, "a", kind="regex", code="regex_engine"),
     "regex", "regex_engine"),
    ("template-not-found", "rules:\n  - {name: a, keywords: [a], template: no.txt}\n",
     "template", "template_not_found"),
    ("template-unclosed", 'rules:\n  - {name: a, keywords: [a], reply: "Hola {{ x"}\n',
     "template", "syntax"),
    ("template-tag-unclosed", "rules:\n  - {name: a, keywords: [a], reply: 'Hola {% if x'}\n",
     "template", "syntax"),
    ("template-no-endif", "rules:\n  - {name: a, keywords: [a], reply: '{% if x %}hola'}\n",
     "template", "syntax"),
    ("template-file", "rules:\n  - {name: a, keywords: [a], template: broken.txt}\n",
     "template", "syntax"),
    # --- settings ---------------------------------------------------------------------------
    ("settings-not-mapping", "settings: 5\nrules: []\n", "schema", "settings_not_mapping"),
    ("unknown-setting", setting("timezon: UTC"), "schema", "unknown_key"),
    ("unknown-timezone", setting("timezone: America/Caracass"), "schema", "unknown_timezone"),
    ("unknown-country", setting("country: ZZ"), "schema", "unknown_country"),
    ("bad-duration", setting("dedupe_window: diez"), "schema", "bad_duration"),
    ("flag-word", setting("smart_encoding: si"), "schema", "not_boolean"),
    ("bad-limit", setting("reply_limit: 5"), "schema", "bad_limit"),
    ("bad-limit-values", setting("reply_limit: {count: 0, per: 1h}"), "schema",
     "bad_limit_values"),
    ("bad-max-reply-sms", setting("max_reply_sms: 20"), "schema", "bad_max_reply_sms"),
    ("bad-keyword-reply", setting("opt_out: baja"), "schema", "bad_keyword_reply"),
    ("opt-out-unknown-key", setting("opt_out: {keywords: [baja], respuesta: x}"), "schema",
     "unknown_key"),
    ("bad-retry", setting("retry: 3"), "schema", "bad_retry"),
    ("bad-attempts", setting("retry: {attempts: 0}"), "schema", "bad_attempts"),
    ("bad-max-age", setting("retry: {max_age: pronto}"), "schema", "bad_duration"),
    ("bad-delivery", setting("delivery: nunca"), "schema", "bad_delivery"),
    ("bad-send-rate", setting("send_rate: 5"), "schema", "bad_send_rate"),
    ("unknown-provider", setting("send_rate: {twilio: 5}"), "schema", "unknown_provider"),
    ("bad-rate", setting("send_rate: {massiva: 0}"), "schema", "bad_rate"),
    ("bad-low-credit", setting("low_credit: poco"), "schema", "bad_low_credit"),
    ("bad-retention", setting("retention: 730d"), "schema", "bad_retention"),
    ("short-retention", setting("retention: {messages: 1h}"), "schema", "short_retention"),
    # --- settings.hours ---------------------------------------------------------------------
    ("hours-not-mapping", setting('hours: "08:00-17:00"'), "schema", "bad_hours"),
    ("hours-unknown-day", hours('lunez: "08:00-17:00"'), "schema", "unknown_day"),
    ("hours-unknown-range", hours('mon-fry: "08:00-17:00"'), "schema", "unknown_day_range"),
    ("hours-bad-time", hours('mon: "8-17"'), "schema", "bad_time_range"),
    ("hours-out-of-range", hours('mon: "08:00-25:00"'), "schema", "time_out_of_range"),
    ("empty-shift", hours('mon: "08:00-08:00"'), "schema", "empty_shift"),
    ("starts-at-24", hours('mon: "24:00-02:00"'), "schema", "starts_at_24"),
    ("shifts-overlap", hours('mon: "08:00-12:00, 11:00-14:00"'), "schema", "shifts_overlap"),
    ("day-twice", hours('mon-fri: "08:00-17:00", fri: "09:00-12:00"'), "schema", "day_twice"),
    ("closed-not-list", hours('closed: "2026-12-25"'), "schema", "closed_not_list"),
    ("bad-date", hours('closed: ["25/12/2026"]'), "schema", "bad_date"),
    ("bad-quiet", hours('quiet: "tarde"'), "schema", "bad_time_range"),
    # --- flows ------------------------------------------------------------------------------
    ("flows-not-mapping", "flows: [a]\n", "schema", "flows_not_mapping"),
    ("bad-flow", "flows:\n  f: 5\n", "schema", "bad_flow"),
    ("no-trigger", "flows:\n  f:\n    steps: [{say: hola}]\n", "schema", "no_trigger"),
    ("no-steps", "flows:\n  f:\n    trigger: {keywords: [f]}\n    steps: []\n", "schema",
     "no_steps"),
    ("unknown-flow-key", flow(extra="    espera: 5m\n"), "schema", "unknown_key"),
    ("step-not-mapping", flow("hola"), "schema", "step_not_mapping"),
    ("ask-or-say", flow("{ask: a, say: b}"), "schema", "ask_or_say"),
    ("unknown-step-key", flow("{say: a, guardar: x}"), "schema", "unknown_key"),
    ("bad-save", flow("{say: a, save: x}"), "schema", "bad_save"),
    ("bad-goto", flow("{say: a, goto: [x]}"), "schema", "bad_goto"),
    ("unknown-step", flow("{say: a, goto: fin}"), "schema", "unknown_step"),
    ("end-word", flow("{say: a, end: si}"), "schema", "not_boolean"),
    ("bad-accept", flow("{ask: a, accept: '[a'}"), "regex", "bad_regex"),
    ("bad-timeout", flow(extra="    timeout: pronto\n"), "schema", "bad_duration"),
    ("bad-max-retries", flow(extra="    max_retries: -1\n"), "schema", "bad_max_retries"),
    ("interruptible-word", flow(extra="    interruptible: si\n"), "schema", "not_boolean"),
]  # fmt: skip

# Words a Spanish text may share with the English one: what the author writes in rules.yaml.
RULES_WORDS = {
    *RULE_KEYS, *SETTINGS_KEYS, *WHEN_KEYS, *TOP_KEYS, *FLOW_KEYS, *STEP_KEYS, *TRIGGER_KEYS,
    *MATCH_MODES, *DELIVERY_MODES, *PROVIDERS,
    "true", "false", "open", "closed", "quiet", "count", "per", "attempts", "max_age", "name",
    "equals", "error", "regular",  # the same words in Spanish
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z_]{4,}")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|\{[^}]*\}")  # examples and the author's values


def errors_of(source: str | bytes | Callable[[], Problem]) -> tuple[Problem, ...]:
    if callable(source):
        return (source(),)
    raw = source.encode("utf-8") if isinstance(source, str) else source
    return compile_rules(raw, TEMPLATES, MONDAY_10AM, "rules.yaml").errors


def english_in(problem: Problem, text: str) -> set[str]:
    """Words of the English message, other than rules.yaml's own, the author's and those of
    its examples, that `text` has."""
    english = {w.lower() for w in _WORD.findall(_QUOTED.sub("", problem.message))}
    authors = {w.lower() for value in problem.params.values() for w in _WORD.findall(str(value))}
    return (english - RULES_WORDS - authors) & {w.lower() for w in _WORD.findall(text)}


def assert_own_text(problem: Problem) -> str:
    """The problem's Spanish text: its own, not the fallback, and without English words."""
    assert (problem.kind, problem.code) in MESSAGES, problem
    text = spanish(problem)
    assert not text.startswith(f"{KIND_NAMES.get(problem.kind, 'Problema')}: "), problem
    assert problem.message not in text
    assert not english_in(problem, text), (text, problem.message)
    return text


@pytest.mark.parametrize(
    ("source", "kind", "code"), [s[1:] for s in SAMPLES], ids=[s[0] for s in SAMPLES]
)
def test_each_error_has_a_spanish_text_of_its_own(
    source: str | bytes | Callable[[], Problem], kind: str, code: str
) -> None:
    errors = errors_of(source)
    assert (kind, code) in {(p.kind, p.code) for p in errors}, errors
    for problem in errors:
        assert_own_text(problem)
        # Built from the params alone: the English message may change without touching it.
        blank = Problem(problem.line, "", problem.rule, "error", problem.kind, problem.code,
                        problem.params)  # fmt: skip
        assert spanish(blank) == spanish(problem)


def raised_codes(tree: ast.AST) -> Iterable[tuple[int, str | None]]:
    """(line, code) of every error raised in a module's syntax tree: each `code=` given to
    a call other than a warning's, and the code `draft_problem` gets; None when the code is
    not written out and not forwarded."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "warn":
            continue
        values = [k.value for k in node.keywords if k.arg == "code"]
        if name == "draft_problem" and len(node.args) > 1:
            values.append(node.args[1])
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                yield node.lineno, value.value
            elif not _forwarded(value):
                yield node.lineno, None


def _forwarded(value: ast.expr) -> bool:
    """`code=err.code` (another error's), or `code=code` (a helper's parameter, such as
    draft_problem's, whose callers the scan sees)."""
    return (isinstance(value, ast.Attribute) and value.attr == "code") or (
        isinstance(value, ast.Name) and value.id == "code"
    )


def test_every_code_the_rules_code_raises_has_a_sample() -> None:
    """A new error needs a sample above, which needs a Spanish text: this fails first."""
    sampled = {code for _, _, _, code in SAMPLES}
    raised: dict[str, str] = {}
    for path in sorted(RULES_CODE.glob("*.py")):
        for line, code in raised_codes(ast.parse(path.read_text(encoding="utf-8"))):
            assert code is not None, f"{path.name}:{line}: write the code out"
            raised[code] = f"{path.name}:{line}"
    assert len(raised) > 50  # the scan sees the codes
    missing = {code: where for code, where in raised.items() if code not in sampled}
    assert not missing, "errors without a sample (and maybe a Spanish text): " + str(missing)


def test_every_spanish_error_text_is_sampled() -> None:
    """No text for an error nobody raises: a renamed code would leave its text behind."""
    sampled = {(kind, code) for _, _, kind, code in SAMPLES}
    assert set(ERRORS) <= sampled, set(ERRORS) - sampled
    assert sampled <= set(MESSAGES)


def test_the_other_tests_broken_files_never_fall_back(tmp_path: Path) -> None:
    """The broken files of the rules, hours, YAML and checks tests: every error and warning
    has a text of its own."""
    from tests import test_checks, test_hours, test_rules, test_yaml_errors

    texts: list[str] = [case[1] for case in test_yaml_errors.BROKEN]
    texts += [test_rules.HEADER + textwrap.dedent(case[1]) for case in
              test_rules.PROBLEMS]  # fmt: skip
    texts += [f"settings:\n{line}\nrules:\n  - {{name: a, keywords: [a], reply: b}}\n"
              for _, line, _ in test_rules.SETTINGS_PROBLEMS]  # fmt: skip
    texts += [
        'settings:\n  hours:\n    sat: "09:00-13:00"\n    mon-fri: "08:00-17:00"\n'
        f"    {line}\nrules:\n  - {{name: a, keywords: [a], reply: b}}\n"
        for _, line, _ in test_hours.BAD_HOURS
    ]
    texts += [textwrap.dedent(case[1]) for case in test_checks.WARNINGS]
    texts += [case[1] for case in test_checks.ERRORS if case[1] is not None]
    seen: set[tuple[str, str]] = set()
    for text in texts:
        templates = {**test_rules.TEMPLATES, **TEMPLATES}
        found = compile_rules(text.encode("utf-8"), templates, MONDAY_10AM, "rules.yaml")
        assert found.problems, text
        for problem in found.problems:
            if problem.severity == "error":
                assert_own_text(problem)
            else:
                assert (problem.kind, problem.code) in MESSAGES, problem
            seen.add((problem.kind, problem.code))
    assert len(seen) > 40


@pytest.mark.parametrize(
    ("source", "text"),
    [
        (RULE + "    reply: Horario: 8 a 5\n",
         'Un texto con ": " debe ir entre comillas, por ejemplo reply: "Horario: 8 a 5".'),
        (RULE + "    reply: a\n    reply: b\n",
         "La clave «reply» está repetida (la primera está en la línea 4): deje una sola."),
        (RULE + "    reply: *Oferta* hoy\n",
         'Un texto que empieza con * debe ir entre comillas, por ejemplo reply: "*Oferta".'),
        (RULE + "    reply: 'Abrimos a las 8\n\n",
         "Las comillas que abren aquí nunca se cierran: ponga otra ' al final del texto."),
        (rule("color: rojo"), "Clave desconocida «color» en la regla."),
        (hours('lunez: "08:00-17:00"'),
         "Día desconocido «lunez»: use lun a dom (o mon a sun), por ejemplo sab,dom."),
        (setting("dedupe_window: diez"),
         "dedupe_window: «diez» no es una duración: escriba por ejemplo 10s, 5m, 1h o 2d "
         "(segundos, minutos, horas o días)."),
        ('rules:\n  - {name: a, keywords: [a], reply: "Hola {{ x"}\n',
         "La plantilla tiene un error: falta cerrar un {{ con }}."),
        ("rules:\n  - {name: a, keywords: [a], template: broken.txt}\n",
         "La plantilla broken.txt tiene un error en la línea 1: falta cerrar un {{ con }}."),
        ("rules:\n  - {name: a, pattern: 'precio (?P<p>\\w+', reply: b}\n",
         "El patrón no es una expresión regular válida (revise el carácter 8, «(»): cierre "
         "cada ( con ) y cada [ con ], y ponga \\ antes de un signo que busque tal cual, "
         "como \\+ o \\*."),
    ],
    ids=["colon", "duplicate-key", "star", "quote", "unknown-key", "day", "duration",
         "template", "template-file", "regex"],
)  # fmt: skip
def test_spanish_error_texts(source: str, text: str) -> None:
    (problem,) = errors_of(source)
    assert spanish(problem) == text
