"""`responder migrate-to postgresql://…`: the configured SQLite database copied into PostgreSQL,
then both sides counted table by table."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from responder.commands.common import CLOCK, settings
from responder.store import is_postgres, shown_url

if TYPE_CHECKING:
    from responder.store.migrate import Copied

WIDTH = 18  # the table-name column


@click.command("migrate-to")
@click.argument("url", metavar="POSTGRESQL_URL")
def migrate_to(url: str) -> None:
    """Copy the SQLite database (RESPONDER_DATABASE) into the PostgreSQL database at
    POSTGRESQL_URL: every table, ids and tokens kept; then compare the counts. Safe to run
    again: a second run writes only what changed."""
    if not is_postgres(url):
        raise click.UsageError(
            "POSTGRESQL_URL must be a postgresql:// (or postgres://) URL: "
            "postgresql://user:password@host:port/dbname"
        )
    database = settings().database
    if is_postgres(database):
        raise click.ClickException(
            "RESPONDER_DATABASE is a PostgreSQL URL already: migrate-to copies from a SQLite "
            "file; set RESPONDER_DATABASE to that file"
        )
    source = Path(database)
    if not source.is_file():
        raise click.ClickException(f"RESPONDER_DATABASE: no such file: {source}")
    click.echo(f"Copying {source} into {shown_url(url)}.")
    click.echo(
        f"Stop `responder serve` on {source.name} first: what it writes after the copy has "
        "begun is not copied. (If it must keep answering meanwhile, run migrate-to again once "
        "it has stopped: that run brings the copy up to date.)"
    )
    # Here, not at the top: asyncpg (and the copy) load only for this command, not at every start.
    from responder.store.migrate import CopyFailed, copy_to_postgres

    terminal = sys.stdout.isatty()
    try:
        results = asyncio.run(copy_to_postgres(source, url, CLOCK, _progress(terminal)))
    except CopyFailed as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"\n{'table':<{WIDTH}}{'source':>12}{'target':>12}")
    for copied in results:
        verdict = "" if copied.matches else "   MISMATCH"
        click.echo(f"{copied.table:<{WIDTH}}{copied.source:>12,}{copied.target:>12,}{verdict}")
    wrong = [c.table for c in results if not c.matches]
    if wrong:
        click.echo(f"\nThe counts differ in {', '.join(wrong)}: do not switch to the copy yet.")
        sys.exit(1)
    click.echo(
        f"\nEvery table has the same count on both sides. Start the instances with "
        f"RESPONDER_DATABASE={shown_url(url)}"
    )


def _progress(terminal: bool) -> Callable[[Copied, bool], None]:
    """A line per table when it is done; on a terminal, a running count meanwhile."""

    def show(copied: Copied, done: bool) -> None:
        if not done:
            if terminal:
                share = f" of {copied.source:,}" if copied.source else ""
                click.echo(f"\r  {copied.table:<{WIDTH}}{copied.read:>12,}{share}", nl=False)
            return
        counts = (copied.new, copied.changed, copied.removed)
        changes = ", ".join(
            f"{n:,} {word}" for n, word in zip(counts, ("new", "changed", "removed")) if n
        )
        line = f"  {copied.table:<{WIDTH}}{copied.read:>12,} read, {changes or 'nothing to change'}"
        click.echo(f"\r{line}\033[K" if terminal else line)

    return show
