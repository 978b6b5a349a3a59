"""What a full garbage collection costs in a service that has met many numbers: webhooks'
messages fed through Service.receive (as bench/scale.py builds), then the objects the collector
still tracks, by type, and the time of a full collection (`gc.collect()`), median of 5.

    nice -n 10 .venv/bin/python bench/gc_full.py --database /work/scale/medium.sqlite
    # the same with older code: its `responder` package first on the path
    git archive 77aef40 responder | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old nice -n 10 .venv/bin/python bench/gc_full.py --database …

Runs on a copy of the SQLite file (in a temporary folder); `--batches` groups of 50 messages
from `--numbers` distinct senders.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: an older `responder` given there wins

# responder first: bench.scale puts this checkout ahead of PYTHONPATH when imported.
from responder.clock import SystemClock  # noqa: E402, I001
from responder.engine import InboundMessage  # noqa: E402
from responder.service import Service  # noqa: E402
from bench.scale import RULE_TEXTS, BenchProvider, free_text, service_settings  # noqa: E402


async def run(args: argparse.Namespace, work: Path) -> None:
    import responder

    print(f"responder from {Path(responder.__file__).parent}")
    database = work / "copy.sqlite"
    shutil.copy(args.database, database)
    settings = service_settings(str(database), work)
    clock = SystemClock()
    service = Service(settings, clock=clock, providers={"sandbox": BenchProvider(random.Random(1))})
    await service.start()  # freezes what start-up built, as `responder serve` does
    if args.sweep:  # what the running service does 30 s after start
        began = time.perf_counter()
        ended = await service.expire_flows()
        await service.worker.wait_idle()
        print(f"flow sweep: {ended:,} flows ended in {time.perf_counter() - began:.1f} s")
    rng = random.Random(3)
    started = time.perf_counter()
    for _ in range(args.batches):
        messages = [
            InboundMessage(
                f"58416{rng.randrange(args.numbers):07d}",
                rng.choice(RULE_TEXTS) if rng.random() < 0.6 else free_text(rng),
                clock(),
                "584141000001",
            )
            for _ in range(50)
        ]
        await asyncio.gather(*(service.receive(m) for m in messages))
        await service.worker.wait_idle()
    print(f"fed {args.batches * 50:,} messages in {time.perf_counter() - started:.1f} s")
    gc.collect()
    tracked = gc.get_objects()
    print(f"tracked by the collector (not frozen): {len(tracked):,}")
    for name, count in Counter(type(o).__name__ for o in tracked).most_common(8):
        print(f"  {name:<24} {count:,}")
    del tracked
    times = []
    for _ in range(5):
        began = time.perf_counter()
        gc.collect()
        times.append((time.perf_counter() - began) * 1000)
    print(f"a full collection: {statistics.median(times):.2f} ms (median of 5)")
    await service.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a SQLite file (copied first)")
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--numbers", type=int, default=200_000)
    parser.add_argument("--sweep", action="store_true", help="run the flow sweep first")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gc-full-"))
    try:
        asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
