"""The write-ahead log's size under sustained webhook load (issue 11 §8).

    .venv/bin/python bench/wal.py [--seconds 60] [--concurrency 50] [--ref REF]

Starts the real service (`responder serve`, sandbox provider, a temporary database) as its
own process, loads its inbound webhook with keep-alive connections from wrk (bench/webhook.lua)
or, without wrk, from the Python client of bench/webhook.py, and samples the size of
`responder.db-wal` every 100 ms meanwhile. Prints the webhooks per second, the largest WAL
seen during the load, its size at the end of the load and after two idle seconds. Stops
everything, checks for leftovers, removes the temporary folder. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.webhook import Server, finish, load, start_responder  # noqa: E402

SAMPLE_EVERY = 0.1  # seconds
MIB = 1024 * 1024


def wal_size(database: Path) -> int:
    try:
        return os.stat(f"{database}-wal").st_size
    except FileNotFoundError:
        return 0


class Sampler(threading.Thread):
    """Reads the WAL's size every SAMPLE_EVERY seconds until stopped; keeps the largest."""

    def __init__(self, database: Path) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.largest = 0
        self.samples = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_EVERY):
            self.largest = max(self.largest, wal_size(self.database))
            self.samples += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=50, help="keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads / client processes")
    parser.add_argument("--pool", type=int, default=5000, help="distinct sender phones")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--ref", help="run the responder as committed at this git ref")
    args = parser.parse_args()
    args.post = False
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(
        f"responder WAL bench: {args.seconds:g} s of inbound webhooks, {args.concurrency} "
        f"keep-alive connections from {args.generator}; WAL size sampled every "
        f"{SAMPLE_EVERY * 1000:.0f} ms"
    )
    if args.ref:
        sha = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", args.ref],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        print(f"responder code: {args.ref} ({sha}), exported with git archive")
    else:
        print("responder code: the working tree")

    work = Path(tempfile.mkdtemp(prefix="responder-wal-"))
    servers: list[Server] = []
    ok = True
    try:
        database = work / "responder.db"
        responder = start_responder(work, args.ref, servers, str(database))
        path = f"/webhooks/massiva/{responder.webhook_token}/inbound"
        sampler = Sampler(database)
        sampler.start()
        result = load(responder.servers, path, args, args.seconds)
        at_end = wal_size(database)
        time.sleep(2.0)
        sampler.stopped.set()
        sampler.join()
        idle = wal_size(database)
        responder.server.stop()
        db_size = os.stat(database).st_size
        print(
            f"  {result.rate:,.0f} webhooks/s ({result.acked:,} x 200 OK in "
            f"{result.window:.1f} s, non-200: {result.not_ok})"
        )
        lat = result.latency_ms
        if lat:
            print(
                f"  webhook latency p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms  "
                f"max {lat['max']:.1f} ms"
            )
        print(
            f"  WAL: largest {sampler.largest / MIB:.1f} MiB ({sampler.samples} samples), "
            f"at the end of the load {at_end / MIB:.1f} MiB, after 2 s idle {idle / MIB:.1f} MiB"
        )
        print(f"  database file after shutdown: {db_size / MIB:.1f} MiB")
        warnings = [
            line
            for line in responder.server.log.read_text(errors="replace").splitlines()
            if line.startswith(("WARNING", "ERROR", "CRITICAL"))
        ]
        print(f"  server log: {len(warnings)} warning(s) or error(s)")
        for line in sorted(set(warnings))[:10]:
            print(f"    {line}")
    finally:
        ok = finish(servers, [str(BENCH / "webhook.lua")], work, ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
