"""The flow sweep after a long stop: `--flows` contacts each left waiting in the bundled
`encuesta` flow, two hours later the sweep ends them all (each with its timeout_reply).
Prints the sweep's time and the longest stretch it kept the event loop to itself.

    .venv/bin/python bench/flow_sweep.py --database sqlite --flows 20000
    .venv/bin/python bench/flow_sweep.py --database postgres --flows 20000
    # the same with older code: its `responder` package first on the path
    git archive 601759a responder | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old .venv/bin/python bench/flow_sweep.py …

A fresh database each run (SQLite in a temporary folder; PostgreSQL a throwaway database).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: an older `responder` given there wins

from responder.engine import InboundMessage  # noqa: E402, I001
from responder.service import Service  # noqa: E402
from bench.scale import BenchProvider, WalkingClock, service_settings  # noqa: E402
from bench.webhook import create_postgres_database, drop_postgres_database  # noqa: E402


async def longest_stretch(stop: asyncio.Event, longest: list[float]) -> None:
    """How long the event loop went without running this task (sleep(0) every turn)."""
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0)
        now = time.perf_counter()
        longest[0] = max(longest[0], now - last)
        last = now


async def run(database: str, work: Path, flows: int) -> None:
    import responder

    print(f"responder from {Path(responder.__file__).parent}")
    settings = service_settings(database, work)
    clock = WalkingClock(datetime(2026, 3, 2, 15, 0, tzinfo=UTC))
    provider = BenchProvider(random.Random(1))
    service = Service(settings, clock=clock, providers={"sandbox": provider})
    await service.open()  # no workers: the replies stay queued, the sweep alone is timed
    try:
        began = time.perf_counter()
        for start in range(0, flows, 100):
            batch = range(start, min(flows, start + 100))
            await asyncio.gather(
                *(
                    service.receive(InboundMessage(f"58416{n:07d}", "encuesta", clock()))
                    for n in batch
                )
            )
        print(f"{flows:,} contacts waiting in a flow in {time.perf_counter() - began:.1f} s")
        clock.at += timedelta(hours=2)
        stop, longest = asyncio.Event(), [0.0]
        watcher = asyncio.create_task(longest_stretch(stop, longest))
        await asyncio.sleep(0)
        began = time.perf_counter()
        ended = await service.expire_flows()
        took = time.perf_counter() - began
        stop.set()
        await watcher
        print(
            f"flow sweep: {ended:,} flows ended in {took:.2f} s; "
            f"the event loop's longest stretch {longest[0] * 1000:.0f} ms"
        )
        assert await service.store.contacts_in_flows() == []
    finally:
        await service.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--flows", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flow-sweep-"))
    pg_name = None
    try:
        if args.database == "postgres":
            pg_name, database = create_postgres_database()
        else:
            database = str(work / "responder.db")
        asyncio.run(run(database, work, args.flows))
    finally:
        if pg_name is not None:
            drop_postgres_database(pg_name)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
