"""Matching speed against the number of rules: 10, 1,000 and 100,000 keyword rules.

    .venv/bin/python bench/match.py            # word-mode rules, as most shops write them
    .venv/bin/python bench/match.py --fuzzy 1  # the same rules with `fuzzy: 1`

Targets: a message against 100,000 rules costs at most 3x what it costs against 10 rules,
and under 100 µs.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from responder import engine
from responder import text as sms_text
from responder.rules.conditions import Facts
from responder.rules.schema import RuleSet, load_rules

LOADED_AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)

SIZES = (10, 1_000, 100_000)
LOAD_ONLY = 10_000  # its load time is reported too
ROUNDS = 2_000  # passes over the message mix for Matcher.match; a quarter for engine.decide
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # a Monday, 10:00 in Caracas
PHONE = "584121234567"
FILLER = ("hola", "buenas", "quiero", "saber", "del", "por", "favor", "gracias", "tienen", "hay")
ONSETS = ("b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "ch", "br", "tr", "pl")
VOWELS = ("a", "e", "i", "o", "u", "ia", "ue")
CODAS = ("", "", "", "n", "s", "r", "l")


@dataclass
class Row:
    rules: int
    load_s: float
    match_ns: float | None = None
    decide_ns: float | None = None
    answered_by: str = ""


def spanish_words(count: int, seed: int = 7) -> list[str]:
    """`count` distinct Spanish-sounding words of three syllables (`trabesol`, `chiunar`)."""
    syllables = [o + v + c for o in ONSETS for v in VOWELS for c in CODAS]
    rng = random.Random(seed)
    seen: set[str] = set(FILLER)
    words: list[str] = []
    while len(words) < count:
        word = "".join(rng.choice(syllables) for _ in range(3))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def write_rules(folder: Path, count: int, fuzzy: int) -> tuple[Path, list[str]]:
    """A file of `count` keyword rules (a word, and a word or a phrase) and a fallback.

    Returns the path and the words for the message mix: the first keyword of the first,
    middle and last rule, then three words no rule has.
    """
    words = spanish_words(count * 2 + 3)
    keywords, spare = words[: count * 2], words[count * 2 :]
    lines = ["settings:", "  timezone: America/Caracas", "rules:"]
    for i in range(count):
        first, second = keywords[2 * i], keywords[2 * i + 1]
        phrase = f'"{second} {first}"' if i % 2 else second
        lines += [
            f"  - name: regla_{i}",
            f"    keywords: [{first}, {phrase}]",
            *([f"    fuzzy: {fuzzy}"] if fuzzy else []),
            f'    reply: "Respuesta {i}: gracias por escribir sobre {first}."',
        ]
    lines += ["  - name: otro", "    fallback: true", '    reply: "No entendí."']
    path = folder / f"rules_{count}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    middle = count // 2
    return path, [keywords[0], keywords[2 * middle], keywords[2 * count - 2], *spare]


def message_mix(words: list[str]) -> list[str]:
    """Texts as customers write them: hits at the start, middle and end of the file, misses."""
    start, middle, end, *misses = words
    return [
        f"Hola, quiero saber del {start.upper()} por favor",
        f"¿Tienen {middle}?",
        f"{end} gracias",
        f"Buenas, hay {misses[0]} o {misses[1]}?",
        "hola",
        f"Por favor {misses[2]}",
    ]


def load(path: Path, templates: Path) -> tuple[RuleSet, float]:
    started = time.perf_counter()
    ruleset = load_rules(path, templates, LOADED_AT)
    elapsed = time.perf_counter() - started
    if ruleset.errors:
        raise SystemExit(ruleset.errors[0].format(path.name))
    return ruleset, elapsed


def mean_ns(call: Callable[[str], object], texts: list[str], rounds: int) -> float:
    """Mean nanoseconds per call over `rounds` passes of `texts`, after one warm-up pass."""
    for text in texts:
        call(text)
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for _ in range(rounds):
            for text in texts:
                call(text)
        return (time.perf_counter_ns() - started) / (rounds * len(texts))
    finally:
        gc.enable()


def measure(ruleset: RuleSet, texts: list[str]) -> tuple[float, float, str]:
    facts = Facts(NOW.astimezone(ruleset.settings.timezone), False, {})
    normalised = [sms_text.normalize(text) for text in texts]
    contact = engine.Contact(PHONE, first_contact=False)

    def match(text: str) -> object:
        return ruleset.matcher.match(text, facts)

    def decide(text: str) -> object:
        return engine.decide(ruleset, engine.InboundMessage(PHONE, text, NOW), contact, NOW)

    found = [ruleset.matcher.match(text, facts) for text in normalised]
    answered_by = ", ".join(m.rule.name if m else "-" for m in found)
    return mean_ns(match, normalised, ROUNDS), mean_ns(decide, texts, ROUNDS // 4), answered_by


def run(fuzzy: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        templates = folder / "templates"
        templates.mkdir()
        for count in sorted((*SIZES, LOAD_ONLY)):
            path, words = write_rules(folder, count, fuzzy)
            ruleset, seconds = load(path, templates)
            row = Row(count, seconds)
            if count in SIZES:
                row.match_ns, row.decide_ns, row.answered_by = measure(ruleset, message_mix(words))
            rows.append(row)
            del ruleset
    return rows


def report(rows: list[Row], fuzzy: int) -> None:
    def micro(ns: float | None) -> str:
        return "-" if ns is None else f"{ns / 1000:.2f} µs"

    print(f"word-mode keyword rules{f', fuzzy: {fuzzy}' if fuzzy else ''} + a fallback")
    print(f"{'rules':>8}  {'load':>8}  {'match':>10}  {'decide':>10}  answered by")
    for row in rows:
        print(
            f"{row.rules:>8,}  {row.load_s:>7.2f}s  {micro(row.match_ns):>10}  "
            f"{micro(row.decide_ns):>10}  {row.answered_by}"
        )
    small = next(r for r in rows if r.rules == SIZES[0])
    large = next(r for r in rows if r.rules == SIZES[-1])
    assert small.match_ns and large.match_ns and small.decide_ns and large.decide_ns
    ratio = large.match_ns / small.match_ns
    print(
        f"ratio {SIZES[-1]:,}/{SIZES[0]}: match {ratio:.2f}x, "
        f"decide {large.decide_ns / small.decide_ns:.2f}x"
    )
    met = ratio <= 3 and large.match_ns < 100_000
    print(f"target ≤ 3x and < 100 µs at {SIZES[-1]:,} rules: {'met' if met else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzzy", type=int, default=0, help="typos allowed per keyword")
    fuzzy = parser.parse_args().fuzzy
    report(run(fuzzy), fuzzy)


if __name__ == "__main__":
    main()
