"""The budget of patterns and templates: the loop's meter, timed searches, bounded renders, and
the static check for patterns that can backtrack catastrophically."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from responder import budget, engine
from responder.budget import Budget, Owner
from responder.clock import thread_cpu_time
from responder.engine import Contact, InboundMessage
from responder.rules.backtracking import backtracking_risk
from responder.rules.patterns import BadPattern, Pattern
from responder.rules.schema import load_rules
from responder.templating import TemplateError, TemplateOverrun, make_environment, render
from tests.conftest import MONDAY_10AM

OWNER = Owner("palabras", 7, r"^(\w+\s?)+$")
# The case: 2**27 ways to split the a's into words before giving up on the `#`.
CRAFTED = "a" * 27 + "#"
# A pattern that even the `regex` module backtracks on: fib(30) ways to read the a's.
SLOW = r"^(\w|\w\w)+$"
SLOW_TEXT = "a" * 30 + "#"
# What a stopped search or render may cost, in CPU time of this thread (the budget's measure:
# on a busy machine the wall-clock time stretches with everything else).
CPU_LIMIT = 0.1


class Timer:
    """A monotonic reading the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def service_budget() -> Budget:
    return Budget(
        time.monotonic,
        thread_cpu_time,
        per_message=budget.MESSAGE_SECONDS,
        burst=budget.BURST_SECONDS,
        share=budget.SHARE,
    )


# --- the meter ------------------------------------------------------------------------------


def test_a_message_gets_its_allowance_and_the_loop_its_share() -> None:
    wall, cpu = Timer(), Timer()

    def spend(seconds: float) -> None:
        wall.now += seconds
        cpu.now += seconds

    meter = Budget(wall, cpu, per_message=0.02, burst=0.05, share=0.5, elapsed=wall)
    with meter.message() as first:
        assert first.limit() == pytest.approx(0.02)
        spend(0.02)  # all of it
    with meter.message() as second:
        # 50 ms - 20 ms spent + 10 ms earned back while it ran: 40 ms left, 20 per message.
        assert second.limit() == pytest.approx(0.02)
        spend(0.09)  # a runaway batch
    with meter.message() as drained:
        assert drained.limit() == pytest.approx(budget.FLOOR_SECONDS)  # only the floor
    wall.now += 1.0  # time passes, the loop idle: the bucket fills up again
    with meter.message() as rested:
        assert rested.limit() == pytest.approx(0.02)
        wall.now += 0.5  # the machine is busy elsewhere: waiting is not spending
        assert rested.limit() == pytest.approx(0.02)


def test_the_cpu_clock_is_read_only_when_the_time_passed_says_it_may_be_spent() -> None:
    wall = Timer()
    cpu_readings = 0

    def cpu() -> float:
        nonlocal cpu_readings
        cpu_readings += 1
        return wall.now  # a thread that ran all the time

    meter = Budget(wall, cpu, per_message=0.02, burst=0.05, share=0.5, elapsed=wall)
    with meter.message() as allowance:
        assert cpu_readings == 1  # where the allowance starts
        for _ in range(5):  # searches and renders early on: no system call
            assert allowance.limit() == pytest.approx(0.02)
            assert not allowance.past(allowance.deadline)
        assert cpu_readings == 1
        wall.now += 0.015  # three quarters of it may be spent: read, and exactly
        assert allowance.limit() == pytest.approx(0.005)
        assert cpu_readings == 2
        wall.now += 0.01
        assert allowance.past(allowance.deadline)
        assert allowance.limit() == pytest.approx(budget.FLOOR_SECONDS)
    assert cpu_readings == 5  # and what it used, at the end


def test_overruns_wait_for_the_service_to_save_them() -> None:
    meter = service_budget()
    pattern = Pattern(SLOW, Owner("lenta", 3, SLOW))
    with meter.message():
        assert pattern.search(SLOW_TEXT) is None
    (overrun,) = meter.take_pending()
    assert (overrun.kind, overrun.owner.rule, overrun.owner.line, overrun.why) == (
        "pattern",
        "lenta",
        3,
        "out of time",
    )
    assert meter.take_pending() == []


# --- patterns -------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "text"), [(OWNER.source, CRAFTED), (SLOW, SLOW_TEXT)])
def test_a_backtracking_pattern_stops_within_the_allowance(
    source: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    pattern = Pattern(source, Owner("palabras", 7, source))
    meter = service_budget()
    started = thread_cpu_time()
    with meter.message():
        assert pattern.search(text) is None
    assert thread_cpu_time() - started < CPU_LIMIT
    if source == SLOW:  # the pattern fails fast in `regex`: nothing ran out
        assert "rule palabras (line 7): pattern over budget (out of time)" in caplog.text
    assert text not in caplog.text  # the rule's name is logged, never the message


def test_patterns_match_as_before() -> None:
    pattern = Pattern(r"precio (?P<producto>\w+)", OWNER)
    with service_budget().message():
        found = pattern.search("el precio cafe")
    assert found is not None and found.groupdict() == {"producto": "cafe"}
    assert Pattern(r"(?<!no )quiero", OWNER).search("si quiero") is not None  # lookbehind
    assert Pattern(r"\w+", OWNER).search("ñandú") is not None  # unicode classes, like `re`


def test_a_bad_pattern_reads_as_before() -> None:
    with pytest.raises(BadPattern, match=r"^bad regular expression at character 8: "):
        Pattern("precio (", OWNER)


@pytest.mark.parametrize(
    "source",
    [
        r"^(\w+\s?)+$",
        r"(a+)+",
        r"(a|a)*",
        r"(.*)*",
        r"(.*a){20}",
        r"(a|aa)+$",
        r"^(\w|\w\w)+$",
        r"(x+x+)+y",
        r"(\s*\w+)+",
        r"([a-z]+\s*)+$",
        r"(\w|[a-z]\d)+",
        r"(\d+[.,]?)+",
        r"^(?:a|b|ab)*$",
        r"(?:\w+|\d)+",
    ],
)
def test_patterns_that_can_backtrack_are_found(source: str) -> None:
    why = backtracking_risk(source)
    assert why is not None and why.startswith("can backtrack catastrophically")


@pytest.mark.parametrize(
    "source",
    [
        r"precio (?P<producto>\w+)",
        r"^quiero (?P<cantidad>\d+) (?P<producto>\w+)",
        r"(\w+\s)+",
        r"(\w+ )+\w+",
        r"(\d+\.)*\d+",
        r"^(\d{1,3}(,\d{3})*)$",
        r"(ab|ac)*",
        r"(si|no)+",
        r"(a|ab)+",
        r"(-?\d+,)+",
        r"(a++)+",
        r"(?>a+)+b",
        r"pedido #?(?P<n>\d+)",
        r"(",  # a syntax error is reported elsewhere
    ],
)
def test_patterns_that_cannot_are_left_alone(source: str) -> None:
    assert backtracking_risk(source) is None


def test_loading_warns_on_the_pattern_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            r"""
            rules:
              - name: palabras
                reply: "Solo palabras."
                pattern: '^(\w+\s?)+$'
              - name: precio
                pattern: 'precio (?P<producto>\w+)'
                reply: "ok"
            """
        ),
        encoding="utf-8",
    )
    (problem,) = load_rules(path, tmp_path, MONDAY_10AM).problems
    assert (problem.line, problem.rule, problem.severity, problem.kind) == (
        5,
        "palabras",
        "warning",
        "backtracking",
    )
    assert problem.message.startswith("pattern can backtrack catastrophically")


# --- templates ------------------------------------------------------------------------------

RUNAWAY_TEMPLATES = [
    "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}",
    "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
    "{% for c in 'x' * 10**6 %}{{ c }}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ range(10**6)|join(',') }}",
    "{{ range(10000)|join('x' * 100000) }}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{% macro d(n) %}{% if n %}{{ d(n - 1) }}{{ d(n - 1) }}{% endif %}{% endmacro %}{{ d(40) }}",
    "{% macro m(s, n) %}{% if n %}{{ m(s ~ s, n - 1) }}{% endif %}{% endmacro %}{{ m('x', 40) }}",
    "{% set ns = namespace(x=2) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
    "{% endfor %}{{ ns.x > 1 }}",
    "{{ 'x'.ljust(10**9) }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 'a'|indent(10**9) }}",
    "{{ '%999999999s' % 1 }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ [1]|batch(10**9, 'x')|list|length }}",
    "{{ ('x' * 10000)|replace('x', 'y' * 10000) }}",
    "{{ 7 ** 10000000 }}",
]


@pytest.mark.parametrize("source", RUNAWAY_TEMPLATES)
def test_a_runaway_template_ends_quickly_as_a_render_error(tmp_path: Path, source: str) -> None:
    env = make_environment(tmp_path)
    started = thread_cpu_time()
    template = env.from_string(source)  # nothing is computed while compiling either
    with service_budget().message(), pytest.raises(TemplateError):
        render(template, {})
    assert thread_cpu_time() - started < CPU_LIMIT


def test_without_a_budget_the_step_limit_still_holds(tmp_path: Path) -> None:
    template = make_environment(tmp_path).from_string(RUNAWAY_TEMPLATES[1])
    with pytest.raises(TemplateOverrun, match="more than 10000 loop passes and calls"):
        render(template, {})


def test_ordinary_templates_render_as_before(tmp_path: Path) -> None:
    source = (
        "Hola {{ message.text|upper }}: {{ match.producto }} "
        "{% for i in range(3) %}{{ i }}{% endfor %} {{ '%s-%s' % (1, 2) }} {{ 'a' ~ 'b' }} "
        "{{ 'x' * 3 }} {{ [1, 2]|join(',') }} {{ '{:>3}'.format(1) }} {{ 2 ** 10 }} "
        "{{ ['b', 'a']|sort|join }} {{ 'abc'.replace('b', 'B') }}"
    )
    template = make_environment(tmp_path).from_string(source)
    with service_budget().message():
        text = render(template, {"message": {"text": "hola"}, "match": {"producto": "cafe"}})
    assert text == "Hola HOLA: cafe 012 1-2 ab xxx 1,2   1 1024 ab aBc"


def test_a_reply_sees_the_globals_and_its_variables_win(tmp_path: Path) -> None:
    # render builds the context from globals read once per template (not Jinja's ChainMap).
    source = (
        "{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }} {{ dict(a=1).a }} {{ joiner }}"
    )
    template = make_environment(tmp_path).from_string(source)
    assert render(template, {}).startswith("6 1 <class")
    assert render(template, {"joiner": "mine"}) == "6 1 mine"  # as with Template.render
    assert template.render(joiner="mine") == "6 1 mine"


# --- the engine -----------------------------------------------------------------------------

ENGINE_RULES = r"""
settings:
  timezone: America/Caracas
rules:
  - name: bucle
    keywords: [bucle]
    reply: "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}"
  - name: lenta
    pattern: '^(\w|\w\w)+$'
    reply: "Una palabra."
  - name: otro
    fallback: true
    reply: "No entendi."
"""


def test_the_engine_counts_an_overrun_pattern_as_not_matching(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(ENGINE_RULES, encoding="utf-8")
    rules = load_rules(path, tmp_path, MONDAY_10AM)
    meter = service_budget()
    message = InboundMessage("584121234567", SLOW_TEXT, MONDAY_10AM)
    with meter.message():
        decision = engine.decide(rules, message, Contact("584121234567"), MONDAY_10AM)
    assert decision.rule == "otro"
    assert [r.text for r in decision.replies] == ["No entendi."]
    loop = InboundMessage("584121234567", "bucle", MONDAY_10AM)
    with meter.message():
        decision = engine.decide(rules, loop, Contact("584121234567"), MONDAY_10AM)
    assert (decision.rule, decision.replies) == ("bucle", ())
    assert decision.error is not None and "template over budget" in decision.error
    assert [(o.kind, o.owner.rule) for o in meter.take_pending()] == [
        ("pattern", "lenta"),
        ("template", "bucle"),
    ]
