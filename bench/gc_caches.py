"""What the caches of short strings cost the garbage collector once 200,000 distinct senders
have filled them, and what a hit and a miss cost.

    nice -n 10 .venv/bin/python bench/gc_caches.py            # rules loaded at start-up
    nice -n 10 .venv/bin/python bench/gc_caches.py --reload   # ... and reloaded since
    # the same with older code: its `responder` package first on the path
    git archive main responder | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old nice -n 10 .venv/bin/python bench/gc_caches.py

Start-up (imports, the rules) is frozen as `responder serve` freezes it (gc.freeze()); then
the phone cache (inbound_phone), the matcher's words, the text caches and the fields cache
are filled, and what the collector tracks, the references a full collection follows, and its
time (median of 5) are reported. `--reload` loads the rules again after the freeze, as a change
of rules.yaml does: that matcher's cache is not frozen.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: an older `responder` given there wins

from responder import engine  # noqa: E402
from responder.caches import short_lru  # noqa: E402
from responder.phone import inbound_phone, normalize_phone  # noqa: E402
from responder.rules.schema import load_rules  # noqa: E402
from responder.store.search import fold_fields_json  # noqa: E402
from responder.text import normalize_cached, segments  # noqa: E402
from responder.web.views import show_phone  # noqa: E402

LOADED_AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def collection_ms() -> float:
    times = []
    for _ in range(5):
        began = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def report(label: str) -> None:
    gc.collect()
    tracked = gc.get_objects()  # the frozen start-up is not among them
    followed = sum(len(gc.get_referents(o)) for o in tracked)
    count = len(tracked)
    del tracked
    print(f"{label}: {count:,} tracked, {followed:,} references followed, ", end="")
    print(f"a full collection {collection_ms():.2f} ms (median of 5)")


def ns_per_call(call: Callable[[Any], object], arguments: list[Any]) -> float:
    """The best of 5 passes over `arguments`, in ns a call."""
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter_ns()
        for argument in arguments:
            call(argument)
        best = min(best, (time.perf_counter_ns() - began) / len(arguments))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--senders", type=int, default=200_000)
    parser.add_argument("--words", type=int, default=100_000, help="distinct words met")
    parser.add_argument("--reload", action="store_true", help="load the rules after the freeze")
    args = parser.parse_args()
    import responder

    print(f"responder from {Path(responder.__file__).parent}")
    ruleset = load_rules(ROOT / "rules.yaml", ROOT / "templates", LOADED_AT)
    rng = random.Random(1)
    # The inputs are made before the freeze: they are the senders' data, not the caches'.
    numbers = [f"58416{n:07d}" for n in rng.sample(range(10**7), args.senders)]
    words = [
        "".join(rng.choice(LETTERS) for _ in range(rng.randrange(4, 10))) for _ in range(args.words)
    ]
    texts = [f"hola {w} quiero saber el precio" for w in words[:20_000]]
    fields = [json.dumps({"nombre": w.title(), "ciudad": "Caracas"}) for w in words[:20_000]]
    replies = [f"Gracias {w}, le respondemos pronto." for w in words[:2_000]]
    gc.collect()
    gc.freeze()
    report("start-up frozen")
    if args.reload:
        ruleset = load_rules(ROOT / "rules.yaml", ROOT / "templates", LOADED_AT)
    matcher = ruleset.matcher

    for number in numbers:
        inbound_phone(number, "VE")
    for number in numbers[:20_000]:
        show_phone(number)
    for word in words:
        matcher._near_tokens(word)
    for text in texts:
        normalize_cached(text)
        segments(text)
    for reply in replies:
        engine.prepare(reply, True, 3)
    for value in fields:
        fold_fields_json(value)
    print(f"phone cache {normalize_phone.cache_info().currsize:,} entries, words cache ", end="")
    print(f"{matcher._near_cached.cache_info().currsize:,}")
    report("caches filled")

    kept = numbers[-1_000:]  # the latest: kept by either cache
    print(f"normalize_phone hit: {ns_per_call(lambda n: normalize_phone(n, 'VE'), kept):.0f} ns")
    kept_texts = texts[-1_000:]
    print(f"normalize_cached hit: {ns_per_call(normalize_cached, kept_texts):.0f} ns")
    print(f"matcher word hit: {ns_per_call(matcher._near_tokens, words[-1_000:]):.0f} ns")
    # A miss on a function that costs nothing: what the cache itself adds. 200,000 keys in
    # turn, 65,536 kept: every call misses.
    one = short_lru(maxsize=65536, max_chars=32)(lambda raw: raw)
    two = short_lru(maxsize=65536, max_chars=32)(lambda raw, region: raw)
    fresh = [f"58412{n:07d}" for n in range(200_000)]
    print(f"miss, 1 argument: {ns_per_call(one, fresh):.0f} ns")
    fresh = [f"58414{n:07d}" for n in range(200_000)]
    miss = ns_per_call(lambda n: two(n, "VE"), fresh)
    print(f"miss, 2 arguments: {miss:.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
