"""`responder broadcast send|list|status|pause|resume|cancel` (DESIGN §12): broadcasts from the
command line; the running server sends them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from responder.broadcasts import (
    Broadcast,
    BroadcastError,
    BroadcastPreview,
    BroadcastStateError,
    UnknownBroadcastError,
    segment_from,
)
from responder.commands.common import with_service
from responder.moments import SEND_HORIZON, BadMoment, parse_moment
from responder.service import Service

T = TypeVar("T")
FINAL = ("done", "cancelled")
BAR = 30  # characters of the progress bar


def _run(work: Callable[[Service], Awaitable[T]]) -> T:
    """`work` with the service, our errors as one line each."""

    async def guarded(service: Service) -> T:
        try:
            return await work(service)
        except BroadcastError as err:
            raise click.ClickException(err.message) from None
        except UnknownBroadcastError as err:
            raise click.ClickException(f"no broadcast {err.args[0]}") from None
        except BroadcastStateError as err:
            raise click.ClickException(str(err)) from None
        except BadMoment as err:
            raise click.ClickException(f"--at: {err}") from None

    return with_service(guarded)


def counts_line(broadcast: Broadcast) -> str:
    """`#3 running: 120 recipients; queued 80, sent 30, delivered 10, ...`."""
    counts = ", ".join(f"{k} {v}" for k, v in broadcast.counts.items())
    waiting = f" ({broadcast.waiting})" if broadcast.waiting else ""
    return (
        f"#{broadcast.id} {broadcast.status}{waiting}: {broadcast.recipients} recipients; {counts}"
    )


def progress_bar(broadcast: Broadcast) -> str:
    """`[#########.........]  45% #3 running: ...`: what has reached a final state."""
    total = broadcast.recipients or 1
    finished = total - broadcast.counts.get("queued", 0) if broadcast.recipients else 0
    filled = BAR * finished // total
    percent = 100 * finished // total
    return f"[{'#' * filled}{'.' * (BAR - filled)}] {percent:3d}% {counts_line(broadcast)}"


def _preview_lines(preview: BroadcastPreview) -> list[str]:
    lines = [
        f"{preview.recipients} recipient(s); {preview.parts_per_message} SMS each "
        f"({preview.encoding}), about {preview.estimated_segments} SMS in all"
    ]
    lines += [f"  {phone}: {text}" for phone, text in preview.samples]
    return lines


@click.group()
def broadcast() -> None:
    """Send one text to a segment of contacts, and follow or change it."""


@broadcast.command("send")
@click.option("--text", "text", required=True, help="The text; a template: {{ contact.nombre }}.")
@click.option("--name", help="What the broadcast is called (default: the start of the text).")
@click.option("--label", "labels", multiple=True, help="Contacts with this label (all given).")
@click.option("--field", "fields", multiple=True, help="Contacts whose field equals: name=value.")
@click.option("--active-within-days", type=int, help="Contacts who wrote in the last N days.")
@click.option("--at", "at", help='Send later, e.g. "2026-11-23 09:00" (local time).')
@click.option("--via", help="The provider (default: the default provider).")
@click.option("--yes", is_flag=True, help="Do not ask to confirm.")
def send(
    text: str,
    name: str | None,
    labels: tuple[str, ...],
    fields: tuple[str, ...],
    active_within_days: int | None,
    at: str | None,
    via: str | None,
    yes: bool,
) -> None:
    """Create a broadcast: shows how many it reaches and a sample, and asks to confirm."""
    pairs = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.ClickException(f"--field {item!r}: write it as name=value")
        pairs[key.strip()] = value
    raw = {"labels": list(labels), "fields": pairs, "active_within_days": active_within_days}

    async def work(service: Service) -> Broadcast | None:
        segment = segment_from(raw)
        settings = service.rules.current.settings
        send_at = parse_moment(at, settings.timezone, service.clock(), SEND_HORIZON) if at else None
        preview = await service.preview_broadcast(text, segment, via)
        for line in _preview_lines(preview):
            click.echo(line)
        if not yes and not click.confirm("Send it?", default=False):
            return None
        return await service.create_broadcast(
            text, segment, send_at=send_at, via=via, name=name, by=None
        )

    created = _run(work)
    if created is None:
        raise click.ClickException("nothing was sent")
    when = f"scheduled for {created.send_at.isoformat()}" if created.send_at else "running"
    click.echo(f"broadcast {created.id} created ({when}): {created.recipients} recipient(s)")


@broadcast.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
def list_broadcasts(limit: int) -> None:
    """Broadcasts, newest first."""
    for found in _run(lambda service: service.list_broadcasts(None, limit)):
        click.echo(f"{counts_line(found)}  {found.name}")


@broadcast.command("status")
@click.argument("broadcast_id", type=int)
@click.option("--follow", is_flag=True, help="Keep showing progress until it ends.")
@click.option("--every", default=1.0, type=float, hidden=True)
def status(broadcast_id: int, follow: bool, every: float) -> None:
    """A broadcast's counts; with --follow, a progress bar (a line per change when not at a
    terminal) until it is done or cancelled."""
    terminal = sys.stdout.isatty()

    async def work(service: Service) -> None:
        shown = ""
        while True:
            found = await service.get_broadcast(broadcast_id)
            line = progress_bar(found) if terminal and follow else counts_line(found)
            if terminal and follow:
                click.echo(f"\r{line}\x1b[K", nl=False)
            elif line != shown:
                click.echo(line)
            shown = line
            if not follow or found.status in FINAL:
                break
            await asyncio.sleep(every)
        if terminal and follow:
            click.echo()

    _run(work)


def _change(action: str) -> click.Command:
    @click.argument("broadcast_id", type=int)
    def change(broadcast_id: int) -> None:
        async def work(service: Service) -> Broadcast:
            return await service.change_broadcast(broadcast_id, action, None)

        click.echo(counts_line(_run(work)))

    change.__doc__ = {
        "pause": "Pause a broadcast (on every instance).",
        "resume": "Resume a paused broadcast.",
        "cancel": "Cancel a broadcast: what is not yet sent never is.",
    }[action]
    return broadcast.command(action)(change)


for _action in ("pause", "resume", "cancel"):
    _change(_action)
