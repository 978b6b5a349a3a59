"""Matching speed against the number of rules: 10, 1,000 and 100,000 keyword rules.

Run with `.venv/bin/python bench/match.py`. Targets: a message against 100,000 rules costs
at most 3x what it costs against 10 rules, and under 100 µs.
"""

from __future__ import annotations

import gc
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from responder import engine  # noqa: E402
from responder import text as sms_text  # noqa: E402
from responder.rules.conditions import Facts  # noqa: E402
from responder.rules.schema import RuleSet, load_rules  # noqa: E402

SIZES = (10, 1_000, 100_000)
LOAD_ONLY = (10_000,)
ROUNDS = 2_000  # passes over the message mix per size
# Monday 2026-11-23 10:00 in Caracas.
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
FILLER = ("hola", "buenas", "quiero", "saber", "del", "por", "favor", "gracias", "tienen", "hay")
ONSETS = ("b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "ch", "br", "tr", "pl")
VOWELS = ("a", "e", "i", "o", "u", "ia", "ue")
CODAS = ("", "", "", "n", "s", "r", "l")


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


def write_rules(folder: Path, count: int) -> tuple[Path, list[str]]:
    """A rules file with `count` keyword rules (one or two keywords each) and a fallback."""
    words = spanish_words(count * 2 + 50)
    keywords, spare = words[: count * 2], words[count * 2 :]
    lines = ["settings:", "  timezone: America/Caracas", "rules:"]
    for i in range(count):
        first, second = keywords[2 * i], keywords[2 * i + 1]
        words_of_rule = f"[{first}, {second}]" if i % 2 else f'[{first}, "{second} {first}"]'
        lines += [
            f"  - name: regla_{i}",
            f"    keywords: {words_of_rule}",
            f'    reply: "Respuesta {i}: gracias por escribir sobre {first}."',
        ]
    lines += ["  - name: otro", "    fallback: true", '    reply: "No entendí."']
    path = folder / f"rules_{count}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, [keywords[0], keywords[count], keywords[2 * count - 2], *spare[:3]]


def messages(hits_and_misses: list[str]) -> list[str]:
    """Realistic texts: the keyword of the first, middle and last rule, then misses."""
    start, middle, end, *misses = hits_and_misses
    return [
        f"Hola, quiero saber del {start.upper()} por favor",
        f"¿Tienen {middle}?",
        f"{end} gracias",
        f"Buenas, hay {misses[0]} o {misses[1]}?",
        "hola",
        f"Por favor {misses[2]}",
    ]


def load(path: Path, templates: Path) -> tuple[RuleSet, float]:
    gc.collect()
    started = time.perf_counter()
    ruleset = load_rules(path, templates)
    elapsed = time.perf_counter() - started
    if ruleset.errors:
        raise SystemExit(f"{path}: {ruleset.errors[0].format(path.name)}")
    return ruleset, elapsed


def mean_ns(call: Callable[[str], object], texts: list[str], rounds: int) -> float:
    """Mean nanoseconds per call over `rounds` passes of `texts`, after a warm-up pass."""
    for text in texts:
        call(text)
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for _, text in itertools.product(range(rounds), texts):
            call(text)
        return (time.perf_counter_ns() - started) / (rounds * len(texts))
    finally:
        gc.enable()


def main() -> None:
    rows: list[tuple[int, float, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        templates = folder / "templates"
        templates.mkdir()
        for count in LOAD_ONLY:
            path, _ = write_rules(folder, count)
            _, seconds = load(path, templates)
            rows.append((count, seconds, float("nan"), float("nan"), "-"))
        for count in SIZES:
            path, words = write_rules(folder, count)
            ruleset, seconds = load(path, templates)
            texts = messages(words)
            facts = Facts(NOW.astimezone(ruleset.settings.timezone), False, {})
            normalised = [sms_text.normalize(t) for t in texts]
            contact = engine.Contact("584121234567", first_contact=False)

            def decide(text: str, ruleset: RuleSet = ruleset, contact: engine.Contact = contact):
                msg = engine.InboundMessage("584121234567", text, NOW)
                return engine.decide(ruleset, msg, contact, NOW)

            matched = [
                m.rule.name if (m := ruleset.matcher.match(t, facts)) else None for t in normalised
            ]
            match_ns = mean_ns(lambda t: ruleset.matcher.match(t, facts), normalised, ROUNDS)
            decide_ns = mean_ns(decide, texts, ROUNDS // 4)
            rows.append((count, seconds, match_ns, decide_ns, ", ".join(map(str, matched))))
    rows.sort(key=lambda row: row[0])

    print(f"{'rules':>8}  {'load':>9}  {'match':>10}  {'decide':>10}  rules matched by the mix")
    for count, seconds, match_ns, decide_ns, matched in rows:
        match_cell = "-" if match_ns != match_ns else f"{match_ns / 1000:.2f} µs"
        decide_cell = "-" if decide_ns != decide_ns else f"{decide_ns / 1000:.2f} µs"
        print(f"{count:>8,}  {seconds:>8.2f}s  {match_cell:>10}  {decide_cell:>10}  {matched}")
    by_count = {row[0]: row for row in rows}
    small, large = by_count[SIZES[0]], by_count[SIZES[-1]]
    ratio_match, ratio_decide = large[2] / small[2], large[3] / small[3]
    print(f"ratio {SIZES[-1]:,}/{SIZES[0]}: match {ratio_match:.2f}x, decide {ratio_decide:.2f}x")
    ok = ratio_match <= 3 and large[2] < 100_000
    print(f"targets (≤ 3x and < 100 µs per message at {SIZES[-1]:,} rules): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
