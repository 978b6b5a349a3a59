"""The two stores side by side, in one run (DESIGN §9): webhook throughput on SQLite, now and
at a reference commit, on PostgreSQL with one and with two instances, and the outbox drain
on PostgreSQL. Each figure comes from the project's own scripts, run one after the other on
the same machine:

    .venv/bin/python bench/stores.py [--seconds 10] [--rounds 2] [--before REF]

`--before` (default 35e0a0c, the last commit with the single SQLite class) is the code the
SQLite figure is compared with; runs alternate between it and the working tree, and the
median of each is shown. Both answer with the same rules (those of `--before`: the bundled
rules have changed since, their opening hours are now templates), and the working tree also
with its own bundled rules.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RATE = re.compile(r"inbound webhook\s+([\d,]+) req/s")
OUTBOX = re.compile(r"^(massiva|massms)\s+(\d+)\s+([\d,]+)$", re.MULTILINE)


def run(argv: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=900, cwd=BENCH.parent
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def webhooks(seconds: float, *more: str) -> float:
    out = run([str(BENCH / "webhook.py"), "--only", "webhook", "--seconds", f"{seconds:g}", *more])
    if "OK: every acknowledged message is stored" not in out:
        raise SystemExit(f"lost webhooks:\n{out}")
    found = RATE.search(out)
    if not found:
        raise SystemExit(f"no rate in:\n{out}")
    return float(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default="35e0a0c")
    args = parser.parse_args()
    cases = {
        f"SQLite, {args.before}": ["--ref", args.before],
        f"SQLite, now, {args.before}'s rules": ["--rules-ref", args.before],
        "SQLite, now": [],
        "PostgreSQL, 1 instance": ["--database", "postgres"],
        "PostgreSQL, 2 instances": ["--database", "postgres", "--instances", "2"],
    }
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(1, args.rounds + 1):
        for name, more in cases.items():
            rates[name].append(webhooks(args.seconds, *more))
            print(f"round {round_}  {name:<34} {rates[name][-1]:>7,.0f} webhooks/s", flush=True)
    print(f"\nwebhooks/s, wrk 50 connections, {args.seconds:g} s, median of {args.rounds}:")
    for name, values in rates.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  {name:<34} {statistics.median(values):>7,.0f}   ({shown})")
    drained = run([str(BENCH / "outbox.py"), "--database", "postgres"])
    print("\noutbox on PostgreSQL, 2,000 queued replies (messages/s):")
    for kind, batch, rate in OUTBOX.findall(drained):
        print(f"  {kind:<8} batch {batch:>3}  {rate:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
