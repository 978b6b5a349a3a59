"""`responder backup PATH` and `responder restore PATH` (DESIGN §13): a consistent copy of a
SQLite database while the service serves, and putting one back when it does not."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click

from responder.commands.common import CLOCK
from responder.commands.common import settings as _settings
from responder.spool.slot import LOCK_FILE
from responder.store import is_postgres
from responder.store.common import owner_dead
from responder.store.sqltime import stored

PAGES = 256  # copied per step: a step holds the database only for these pages' worth of reads


def copy_database(source: Path, target: Path, progress: Callable[[int, int], None]) -> None:
    """Copies the SQLite database `source` into the new file `target` with the online backup
    API, a few pages per step. One read transaction spans the copy, so the copy is the
    database as it was when the backup began (later commits do not restart it), and in WAL
    mode the writer is never held up: it appends to the WAL meanwhile."""
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


def masked_url(url: str) -> str:
    """`url` with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH when it exists.")
def backup(path: Path, force: bool) -> None:
    """A consistent copy of the SQLite database in PATH, made while the service serves. On
    PostgreSQL, prints the pg_dump command to use instead (and exits 2)."""
    database = _settings().database
    if is_postgres(database):
        click.echo(
            "PostgreSQL: back it up with pg_dump (the password from PGPASSWORD or ~/.pgpass):"
        )
        click.echo(f"  pg_dump --format=custom --file {path} '{masked_url(database)}'")
        sys.exit(2)
    source = Path(database)
    if not source.is_file():
        raise click.ClickException(f"RESPONDER_DATABASE: no database at {source}")
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists: --force replaces it")
    # Written beside PATH under another name and renamed at the end: PATH is never half a copy.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    terminal = sys.stderr.isatty()
    try:
        with click.progressbar(length=1, label="Copying", file=sys.stderr) as bar:

            def progress(done: int, total: int) -> None:
                if terminal:
                    bar.length = total
                    bar.update(done - bar.pos)

            copy_database(source, temporary, progress)
        with open(temporary, "rb") as copy:
            os.fsync(copy.fileno())
        os.replace(temporary, path)
    except (sqlite3.Error, OSError) as err:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise click.ClickException(f"backup failed: {err}") from None
    report = check_backup(path)
    click.echo(f"backed up {source} to {path}: {report.summary()}")


class BackupReport:
    """What `check_backup` found in a copy."""

    def __init__(self, problems: list[str], version: int, counts: dict[str, int]) -> None:
        self.problems = problems
        self.version = version
        self.counts = counts

    def summary(self) -> str:
        counts = ", ".join(f"{n} {table}" for table, n in self.counts.items())
        return f"schema version {self.version}, {counts}"


def latest_migration() -> int:
    folder = resources.files("responder.store") / "migrations"
    return max(int(p.name.split("_", 1)[0]) for p in folder.iterdir() if p.name.endswith(".sql"))


def check_backup(path: Path) -> BackupReport:
    """Opens the copy read-only: its integrity check, its schema version against this code's
    migrations, how many contacts and messages it holds."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as err:
        return BackupReport([f"cannot open it: {err}"], 0, {})
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
            return BackupReport([f"not a responder database: {err}"], 0, {})
        if result != ["ok"]:
            problems.append("integrity check failed: " + "; ".join(result[:5]))
        latest = latest_migration()
        if version > latest:
            problems.append(f"its schema version {version} is newer than this code's ({latest})")
        return BackupReport(problems, version, counts)
    finally:
        db.close()


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[bool]:
    """True (holding it meanwhile) when no other process holds the spool slot's lock."""
    fd = os.open(lock, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)


def serving(database: Path, spool: Path, now: datetime) -> str | None:
    """Why the service looks alive on `database`, or None: a process on this machine holds a
    folder of its spool, or an instance not known dead holds an unexpired lease (an instance
    on another machine that serves it)."""
    if spool.is_dir():
        for lock in sorted(spool.glob(f"*/{LOCK_FILE}")):
            with _locked(lock) as free:
                if not free:
                    return f"a running `responder serve` holds the spool folder {lock.parent}"
    if database.is_file():
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT name, holder FROM leases WHERE until > ?", (stored(now),)
            ).fetchall()
        except sqlite3.Error:
            rows = []
        finally:
            db.close()
        # A process of this machine that is gone holds nothing any more.
        for name, holder in rows:
            if not owner_dead(holder):
                return f"instance {holder} holds the lease {name!r}"
    return None


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Put the backup in place of RESPONDER_DATABASE.")
def restore(path: Path, yes: bool) -> None:
    """Checks the backup PATH (integrity, schema version, counts); with --yes, and only while
    no service runs on it, puts it in place of RESPONDER_DATABASE."""
    settings = _settings()
    if is_postgres(settings.database):
        click.echo("PostgreSQL: restore a pg_dump backup with pg_restore.", err=True)
        sys.exit(2)
    report = check_backup(path)
    for problem in report.problems:
        click.echo(f"{path}: {problem}", err=True)
    if report.problems:
        sys.exit(1)
    click.echo(f"{path}: integrity ok, {report.summary()}")
    target = Path(settings.database)
    if not yes:
        click.echo(f"--yes puts it in place of {target} (stop the service first)")
        return
    why = serving(target, settings.spool, CLOCK())
    if why is not None:
        raise click.ClickException(
            f"not restoring: the service is running on {target} ({why}); stop it and run "
            "`responder restore --yes` again"
        )
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        copy_database(path, temporary, lambda done, total: None)
        # The old database's WAL must not be replayed into the restored one.
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{target}{suffix}").unlink()
        os.replace(temporary, target)
    except (sqlite3.Error, OSError) as err:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise click.ClickException(f"restore failed: {err}") from None
    click.echo(f"restored {path} to {target}")
