"""What starting the write-ahead log over costs the writes (store/checkpoint.py).

    .venv/bin/python bench/wal_reset.py [--seconds 15] [--rate 400] [--keys 12]
        [--sync-rounds 0 1 2] [--rows 2000000]

A stand-in for the store under heavy load, without the rest of the service: a table of
`--rows` random keys (built once in a temporary folder, about 100 MB), a writer on the event
loop that commits `--rate` transactions a second under a write lock, each inserting `--keys`
random keys (so each touches that many random pages, as a webhook from a new number does), and
the product's WalCheckpointer looking at the WAL every 0.1 s. For each value of SYNC_ROUNDS
given (the database file's syncs before the writes pause) it prints the commits' latency from
the moment each was due, the RESTART steps held under the lock, and the WAL file's size.
Everything stays in the temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from responder.store import checkpoint  # noqa: E402
from responder.store.checkpoint import WAL_FILE_LIMIT, Pass, WalCheckpointer  # noqa: E402

MIB = 1024 * 1024


def build(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID")
    rnd = random.Random(1)
    for start in range(0, rows, 50_000):
        count = min(50_000, rows - start)
        db.executemany(
            "INSERT OR IGNORE INTO t VALUES (?, ?)",
            ((f"{rnd.random():.15f}", "x" * 10) for _ in range(count)),
        )
        db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else 0.0


async def run(path: Path, seconds: float, rate: float, keys: int) -> str:
    lock = asyncio.Lock()
    writer = sqlite3.connect(path, isolation_level=None)
    for pragma in ("synchronous = NORMAL", "wal_autocheckpoint = 0"):
        writer.execute(f"PRAGMA {pragma}")
    writer.execute(f"PRAGMA journal_size_limit = {WAL_FILE_LIMIT:d}")
    checkpointer = WalCheckpointer(path, lock)
    checkpointer.open()
    held: list[float] = []
    checkpoint_pass = checkpointer._checkpoint

    async def timed(mode: checkpoint.Mode) -> Pass:
        began = time.perf_counter()
        found = await checkpoint_pass(mode)
        if mode == "RESTART":
            held.append(time.perf_counter() - began)
        return found

    checkpointer._checkpoint = timed  # type: ignore[method-assign]
    watcher = asyncio.create_task(checkpointer._repeat(checkpointer.look_at_wal))
    latencies: list[float] = []
    largest = 0
    rnd = random.Random()
    due = time.monotonic()
    end = due + seconds
    try:
        while due < end:
            due += 1 / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            async with lock:
                writer.execute("BEGIN IMMEDIATE")
                writer.executemany(
                    "INSERT OR IGNORE INTO t VALUES (?, ?)",
                    ((f"{rnd.random():.15f}", "y" * 10) for _ in range(keys)),
                )
                writer.execute("COMMIT")
            latencies.append(time.monotonic() - due)
            largest = max(largest, checkpointer.wal_size())
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await checkpointer.close()
        writer.close()
    return (
        f"commits {len(latencies):,}: p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f}, p99.9 {percentile(latencies, 0.999):.1f}, "
        f"max {max(latencies) * 1000:.1f}; RESTART under the lock x{len(held)}: "
        f"p50 {percentile(held, 0.5):.1f} ms, max {max(held, default=0) * 1000:.1f}; "
        f"WAL file at most {largest / MIB:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=400.0, help="commits a second")
    parser.add_argument("--keys", type=int, default=12, help="random keys per commit")
    parser.add_argument("--rows", type=int, default=2_000_000, help="the stand-in's keys")
    parser.add_argument("--sync-rounds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wal-reset-") as folder:
        path = Path(folder) / "standin.db"
        began = time.monotonic()
        build(path, args.rows)
        print(
            f"stand-in: {args.rows:,} keys, {os.path.getsize(path) / MIB:.0f} MiB, "
            f"built in {time.monotonic() - began:.0f} s"
        )
        for rounds in args.sync_rounds:
            checkpoint.SYNC_ROUNDS = rounds
            result = asyncio.run(run(path, args.seconds, args.rate, args.keys))
            print(f"SYNC_ROUNDS={rounds}: {result}")


if __name__ == "__main__":
    main()
