"""Copies of a SQLite database made while the service serves, and what a copy holds
(`responder backup` / `responder restore`, DESIGN §13). The command line is in
responder/commands/backup.py; every SQL statement is here."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from responder.store.sqlite import migration_number, migration_scripts
from responder.store.sqltime import stored

PAGES = 256  # copied per step: a step holds the database only for these pages' worth of reads


class BackupFailed(Exception):
    """SQLite could not read the source or write the copy."""


def copy_database(source: Path, target: Path, progress: Callable[[int, int], None]) -> None:
    """Copies the SQLite database `source` into the new file `target` with the online backup
    API, a few pages per step. One read transaction spans the copy, so the copy is the
    database as it was when the backup began (later commits do not restart it), and in WAL
    mode the writer is never held up: it appends to the WAL meanwhile."""
    try:
        src = sqlite3.connect(source, isolation_level=None)
        try:
            dst = sqlite3.connect(target, isolation_level=None)
            try:
                src.execute("BEGIN")
                src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot
                src.backup(
                    dst, pages=PAGES, progress=lambda _, left, total: progress(total - left, total)
                )
                src.execute("COMMIT")
                # One self-contained file (the service turns WAL on again when it opens one).
                dst.execute("PRAGMA journal_mode = DELETE")
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as err:
        raise BackupFailed(str(err)) from err


@dataclass
class BackupReport:
    """What `check_backup` found in a copy."""

    problems: list[str]
    version: int
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        counts = ", ".join(f"{n} {table}" for table, n in self.counts.items())
        return f"schema version {self.version}, {counts}"


def latest_migration() -> int:
    return max(migration_number(script) for script in migration_scripts())


def check_backup(path: Path) -> BackupReport:
    """Opens the copy read-only: its integrity check, its schema version against this code's
    migrations, how many contacts and messages it holds."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        return BackupReport([f"cannot open it: {err}"], 0)
    try:
        problems: list[str] = []
        try:
            result = [row[0] for row in db.execute("PRAGMA integrity_check")]
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            counts = {
                table: int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("contacts", "messages")
            }
        except sqlite3.Error as err:
            return BackupReport([f"not a responder database: {err}"], 0)
        if result != ["ok"]:
            problems.append("integrity check failed: " + "; ".join(result[:5]))
        latest = latest_migration()
        if version > latest:
            problems.append(f"its schema version {version} is newer than this code's ({latest})")
        return BackupReport(problems, version, counts)
    finally:
        db.close()


def live_leases(database: Path, now: datetime) -> list[tuple[str, str]]:
    """(name, holder) of the leases not yet expired in the database at `now`; none when the
    file cannot be read as one."""
    if not database.is_file():
        return []
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT name, holder FROM leases WHERE until > ?", (stored(now),)
        ).fetchall()
        return [(str(name), str(holder)) for name, holder in rows]
    except sqlite3.Error:
        return []
    finally:
        db.close()
