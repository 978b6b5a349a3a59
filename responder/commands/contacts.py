"""`responder contacts import FILE [--dry-run]` and `responder contacts export [FILE]`: the
contacts CSV from the command line (DESIGN §12), the same file as the Contactos page's. An
import is on the audit trail with no actor (the console)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from responder.commands.common import with_service
from responder.contacts import ImportReport
from responder.service import Service


@click.group()
def contacts() -> None:
    """Import and export contacts as CSV (phone, labels, fields)."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Check the file and count; write nothing.")
def import_(file: str, dry_run: bool) -> None:
    """Import FILE ("-": standard input): every line is checked first, and nothing is
    imported unless all are right. A number already known is updated."""
    data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()

    async def work(service: Service) -> ImportReport:
        return await service.contacts.import_csv(None, data, dry_run=dry_run)

    report = with_service(work)
    if report.problems:
        for problem in report.problems:
            click.echo(f"line {problem.line}: {problem.message}", err=True)
        more = report.problem_count - len(report.problems)
        if more:
            click.echo(f"... and {more} more problem(s)", err=True)
        raise click.ClickException(f"{report.problem_count} problem(s): nothing was imported")
    if dry_run:
        click.echo(
            f"would import {report.imported} new contact(s) and update {report.updated} "
            "(dry run: nothing was written)"
        )
    else:
        click.echo(f"imported {report.imported} new contact(s), updated {report.updated}")


@contacts.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, writable=True))
def export(file: str | None) -> None:
    """Write every contact as CSV to FILE, or to standard output: the columns an import
    reads, so the file imports back as it is."""

    async def work(service: Service) -> None:
        if file is None:
            async for chunk in service.contacts.export_csv():
                sys.stdout.write(chunk)
            sys.stdout.flush()
            return
        with open(file, "w", encoding="utf-8", newline="") as out:
            async for chunk in service.contacts.export_csv():
                out.write(chunk)

    with_service(work)
