"""settings.hours: reading it (and its errors, by line), open and closed at the edges, across
midnight and on closed dates, `when: open/closed`, and `hours.today` / `hours.week` in replies."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from responder import engine
from responder.rules.conditions import Facts
from responder.rules.hours import OpeningHours, Shift, parse_shifts, week_text
from responder.rules.schema import RuleSet, load_rules
from tests.conftest import MONDAY_10AM

CARACAS = ZoneInfo("America/Caracas")  # UTC-4, no daylight saving
PHONE = "584121234567"
HOURS = """\
settings:
  timezone: America/Caracas
  hours:
    mon-fri: "08:00-17:00"
    sat: "09:00-13:00"
    closed: ["2026-12-25", 2027-01-01]
    quiet: "21:00-08:00"
"""


def load(tmp_path: Path, text: str) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp_path / "templates").mkdir(exist_ok=True)
    return load_rules(path, tmp_path / "templates", MONDAY_10AM)


def hours_of(tmp_path: Path, text: str = HOURS) -> OpeningHours:
    ruleset = load(tmp_path, text + "rules:\n  - {name: a, keywords: [a], reply: b}\n")
    assert ruleset.problems == (), ruleset.problems
    assert ruleset.settings.hours is not None
    return ruleset.settings.hours


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CARACAS)


# --- reading ---------------------------------------------------------------------------------


def test_the_hours_are_read_per_day(tmp_path: Path) -> None:
    hours = hours_of(tmp_path)
    assert hours.week[0] == hours.week[4] == (Shift(480, 1020),)
    assert hours.week[5] == (Shift(540, 780),)
    assert hours.week[6] == ()  # a day not named is closed
    assert {d.isoformat() for d in hours.closed} == {"2026-12-25", "2027-01-01"}
    assert hours.quiet == Shift(21 * 60, 8 * 60)


@pytest.mark.parametrize(
    ("value", "shifts"),
    [
        ("08:00-17:00", ((480, 1020),)),
        ("14:00-18:00, 08:00-12:00", ((480, 720), (840, 1080))),
        (["08:00-12:00", "14:00-18:00"], ((480, 720), (840, 1080))),
        ("22:00-02:00", ((1320, 120),)),
        ("00:00-24:00", ((0, 1440),)),
        ("closed", ()),
        ("cerrado", ()),
    ],
    ids=["one", "two-in-any-order", "a-list", "overnight", "all-day", "closed", "cerrado"],
)
def test_shifts(value: object, shifts: tuple[tuple[int, int], ...]) -> None:
    assert tuple((s.start, s.end) for s in parse_shifts(value)) == shifts


# (id, the line under `hours:` that is wrong, a fragment of the error)
BAD_HOURS = [
    ("unknown-day", 'lunez: "08:00-17:00"', "unknown day 'lunez'"),
    ("unknown-range", 'mon-fry: "08:00-17:00"', "unknown day range 'mon-fry'"),
    ("bad-time", 'mon: "8-17"', "hours must look like 08:00-17:00"),
    ("out-of-range", 'mon: "08:00-25:00"', "hours out of range"),
    ("empty-range", 'mon: "08:00-08:00"', "is empty; a whole day is 00:00-24:00"),
    ("overlap", 'mon: "08:00-12:00, 11:00-14:00"', "the ranges overlap"),
    ("day-twice", 'fri: "09:00-12:00"', "gives a day that line 4 gives too"),
    ("closed-not-a-list", 'closed: "2026-12-25"', "closed: expects a list of dates"),
    ("bad-quiet", 'quiet: "tarde"', "hours must look like 08:00-17:00"),
]


@pytest.mark.parametrize(
    ("line", "fragment"), [c[1:] for c in BAD_HOURS], ids=[c[0] for c in BAD_HOURS]
)
def test_bad_hours_name_their_line(tmp_path: Path, line: str, fragment: str) -> None:
    text = (
        'settings:\n  hours:\n    sat: "09:00-13:00"\n    mon-fri: "08:00-17:00"\n'
        f"    {line}\nrules:\n  - {{name: a, keywords: [a], reply: b}}\n"
    )
    ruleset = load(tmp_path, text)
    found = [(p.line, p.kind) for p in ruleset.errors if fragment in p.message]
    assert found == [(5, "schema")], [p.format("rules.yaml") for p in ruleset.problems]


@pytest.mark.parametrize("value", ["2026-13-01", "25/12/2026", "mañana"])
def test_a_bad_closed_date_names_its_own_line(tmp_path: Path, value: str) -> None:
    text = (
        "settings:\n  hours:\n    closed:\n      - 2026-12-25\n"
        f'      - "{value}"\nrules:\n  - {{name: a, keywords: [a], reply: b}}\n'
    )
    (problem,) = load(tmp_path, text).errors
    assert problem.line == 5
    assert "is not a date like 2026-12-25" in problem.message


def test_hours_must_be_a_mapping(tmp_path: Path) -> None:
    ruleset = load(tmp_path, 'settings:\n  hours: "08:00-17:00"\nrules: []\n')
    assert [(p.line, p.message) for p in ruleset.errors] == [
        (2, 'hours must be a mapping such as {mon-fri: "08:00-17:00"}')
    ]


# --- open or closed --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        ("2026-11-23 07:59", False),  # Monday, a minute before opening
        ("2026-11-23 08:00", True),  # the start is included
        ("2026-11-23 16:59", True),
        ("2026-11-23 17:00", False),  # the end is not
        ("2026-11-28 09:30", True),  # Saturday
        ("2026-11-28 13:00", False),
        ("2026-11-29 12:00", False),  # Sunday is not named
        ("2026-12-25 10:00", False),  # a Friday, but a closed date
        ("2026-12-24 10:00", True),
        ("2027-01-01 10:00", False),  # written without quotes in YAML
    ],
)
def test_open_and_closed(tmp_path: Path, moment: str, is_open: bool) -> None:
    assert hours_of(tmp_path).is_open(local(moment)) is is_open


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        ("2026-11-27 21:59", False),  # Friday
        ("2026-11-27 22:00", True),
        ("2026-11-27 23:59", True),
        ("2026-11-28 00:00", True),  # Saturday: Friday's shift goes on
        ("2026-11-28 01:59", True),
        ("2026-11-28 02:00", False),
        ("2026-11-28 22:30", False),  # Saturday has no shift of its own
        ("2026-11-24 01:00", False),  # Tuesday: Monday had no night shift
        ("2026-12-25 23:00", False),  # a closed Friday cancels its shift...
        ("2026-12-26 01:00", False),  # ...and what it would spill into Saturday
    ],
)
def test_a_shift_across_midnight(tmp_path: Path, moment: str, is_open: bool) -> None:
    night = 'settings:\n  hours:\n    fri: "22:00-02:00"\n    closed: ["2026-12-25"]\n'
    assert hours_of(tmp_path, night).is_open(local(moment)) is is_open


def test_a_closed_date_is_a_local_date(tmp_path: Path) -> None:
    """At 02:00 UTC on the 25th it is still the 24th in Caracas: open by a night shift."""
    night = 'settings:\n  hours:\n    thu: "20:00-23:00"\n    closed: ["2026-12-25"]\n'
    ruleset = load(tmp_path, night + "rules:\n  - {name: c, when: closed, reply: cerrado}\n")
    facts = Facts(datetime(2026, 12, 25, 2, 30, tzinfo=UTC).astimezone(CARACAS), False, {})
    assert ruleset.matcher.match("hola", facts) is None  # 22:30 on Thursday the 24th: open


# --- when: open / closed ---------------------------------------------------------------------


RULES = (
    HOURS
    + """\
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos {{ hours.week }}; {{ hours.today }}."
  - name: abierto
    keywords: [asesor]
    when: open
    reply: "Un asesor le escribe ya."
  - name: asesor_luego
    keywords: [asesor]
    when: {not: open}
    reply: "Un asesor le escribe mañana."
  - name: primera_vez_cerrado
    when: {all: [closed, {first_contact: true}]}
    reply: "Bienvenido; ahora estamos cerrados."
  - name: fuera_de_horario
    when: closed
    reply: "Cerrado. Horario: {{ hours.week }}."
  - name: otro
    fallback: true
    reply: "No entendí."
"""
)


def answer(
    ruleset: RuleSet, text: str, moment: str, first_contact: bool = False
) -> engine.Decision:
    now = local(moment).astimezone(UTC)
    contact = engine.Contact(PHONE, first_contact=first_contact)
    return engine.decide(ruleset, engine.InboundMessage(PHONE, text, now), contact, now)


@pytest.mark.parametrize(
    ("text", "moment", "first_contact", "rule", "reply"),
    [
        (
            "horario",
            "2026-11-23 10:00",
            False,
            "horario",
            "Abrimos lunes a viernes de 8:00 a 17:00, sabado de 9:00 a 13:00; hoy de 8:00 a 17:00.",
        ),
        (
            "horario",
            "2026-11-29 10:00",
            False,
            "horario",
            "Abrimos lunes a viernes de 8:00 a 17:00, sabado de 9:00 a 13:00; hoy cerrado.",
        ),
        ("horario", "2026-12-25 10:00", False, "horario", None),  # closed date: "hoy cerrado"
        ("asesor", "2026-11-23 10:00", False, "abierto", "Un asesor le escribe ya."),
        ("asesor", "2026-11-23 18:00", False, "asesor_luego", "Un asesor le escribe mañana."),
        ("hola", "2026-11-23 18:00", True, "primera_vez_cerrado", None),
        ("hola", "2026-11-23 18:00", False, "fuera_de_horario", None),
        ("hola", "2026-11-23 10:00", False, "otro", None),
        ("hola", "2026-12-25 10:00", False, "fuera_de_horario", None),
    ],
)
def test_when_open_and_closed_answer(
    tmp_path: Path, text: str, moment: str, first_contact: bool, rule: str, reply: str | None
) -> None:
    ruleset = load(tmp_path, RULES)
    assert ruleset.errors == ()
    decision = answer(ruleset, text, moment, first_contact)
    assert decision.rule == rule, decision.explanation
    if reply is not None:
        assert [r.text for r in decision.replies] == [reply]
    if moment.startswith("2026-12-25") and rule == "horario":
        assert decision.replies[0].text.endswith("hoy cerrado.")


def test_changing_the_hours_changes_the_answers(tmp_path: Path) -> None:
    later = RULES.replace('mon-fri: "08:00-17:00"', 'mon-fri: "10:00-19:00"')
    ruleset = load(tmp_path, later)
    decision = answer(ruleset, "horario", "2026-11-23 09:00")
    assert decision.replies[0].text.startswith("Abrimos lunes a viernes de 10:00 a 19:00")
    assert answer(ruleset, "hola", "2026-11-23 09:00").rule == "fuera_de_horario"
    assert answer(ruleset, "hola", "2026-11-23 18:00").rule == "otro"


def test_the_explanation_names_the_condition(tmp_path: Path) -> None:
    decision = answer(load(tmp_path, RULES), "hola", "2026-11-23 18:00")
    assert decision.explanation == "matches every message, when closed"


@pytest.mark.parametrize(
    "when",
    ["closed", "open", "cerrado", "{not: closed}", "{any: [open, {first_contact: true}]}"],
)
def test_open_and_closed_need_settings_hours(tmp_path: Path, when: str) -> None:
    text = f"rules:\n  - name: c\n    when: {when}\n    reply: x\n"
    errors = load(tmp_path, text).errors
    assert [(p.line, p.kind) for p in errors] == [(3, "schema")]
    assert "needs the opening hours in settings.hours" in errors[0].message


# --- the words -------------------------------------------------------------------------------


def week(**days: str) -> tuple[tuple[Shift, ...], ...]:
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return tuple(parse_shifts(days.get(name, "closed")) for name in names)


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (
            {d: "08:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")}
            | {"sat": "09:00-13:00"},
            "lunes a viernes de 8:00 a 17:00, sábado de 9:00 a 13:00",
        ),
        (
            {"mon": "08:00-17:00", "wed": "08:00-17:00", "fri": "08:00-17:00"},
            "lunes, miércoles y viernes de 8:00 a 17:00",
        ),
        ({"sat": "10:00-14:00", "sun": "10:00-14:00"}, "sábado y domingo de 10:00 a 14:00"),
        (
            {"tue": "08:00-12:00, 14:30-18:00"},
            "martes de 8:00 a 12:00 y de 14:30 a 18:00",
        ),
        ({"fri": "22:00-02:00"}, "viernes de 22:00 a 2:00"),
        ({"sun": "00:00-24:00"}, "domingo todo el día"),
        ({}, "cerrado todos los días"),
    ],
    ids=[
        "week-and-saturday",
        "same-hours-apart",
        "two-days",
        "split-day",
        "overnight",
        "all-day",
        "never",
    ],
)
def test_week_text(days: dict[str, str], text: str) -> None:
    assert week_text(week(**days)) == text


def test_today_text(tmp_path: Path) -> None:
    hours = hours_of(
        tmp_path,
        'settings:\n  hours:\n    mon: "08:00-12:00, 14:00-18:00"\n    closed: ["2026-11-30"]\n',
    )
    assert hours.today_text(local("2026-11-23 20:00")) == "hoy de 8:00 a 12:00 y de 14:00 a 18:00"
    assert hours.today_text(local("2026-11-24 10:00")) == "hoy cerrado"
    assert hours.today_text(local("2026-11-30 10:00")) == "hoy cerrado"  # a closed Monday


def test_without_hours_a_reply_shows_nothing_and_check_warns(tmp_path: Path) -> None:
    ruleset = load(
        tmp_path, 'rules:\n  - {name: h, keywords: [h], reply: "Horario: {{ hours.week }}"}\n'
    )
    assert [(p.kind, p.code) for p in ruleset.problems] == [("unknown_variable", "no_hours")]
    assert [r.text for r in answer(ruleset, "h", "2026-11-23 10:00").replies] == ["Horario:"]


def test_hours_use_the_message_time_not_the_clock(tmp_path: Path) -> None:
    """The same rules answer by the time each message carries: a Monday noon and a Sunday."""
    ruleset = load(tmp_path, RULES)
    assert answer(ruleset, "hola", "2026-11-23 12:00").rule == "otro"
    assert answer(ruleset, "hola", "2026-11-29 12:00").rule == "fuera_de_horario"
