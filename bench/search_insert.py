"""What keeping the full-text index costs each message written, on SQLite: CPU time per row
inserted into `messages` in transactions of `--per` rows, without the index, with it as
migration 0023 makes it, and with other FTS5 options (for comparison; none is used).

    .venv/bin/python bench/search_insert.py [--per 2,20,200] [--rows 20000]

A table shaped like `messages` (id, phone, text, folded) holds 150,000 rows first, indexed
by 'rebuild' as the migration does; then `--rows` more are inserted and timed (process CPU
time, the best of two rounds), so other jobs on the machine count for little.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from responder.text import normalize  # noqa: E402

WORDS = [
    "mañana",
    "pedido",
    "envío",
    "información",
    "teléfono",
    "número",
    "dirección",
    "ubicación",
    "atención",
    "gracias",
    "señor",
    "señora",
    "cuándo",
    "también",
    "después",
    "pagué",
    "transferencia",
    "factura",
    "canción",
    "camión",
    "jamón",
    "piña",
    "niño",
    "año",
    "corazón",
    "café",
    "azúcar",
    "limón",
    "está",
    "llegó",
    "tardó",
    "revisión",
    "quiero",
    "necesito",
    "pregunta",
    "tienda",
    "sucursal",
    "oferta",
    "promoción",
    "descuento",
    "hoy",
    "ayer",
    "semana",
    "producto",
    "entrega",
]
VARIANTS = {  # name: FTS5 options after the column (None: no index)
    "no index": None,
    "as migrated (0023)": "content='messages', content_rowid='id', columnsize=0",
    "detail=none": "content='messages', content_rowid='id', columnsize=0, detail=none",
    "prefix='3 4 5 6'": "content='messages', content_rowid='id', columnsize=0, prefix='3 4 5 6'",
}
TRIGGER = (
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN "
    "INSERT INTO messages_fts (rowid, folded) VALUES (new.id, new.folded); END"
)


def rows(count: int, first: int) -> list[tuple[int, str, str, str]]:
    rng = random.Random(first)
    made = []
    for n in range(first, first + count):
        text = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
        made.append((n, f"58412{n % 100_000:07d}", text, normalize(text)))
    return made


def per_row(options: str | None, per: int, count: int, work: Path) -> float:
    """Microseconds of CPU per row inserted, the best of two rounds."""
    path = work / f"{abs(hash((options, per)))}.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, phone TEXT, text TEXT, folded TEXT)")
    db.execute("CREATE INDEX messages_by_phone ON messages (phone, id)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", rows(150_000, 1))
    db.execute("COMMIT")
    if options is not None:
        db.execute(f"CREATE VIRTUAL TABLE messages_fts USING fts5(folded, {options})")
        db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
        db.execute(TRIGGER)
    best = float("inf")
    for round_ in range(2):
        batch = rows(count, 1_000_000 * (round_ + 1))
        started = time.process_time()
        for at in range(0, count, per):
            db.execute("BEGIN")
            db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", batch[at : at + per])
            db.execute("COMMIT")
        best = min(best, time.process_time() - started)
    db.close()
    return best / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per", default="2,20,200", help="rows per transaction, comma-separated")
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    sizes = [int(n) for n in args.per.split(",")]
    print(f"{'':<22}" + "".join(f"{f'{n} per txn':>14}" for n in sizes) + "   (µs CPU per row)")
    with tempfile.TemporaryDirectory() as folder:
        for name, options in VARIANTS.items():
            costs = [per_row(options, n, args.rows, Path(folder)) for n in sizes]
            print(f"{name:<22}" + "".join(f"{c:14.1f}" for c in costs), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
