"""`responder backup PATH` and `responder restore PATH` (DESIGN §13): a consistent copy of a
SQLite database while the service serves, and putting one back when it does not. What touches
the database is in responder/store/sqlite_backup.py."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click

from responder.commands.common import CLOCK
from responder.commands.common import settings as _settings
from responder.spool.slot import LOCK_FILE
from responder.store import is_postgres, shown_url
from responder.store.common import owner_dead
from responder.store.sqlite_backup import BackupFailed, check_backup, copy_database, live_leases


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
        click.echo(f"  pg_dump --format=custom --file {path} '{shown_url(database)}'")
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
    except (BackupFailed, OSError) as err:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise click.ClickException(f"backup failed: {err}") from None
    report = check_backup(path)
    click.echo(f"backed up {source} to {path}: {report.summary()}")


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
    # A process of this machine that is gone holds nothing any more.
    for name, holder in live_leases(database, now):
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
    except (BackupFailed, OSError) as err:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise click.ClickException(f"restore failed: {err}") from None
    click.echo(f"restored {path} to {target}")
