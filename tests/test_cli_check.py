"""`responder check` and `responder simulate` on rules files written into a temporary folder."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from responder.budget import Overrun, Owner
from responder.cli import main
from responder.rules.schema import load_rules
from responder.store.sqlite import SQLiteStore
from tests.conftest import MONDAY_10AM, Clock

# Provider credentials of the developer's shell must not leak into these runs.
UNSET = (
    "MASSIVA_USER",
    "MASSIVA_PASSWORD",
    "MASSMS_API_ID",
    "MASSMS_USER",
    "MASSMS_PASSWORD",
    "MASSMS_SENDER_ID",
    "RESPONDER_PROVIDER",
)

GOOD = """\
settings:
  timezone: America/Caracas
  country: VE
rules:
  - name: horario
    keywords: [horario, "a que hora"]
    fuzzy: 1
    reply: "Abrimos de lunes a viernes, 8:00 a 17:00."
  - name: precio
    pattern: 'precio (?P<producto>\\w+)'
    template: precio.txt
  - name: asesor
    keywords: [asesor]
    reply: "Un asesor le escribirá pronto."
    handoff: true
  - name: largo
    keywords: [largo]
    reply: "{{ 'Texto largo de prueba. ' * 10 }}"
  - name: fuera_de_horario
    when: {not: {days: mon-fri, hours: "08:00-17:00"}}
    reply: "Estamos cerrados; le responderemos mañana."
  - name: otro
    fallback: true
    reply: "No entendí. Escriba HORARIO, PRECIO <producto> o ASESOR."
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder: rules.yaml, templates/ and the database path, and the cwd there."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "precio.txt").write_text(
        "El precio de {{ match.producto }} es 5 USD.", encoding="utf-8"
    )
    (tmp_path / "rules.yaml").write_text(GOOD, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    return tmp_path


def run(project: Path, *args: str) -> Result:
    env: dict[str, str | None] = dict.fromkeys(UNSET)
    env |= {
        "RESPONDER_RULES": str(project / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(project / "templates"),
        "RESPONDER_DATABASE": str(project / "responder.db"),
    }
    return CliRunner().invoke(main, list(args), env=env)


def write_rules(project: Path, text: str) -> None:
    (project / "rules.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


def problem_lines(output: str) -> list[tuple[int, str]]:
    """(line, message) of every `rules.yaml:LINE: problem` the command printed."""
    found = re.findall(r"rules\.yaml:(\d+): (?!rule )(.*)", output)
    return [(int(line), message) for line, message in found]


# --- check ----------------------------------------------------------------------------------


def test_check_a_good_file(project: Path) -> None:
    result = run(project, "check")
    assert result.exit_code == 0, result.output
    assert "6 rules, 0 flow(s), 0 error(s), 0 warning(s)" in result.output
    assert problem_lines(result.output) == []
    # Each rule with what its reply costs.
    assert "rules.yaml:5: rule horario: 1 SMS" in result.output
    assert "rules.yaml:9: rule precio: reply varies (template)" in result.output
    assert "rules.yaml:16: rule largo: reply varies (template)" in result.output


def test_check_prints_every_error_at_once_and_exits_1(project: Path) -> None:
    write_rules(
        project,
        """\
        settings:
          timezon: America/Caracas
        rules:
          - name: horario
            keyword: [horario]
            reply: "8 a 5"
          - name: precio
            pattern: 'precio (?P<producto>\\w+'
            reply: "x"
          - name: folleto
            keywords: [folleto]
            template: folleto.txt
          - name: roto
            keywords: [roto]
            reply: "Hola {{ contact.nombre "
          - name: urgente
            keywords: [urgente]
            reply: "ya"
            via: whatsapp
          - name: horario
            keywords: [abren]
            reply: "8 a 5"
          - name: otra_vez
            keywords: [abren]
            reply: "nunca"
        """,
    )
    result = run(project, "check")
    assert result.exit_code == 1
    problems = problem_lines(result.output)
    expected = [
        (2, "unknown key 'timezon' in settings; did you mean 'timezone'?"),
        (5, "unknown key 'keyword' in rule; did you mean 'keywords'? (rule horario)"),
        (8, "bad regular expression at character 8: "),
        (12, "template 'folleto.txt' not found in the templates folder (rule folleto)"),
        (15, "template syntax error: "),
        (19, "unknown via 'whatsapp'; use massiva, massms, sandbox (rule urgente)"),
        (20, "duplicate rule name (first at line 4) (rule horario)"),
        (23, "warning: unreachable: rule 'horario' (line 20) already answers these keywords"),
    ]
    for line, fragment in expected:
        assert any(n == line and fragment in m for n, m in problems), (line, fragment, problems)
    assert "7 rules, 0 flow(s), 8 error(s), 1 warning(s)" in result.output


def test_check_with_warnings_only_exits_0(project: Path) -> None:
    write_rules(
        project,
        """\
        rules:
          - name: horario
            keywords: [horario]
            reply: "Abrimos de lunes a viernes de 8:00 a 17:00, sábados de 9:00 a 13:00 y domingos de 10:00 a 12:00. Los feriados cerramos. Escriba ASESOR para hablar con una persona."
          - name: horas
            keywords: [horario]
            reply: "nunca"
        """,  # noqa: E501
    )
    result = run(project, "check")
    assert result.exit_code == 0, result.output
    assert problem_lines(result.output) == [
        (4, "warning: reply costs 2 SMS (163 characters) (rule horario)"),
        (5, "warning: unreachable: rule 'horario' (line 2) already answers these keywords "
            "(rule horas)"),
    ]  # fmt: skip
    assert "2 rules, 0 flow(s), 0 error(s), 2 warning(s)" in result.output


def test_check_warns_about_a_pattern_that_can_backtrack(project: Path) -> None:
    write_rules(
        project,
        r"""
        rules:
          - name: palabras
            reply: "Solo palabras."
            pattern: '^(\w+\s?)+$'
          - name: precio
            pattern: 'precio (?P<producto>\w+)'
            reply: "ok"
        """,
    )
    result = run(project, "check")
    assert result.exit_code == 0, result.output
    ((line, message),) = problem_lines(result.output)
    assert line == 5  # the pattern: line
    assert message.startswith("warning: pattern can backtrack catastrophically")
    assert message.endswith("(rule palabras)")
    assert "2 rules, 0 flow(s), 0 error(s), 1 warning(s)" in result.output


def test_check_lists_what_ran_over_budget_in_the_service(project: Path) -> None:
    """Overruns the service recorded in its database, for the rules as they are now."""
    rules = load_rules(project / "rules.yaml", project / "templates", MONDAY_10AM)
    precio = next(r for r in rules.rules if r.name == "precio")
    assert precio.pattern is not None and precio.reply is not None
    pattern_owner = precio.pattern.owner
    template_owner = precio.reply.owner  # type: ignore[attr-defined]

    async def record() -> None:
        store = SQLiteStore(project / "responder.db", Clock())
        await store.open()
        try:
            await store.record_overruns(
                [
                    Overrun("pattern", pattern_owner, "out of time"),
                    Overrun("pattern", pattern_owner, "out of time"),
                    Overrun("template", template_owner, "out of time"),
                    # An edited rule starts afresh: these belong to no rule of the file now.
                    Overrun("pattern", Owner("precio", 9, "(a|aa)+"), "out of time"),
                    Overrun("pattern", Owner("borrada", 3, "x"), "out of time"),
                ]
            )
        finally:
            await store.close()

    asyncio.run(record())
    result = run(project, "check")
    assert result.exit_code == 0, result.output
    assert [(n, m) for n, m in problem_lines(result.output) if "over budget" in m] == [
        (
            10,
            "warning: pattern over budget (out of time) on 2 message(s), last at 2026-11-23 "
            "14:00 UTC; counted as not matching (rule precio)",
        ),
        (
            11,
            "warning: template over budget (out of time) on 1 message(s), last at 2026-11-23 "
            "14:00 UTC; no reply sent (rule precio)",
        ),
    ]
    assert "6 rules, 0 flow(s), 0 error(s), 2 warning(s)" in result.output


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            "rules:\n  - name: h\n    keywords: [h]\n    reply: Horario: 8 a 5\n",
            4,
            "YAML syntax: a ': ' is not allowed here; a text containing ': ' must be quoted, "
            'e.g. reply: "Horario: 8 a 5"',
        ),
        (
            'rules:\n  - name: h\n    keywords: [h]\n    reply: "Abrimos a las 8\n',
            4,
            'YAML syntax: the quoted text that starts here never ends; close it with "',
        ),
        (
            "rules:\n  - name: h\n    keywords [h]\n    reply: x\n",
            3,
            "YAML syntax: a key without ':' after it, or a line indented too far",
        ),
        ("", 1, "the file is empty; it needs settings: and rules:"),
    ],
    ids=["unquoted-colon", "unclosed-quote", "missing-colon", "empty-file"],
)
def test_check_a_file_that_is_not_valid_yaml(
    project: Path, text: str, line: int, expected: str
) -> None:
    (project / "rules.yaml").write_text(text, encoding="utf-8")
    result = run(project, "check")
    assert result.exit_code == 1
    ((found_line, message),) = problem_lines(result.output)
    assert (found_line, message) == (line, expected)


def test_check_takes_the_rules_path_and_templates_as_arguments(project: Path) -> None:
    other = project / "other"
    (other / "plantillas").mkdir(parents=True)
    (other / "plantillas" / "hola.txt").write_text("Hola", encoding="utf-8")
    (other / "rules.yaml").write_text(
        "rules:\n  - {name: hola, keywords: [hola], template: hola.txt}\n", encoding="utf-8"
    )
    result = run(project, "check", str(other / "rules.yaml"), "--templates", "other/plantillas")
    assert result.exit_code == 0, result.output
    assert f"{other / 'rules.yaml'}:2: rule hola: reply varies (template)" in result.output
    missing = run(project, "check", str(other / "rules.yaml"))
    assert missing.exit_code == 1
    assert "rules.yaml:2: template 'hola.txt' not found" in missing.output


def test_check_a_missing_file(project: Path) -> None:
    result = run(project, "check", "nowhere.yaml")
    assert result.exit_code == 1
    assert "nowhere.yaml: no such file" in result.output


# --- simulate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (
            ["04121234567", "¿A QUÉ HORA", "abren?", "--at", "2026-11-23 10:00"],
            [
                "rule: horario",
                "why:  word 'a que hora'",
                "reply (1 SMS): Abrimos de lunes a viernes, 8:00 a 17:00.",
            ],
        ),
        (
            ["04121234567", "horaro", "--at", "2026-11-23 10:00"],
            ["rule: horario", "why:  word 'horario' ~ 'horaro' (fuzzy distance 1)"],
        ),
        (
            ["+58 412-123.45.67", "precio café", "--at", "2026-11-23 10:00"],
            [
                "rule: precio",
                "why:  pattern 'precio (?P<producto>\\w+)'",
                "reply (1 SMS): El precio de cafe es 5 USD.",
            ],
        ),
        (
            ["04121234567", "hola", "--at", "2026-11-23 20:00"],
            [
                "rule: fuera_de_horario",
                "why:  matches every message, when not (days mon-fri and hours 08:00-17:00)",
                "reply (1 SMS): Estamos cerrados; le responderemos mañana.",
            ],
        ),
        (
            ["04121234567", "hola", "--at", "2026-11-23 10:00"],
            [
                "rule: otro",
                "why:  fallback",
                "reply (1 SMS): No entendi. Escriba HORARIO, PRECIO <producto> o ASESOR.",
            ],
        ),
        (
            ["04121234567", "largo", "--at", "2026-11-23 10:00"],
            ["rule: largo", "reply (1 SMS): Texto largo de prueba. Texto largo"],
        ),
        (
            ["04121234567", "Baja", "por", "favor"],
            [
                "rule: opt_out",
                "why:  opt-out keyword 'baja'",
                "reply (1 SMS): No recibira mas mensajes. Envie ALTA para volver.",
            ],
        ),
    ],
    ids=["keywords", "fuzzy", "pattern", "out-of-hours", "fallback", "long-reply", "opt-out"],
)
def test_simulate(project: Path, args: list[str], lines: list[str]) -> None:
    result = run(project, "simulate", *args)
    assert result.exit_code == 0, result.output
    for line in lines:
        assert line in result.output, result.output


def test_simulate_splits_a_long_reply_and_counts_each_part(project: Path) -> None:
    result = run(project, "simulate", "04121234567", "largo", "--at", "2026-11-23 10:00")
    replies = [line for line in result.output.splitlines() if line.startswith("reply (")]
    assert len(replies) == 2
    assert all(line.startswith("reply (1 SMS): ") for line in replies)


def test_simulate_a_handoff_and_no_match(project: Path) -> None:
    write_rules(project, "rules:\n  - {name: asesor, keywords: [asesor], handoff: true}\n")
    handoff = run(project, "simulate", "04121234567", "asesor")
    assert handoff.exit_code == 0, handoff.output
    assert "rule: asesor" in handoff.output and "no reply" in handoff.output
    nothing = run(project, "simulate", "04121234567", "otra", "cosa")
    assert nothing.output.splitlines()[:2] == ["rule: (none)", "why:  no rule matched"]


def test_simulate_shows_a_template_error(project: Path) -> None:
    write_rules(project, "rules:\n  - {name: mal, keywords: [mal], reply: '{{ 1/0 }}'}\n")
    result = run(project, "simulate", "04121234567", "mal")
    assert result.exit_code == 0, result.output
    assert "error: rule mal: ZeroDivisionError: " in result.output
    assert "no reply" in result.output


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["04121234567", "hola", "--at", "mañana"], 2, "use YYYY-MM-DD HH:MM"),
        (["12", "hola"], 1, "Error: '12' is not a valid phone number for region VE"),
    ],
    ids=["bad-moment", "bad-phone"],
)
def test_simulate_refuses_bad_input(
    project: Path, args: list[str], code: int, fragment: str
) -> None:
    result = run(project, "simulate", *args)
    assert result.exit_code == code
    assert fragment in result.output


def test_simulate_with_broken_rules_names_the_line(project: Path) -> None:
    write_rules(project, "rules:\n  - {name: a, keywords: [a], reply: b, via: fax}\n")
    result = run(project, "simulate", "04121234567", "a")
    assert result.exit_code == 1
    assert "rules.yaml:2: unknown via 'fax'" in result.output


def test_check_prints_the_warnings_of_the_editor(project: Path) -> None:
    """The same findings as the browser's check, in English: a rule below a `when:`-only
    rule, a shared keyword, an unknown variable, a UCS-2 reply."""
    write_rules(
        project,
        """\
        settings:
          hours: {mon-fri: "08:00-17:00"}
        rules:
          - name: horario
            keywords: [horario]
            reply: "Abrimos {{ hours.week }}, {{ hours.hoy }}."
          - name: fuera_de_horario
            when: closed
            reply: "Cerrado"
          - name: delivery
            keywords: [delivery, horario]
            reply: "Enviamos ☕"
        """,
    )
    result = run(project, "check")
    assert result.exit_code == 0, result.output
    assert problem_lines(result.output) == [
        (6, "warning: unknown variable 'hours.hoy': hours has today, week (rule horario)"),
        (10, "warning: never answers while closed: rule 'fuera_de_horario' (line 7) has no "
             "keywords or pattern and answers every message then; move this rule above it to "
             "answer then too (rule delivery)"),
        (10, "warning: keyword 'horario' also in rule 'horario' (line 4), which comes first "
             "and answers it (rule delivery)"),
        (12, "warning: reply is sent as UCS-2 (70 characters per SMS) because of '☕' even "
             "after smart encoding: 1 SMS (10 characters) (rule delivery)"),
    ]  # fmt: skip
    assert "3 rules, 0 flow(s), 0 error(s), 4 warning(s)" in result.output


def test_check_the_bundled_rules(project: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    result = run(project, "check", str(root / "rules.yaml"), "--templates", str(root / "templates"))
    assert result.exit_code == 0, result.output
    assert "8 rules, 1 flow(s), 0 error(s), 0 warning(s)" in result.output
