"""What SQLite's counterpart of PostgreSQL's migration 0016 would cost: the contacts' numbers in
an FTS5 table with the `trigram` tokenizer, measured on a copy of a database (never the file
itself), before anything of it is built into the store.

    .venv/bin/python bench/numbers_trigram_sqlite.py --database /work/scale/large.sqlite

Prints: the backfill of every contact's number and the table's size; new numbers written in
steps of `--step` (a transaction each, as the checkpointer's steps are), their time and WAL;
`LIKE '%digits%'` through the index, its time and whether it finds exactly what a plain
reading of the numbers finds; a delete by rowid (what `forget` would do).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

PATTERNS = ["41200012", "200012", "4120001", "0001234", "99900", "584"]


def timed(work: Callable[[], object]) -> float:
    """How long `work()` took, in ms."""
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def read_all(db: sqlite3.Connection, sql: str, params: tuple[str, ...]) -> list[object]:
    return db.execute(sql, params).fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a SQLite file (it is copied)")
    parser.add_argument("--new", type=int, default=20_000, help="new numbers written in steps")
    parser.add_argument("--step", type=int, default=500, help="numbers a step")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="numbers-trigram-"))
    path = work / "copy.sqlite"
    try:
        shutil.copy(args.database, path)
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA wal_autocheckpoint = 0")
        print(f"SQLite {sqlite3.sqlite_version}, {path.stat().st_size / 1e6:,.0f} MB copied")

        def backfill() -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "CREATE VIRTUAL TABLE numbers_trgm USING fts5(phone, tokenize = 'trigram', "
                "detail = 'none')"
            )
            db.execute("INSERT INTO numbers_trgm (rowid, phone) SELECT rowid, phone FROM contacts")
            db.execute("COMMIT")

        took = timed(backfill)
        [(count,)] = db.execute("SELECT count(*) FROM contacts").fetchall()
        [(size,)] = db.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'numbers_trgm%'"
        ).fetchall()
        print(f"backfill of {count:,} numbers: {took / 1000:.2f} s, {size / 1e6:.1f} MB")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        rng = random.Random(7)
        new: list[str] = []
        seen: set[str] = set()
        while len(new) < args.new:
            number = f"5841{rng.choice('2246')}{rng.randrange(10**7):07d}"
            if number not in seen:
                seen.add(number)
                new.append(number)
        [(top,)] = db.execute("SELECT max(rowid) FROM contacts").fetchall()
        wal = Path(f"{path}-wal")
        steps: list[float] = []
        written: list[float] = []
        for first in range(0, len(new), args.step):
            rows = [(top + 1 + first + n, p) for n, p in enumerate(new[first : first + args.step])]
            before = wal.stat().st_size

            def step(rows: list[tuple[int, str]] = rows) -> None:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("INSERT INTO numbers_trgm (rowid, phone) VALUES (?, ?)", rows)
                db.execute("COMMIT")

            steps.append(timed(step))
            written.append((wal.stat().st_size - before) / 1e6)
            if len(steps) % 10 == 0:  # the checkpointer starts the WAL over often too
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print(
            f"{len(new):,} new numbers in {len(steps)} steps of {args.step}: "
            f"{statistics.median(steps):.2f} ms at the median, {max(steps):.2f} at most; "
            f"{statistics.median(written):.3f} MB of WAL a step, {sum(written):.1f} MB in all"
        )

        sql = "SELECT phone FROM numbers_trgm WHERE phone LIKE ? LIMIT 2001"
        for digits in PATTERNS:
            pattern = (f"%{digits}%",)
            times = [timed(partial(read_all, db, sql, pattern)) for _ in range(5)]
            found = {r[0] for r in db.execute(sql.replace(" LIMIT 2001", ""), pattern)}
            plain = {
                r[0]
                for r in db.execute(
                    "SELECT c0 FROM numbers_trgm_content WHERE instr(c0, ?) > 0", (digits,)
                )
            }
            plan = db.execute(f"EXPLAIN QUERY PLAN {sql}", pattern).fetchall()[-1][3]
            print(
                f"LIKE '%{digits}%': {statistics.median(times):.2f} ms at the median, "
                f"{len(found):,} numbers, {'the same as' if found == plain else 'NOT'} "
                f"a plain reading's {len(plain):,} ({plan})"
            )
        delete = "DELETE FROM numbers_trgm WHERE rowid = ?"
        print(f"a delete by rowid: {timed(lambda: db.execute(delete, (top + 5,))):.2f} ms")
        db.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
