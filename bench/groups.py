"""CPU per webhook by the size of the group the SQLite writer commits together, in process, on
a copy of a database (the file itself is not touched):

    .venv/bin/python bench/groups.py --database /work/scale/large.sqlite [--sizes 1,4,16,64]

For each size N, `--groups` groups of N webhooks from new senders go through
`SQLiteStore.receive_inbound` at once (the writer commits each group in one transaction), each
decided with one reply; prints the process's CPU per webhook and per transaction. Under load
the writer's groups grow by themselves; at a low rate most are of one webhook, so what a
transaction costs whatever its size shows here as the difference between N = 1 and the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from responder.clock import SystemClock  # noqa: E402
from responder.engine import Contact, Decision, InboundMessage, Reply  # noqa: E402
from responder.store.models import InboundJob  # noqa: E402
from responder.store.sqlite import SQLiteStore  # noqa: E402

LINE = "584141000001"


def decide(contact: Contact) -> Decision:
    return Decision("bench", (Reply("Gracias por escribir.", 1, via="sandbox"),), "bench")


async def measure(path: Path, sizes: list[int], groups: int, seed: int) -> None:
    clock = SystemClock()
    store = SQLiteStore(path, clock)
    await store.open()
    rng = random.Random(seed)
    try:
        for size in sizes:
            started = time.process_time()
            for g in range(groups):
                jobs = [
                    InboundJob(
                        InboundMessage(
                            f"58426{rng.randrange(10**7):07d}", f"hola {g} {i}", clock(), LINE
                        ),
                        decide,
                        10,
                        3600,
                    )
                    for i in range(size)
                ]
                await asyncio.gather(*(store.receive_inbound(job) for job in jobs))
            cpu = time.process_time() - started
            print(
                f"N = {size:3d}: {cpu * 1e6 / (groups * size):6.0f} µs of CPU per webhook, "
                f"{cpu * 1e3 / groups:6.2f} ms per transaction",
                flush=True,
            )
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a SQLite file (copied first)")
    parser.add_argument("--sizes", default="1,4,16,64,1,4,16,64", help="group sizes, in order")
    parser.add_argument("--groups", type=int, default=200, help="groups per size")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="groups-") as work:
        copy = Path(work) / "db.sqlite"
        print(f"copying {args.database} to {copy}", flush=True)
        shutil.copy(args.database, copy)
        asyncio.run(measure(copy, sizes, args.groups, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
