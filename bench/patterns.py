"""What the time limit on patterns and the budget on templates cost, and what they stop.

    .venv/bin/python bench/patterns.py

1. Ordinary searches: the bundled rules' patterns over a mix of messages, with Python's `re`,
   with `regex` (no limit), and through `Pattern.search` within a message's budget (what the
   service runs); plus `engine.decide` with the bundled rules, with and without a budget.
2. The crafted messages of issue 11: how long `re` takes, and how long the budget lets them
   run. (`google-re2` is timed too when it is installed; it is not a dependency.)
3. Templates: an ordinary reply rendered by a plain Jinja sandbox and by the budgeted one, and
   the runaway templates the budget stops.

Times are CPU time of this thread (what the budget measures) and wall time.
"""

from __future__ import annotations

import importlib
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import regex
from jinja2.sandbox import ImmutableSandboxedEnvironment

from responder import budget, engine
from responder import text as sms_text
from responder.budget import Budget, Owner
from responder.clock import thread_cpu_time
from responder.engine import Contact, InboundMessage
from responder.rules.patterns import Pattern
from responder.rules.schema import load_rules
from responder.templating import TemplateError, make_environment, render

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PATTERNS = (r"precio (?P<producto>\w+)", r"^[1-5]$", r"^quiero (?P<cantidad>\d+) (?P<producto>\w+)")
MESSAGES = [
    "a que hora abren",
    "precio cafe",
    "hola quiero saber el precio del arroz por favor",
    "3",
    "quiero 2 cafes",
    "buenas tardes, tienen disponible el producto que vi ayer en la tienda? " * 2,
    "x" * 1600,
    "hola " * 320,
]
ROUNDS = 2_000
# The issue's pattern fails fast in `regex`; the second one makes `regex` backtrack too.
# (pattern, message, whether to wait for `re`: each extra character doubles its time)
CRAFTED = [
    (r"^(\w+\s?)+$", "a" * 20 + "#", True),
    (r"^(\w+\s?)+$", "a" * 22 + "#", True),
    (r"^(\w+\s?)+$", "a" * 27 + "#", False),
    (r"^(\w|\w\w)+$", "a" * 26 + "#", True),
    (r"^(\w|\w\w)+$", "a" * 30 + "#", False),
    (r"(a|aa)+$", "a" * 1600 + "#", False),
]
RUNAWAY = [
    "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}",
    "{% for c in 'x' * 10**6 %}{{ c }}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{% macro d(n) %}{% if n %}{{ d(n - 1) }}{{ d(n - 1) }}{% endif %}{% endmacro %}{{ d(40) }}",
]
ORDINARY = (
    "Hola {{ contact.nombre | default('cliente') }}, el precio de {{ match.producto }} es "
    "{{ '%.2f' % 5 }} USD. {% for d in ['lun', 'mar', 'mie'] %}{{ d }} {% endfor %}"
)


def meter() -> Budget:
    return Budget(
        time.monotonic,
        thread_cpu_time,
        per_message=budget.MESSAGE_SECONDS,
        burst=budget.BURST_SECONDS,
        share=budget.SHARE,
    )


def per_call_ns(work: Callable[[], Any], rounds: int) -> float:
    """CPU nanoseconds per call, the median of five runs."""
    runs = []
    for _ in range(5):
        started = thread_cpu_time()
        for _ in range(rounds):
            work()
        runs.append((thread_cpu_time() - started) / rounds * 1e9)
    return statistics.median(runs)


def ordinary_searches() -> None:
    texts = [sms_text.normalize(m) for m in MESSAGES]
    compiled_re = [re.compile(p) for p in PATTERNS]
    compiled_regex = [regex.compile(p) for p in PATTERNS]
    wrapped = [Pattern(p, Owner("bench", 1, p)) for p in PATTERNS]
    m = meter()

    def with_re() -> None:
        for p in compiled_re:
            for t in texts:
                p.search(t)

    def with_regex() -> None:
        for p in compiled_regex:
            for t in texts:
                p.search(t)

    def with_budget() -> None:
        with m.message():
            for p in wrapped:
                for t in texts:
                    p.search(t)

    searches = len(PATTERNS) * len(texts)
    print(f"1. {searches} searches a round ({len(PATTERNS)} patterns x {len(texts)} messages)")
    base = per_call_ns(with_re, ROUNDS // 10) / searches
    for name, work in (("re", with_re), ("regex", with_regex), ("Pattern + budget", with_budget)):
        ns = per_call_ns(work, ROUNDS // 10) / searches
        print(f"   {name:<18} {ns / 1000:7.2f} µs a search ({ns / base:4.2f}x re)")

    rules = load_rules(ROOT / "rules.yaml", ROOT / "templates", NOW)
    messages = [InboundMessage("584121234567", t, NOW) for t in MESSAGES]
    contact = Contact("584121234567")

    def decide() -> None:
        for msg in messages:
            engine.decide(rules, msg, contact, NOW)

    def decide_budgeted() -> None:
        for msg in messages:
            with m.message():
                engine.decide(rules, msg, contact, NOW)

    plain = per_call_ns(decide, ROUNDS // 20) / len(messages)
    timed = per_call_ns(decide_budgeted, ROUNDS // 20) / len(messages)
    print(f"   engine.decide, bundled rules: {plain / 1000:.1f} µs a message without a budget,")
    print(f"   {timed / 1000:.1f} µs within one (+{(timed - plain) / 1000:.1f} µs)")


def timed(work: Callable[..., Any], *args: Any, **options: Any) -> tuple[float, float, str]:
    wall, cpu = time.perf_counter(), thread_cpu_time()
    try:
        outcome = "no match" if work(*args, **options) is None else "match"
    except TimeoutError:
        outcome = "timeout"
    except TemplateError as err:
        outcome = f"stopped: {err}"
    return time.perf_counter() - wall, thread_cpu_time() - cpu, outcome


def crafted() -> None:
    print("2. crafted messages: wall / CPU milliseconds")
    try:
        re2: Any = importlib.import_module("re2")
    except ImportError:
        re2 = None
    for source, text, wait_for_re in CRAFTED:
        print(f"   {source} on {text[:3]}...# ({len(text)} characters)")
        if wait_for_re:
            stdlib = re.compile(source)
            wall, cpu, outcome = timed(stdlib.search, text)
            print(f"      re                  {wall * 1e3:6.1f} / {cpu * 1e3:6.1f}  {outcome}")
        else:
            print("      re                  not run: seconds to hours")
        compiled = regex.compile(source)
        for limit in (budget.MESSAGE_SECONDS, None):
            if limit is None and source != r"^(\w+\s?)+$":
                continue  # `regex` backtracks on the others too: unlimited would take long
            wall, cpu, outcome = timed(compiled.search, text, timeout=limit)
            label = f"regex timeout={limit}"
            print(f"      {label:<20}{wall * 1e3:6.1f} / {cpu * 1e3:6.1f}  {outcome}")
        pattern = Pattern(source, Owner("bench", 1, source))
        with meter().message():
            wall, cpu, outcome = timed(pattern.search, text)
        print(f"      Pattern + budget    {wall * 1e3:6.1f} / {cpu * 1e3:6.1f}  {outcome}")
        if re2 is not None:
            linear = re2.compile(source)
            wall, cpu, outcome = timed(linear.search, text)
            print(f"      google-re2          {wall * 1e3:6.1f} / {cpu * 1e3:6.1f}  {outcome}")


def templates() -> None:
    print("3. templates")
    context = {"contact": {"nombre": "Ana"}, "match": {"producto": "cafe"}}
    plain = ImmutableSandboxedEnvironment().from_string(ORDINARY)
    budgeted = make_environment(ROOT / "templates").from_string(ORDINARY)
    m = meter()

    def with_budget() -> None:
        with m.message():
            render(budgeted, context)

    base = per_call_ns(lambda: plain.render(context), ROUNDS)
    ours = per_call_ns(with_budget, ROUNDS)
    print(
        f"   ordinary reply: {base / 1000:.1f} µs in Jinja's sandbox, {ours / 1000:.1f} µs "
        f"budgeted ({ours / base:.2f}x)"
    )
    env = make_environment(ROOT / "templates")
    for source in RUNAWAY:
        template = env.from_string(source)
        with meter().message():
            wall, cpu, outcome = timed(render, template, {})
        print(f"   {wall * 1e3:6.1f} / {cpu * 1e3:6.1f} ms  {source[:58]}")
        print(f"                       {outcome}")


def main() -> None:
    ordinary_searches()
    crafted()
    templates()


if __name__ == "__main__":
    main()
