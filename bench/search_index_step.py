"""What the checkpointer's step that indexes new messages (SQLite migration 0028,
store/checkpoint.py `index_next_messages`) costs: the time one step holds the store's write
lock, for steps of `--per` messages, on a copy of a database.

    .venv/bin/python bench/search_index_step.py /work/scale/tiny.sqlite [--per 100,250,500,1000]

The copy is brought to the current schema; then, for each size, `--rounds` times: that many
of its newest messages are written again (outside the index, as webhooks now write them) and
one step indexes them, timed from BEGIN IMMEDIATE to COMMIT (wall and CPU). The index's
segments are merged by another step (`merge_search_index`), not timed here.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from responder.clock import SystemClock  # noqa: E402
from responder.store.checkpoint import index_next_messages  # noqa: E402
from responder.store.sqlite import SQLiteStore  # noqa: E402

COLUMNS = "phone, direction, text, folded, status, origin, attempts, created_at, updated_at"


async def migrate(path: Path) -> None:
    store = SQLiteStore(path, SystemClock())
    await store.open()
    await store.close()


def step_times(db: sqlite3.Connection, per: int, rounds: int) -> list[tuple[float, float]]:
    """(wall ms, CPU ms) of each step of `per` messages."""
    rows = db.execute(f"SELECT {COLUMNS} FROM messages ORDER BY id DESC LIMIT ?", (per,)).fetchall()
    took = []
    for _ in range(rounds):
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO messages ({COLUMNS}) VALUES ({', '.join('?' * 9)})", rows)
        db.execute("COMMIT")
        wall, cpu = time.perf_counter(), time.process_time()
        db.execute("BEGIN IMMEDIATE")
        assert index_next_messages(db, per) == len(rows)
        db.execute("COMMIT")
        took.append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="a SQLite database (copied, not changed)")
    parser.add_argument("--per", default="100,250,500,1000", help="messages per step")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "copy.sqlite"
        shutil.copy(args.database, path)
        asyncio.run(migrate(path))
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA synchronous = NORMAL")  # as the checkpointer's connection
        db.execute("PRAGMA wal_autocheckpoint = 0")
        print(f"{'per step':>9} {'wall p50':>9} {'wall max':>9} {'CPU p50':>8} {'µs/msg':>7}")
        for per in (int(n) for n in args.per.split(",")):
            took = step_times(db, per, args.rounds)
            wall = statistics.median(w for w, _ in took)
            cpu = statistics.median(c for _, c in took)
            worst = max(w for w, _ in took)
            each = cpu / per * 1000
            print(f"{per:>9} {wall:>6.2f} ms {worst:>6.2f} ms {cpu:>5.2f} ms {each:>7.1f}")
        db.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
