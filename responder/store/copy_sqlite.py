"""The SQLite side of `responder migrate-to`: the source file brought to the current schema,
then read in key order, in batches, inside one read transaction, so that every table is read
from the same moment even while a service still writes to the file."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

from responder.clock import Clock
from responder.store.copy_tables import Table, converted
from responder.store.sqlite import SQLiteStore

DATABASE_ID = "database_id"  # meta key: who this database is; a copy carries its source's


class SourceError(Exception):
    """The source cannot be copied; the message says why."""


class SqliteSource:
    """A SQLite database being copied. `open` writes one row (the database id, once); every
    read after it sees one snapshot until `close`."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self._db: sqlite3.Connection | None = None
        self.database_id = ""

    async def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"RESPONDER_DATABASE: no such file: {self.path}")
        store = SQLiteStore(self.path, self.clock)  # applies migrations the file lacks
        await store.open()
        await store.close()
        # Read from a worker thread (one at a time), so reads overlap the target's writes.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (DATABASE_ID, secrets.token_hex(16)),
        )
        db.execute("BEGIN")  # the snapshot starts with the first read below
        found = db.execute("SELECT value FROM meta WHERE key = ?", (DATABASE_ID,)).fetchone()
        self.database_id = str(found[0])
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.execute("COMMIT")
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("source is not open")
        return self._db

    def count(self, table: Table) -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0])

    def highest_id(self, table: Table) -> int:
        return int(self.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table.name}").fetchone()[0])

    def batch(self, table: Table, after: Any, size: int) -> tuple[list[tuple[Any, ...]], Any]:
        """The next `size` rows after key `after` (None: from the start), converted for
        PostgreSQL, in key order (SQLite compares text bytewise, as PostgreSQL's "C"), and the
        last one's key as stored, to ask for the next batch with."""
        columns = ", ".join(f'"{name}"' for name in table.names)
        where = "" if after is None else f'WHERE "{table.key}" > ?'
        rows = self.db.execute(
            f'SELECT {columns} FROM {table.name} {where} ORDER BY "{table.key}" LIMIT ?',
            (*(() if after is None else (after,)), size),
        ).fetchall()
        last = rows[-1][table.names.index(str(table.key))] if rows else after
        return [converted(table, tuple(row)) for row in rows], last

    def whole(self, table: Table) -> list[tuple[Any, ...]]:
        """Every row of a small table without a key, converted."""
        columns = ", ".join(f'"{name}"' for name in table.names)
        rows = self.db.execute(f"SELECT {columns} FROM {table.name}").fetchall()
        return [converted(table, tuple(row)) for row in rows]
