"""`responder forget PHONE --yes`: erases a person (DESIGN §13)."""

from __future__ import annotations

import click

from responder.commands.common import with_service
from responder.phone import InvalidPhoneNumber, normalize_phone
from responder.service import Service
from responder.store.models import Forgotten


@click.command()
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
def forget(phone: str, yes: bool) -> None:
    """Erase a person's messages, notes, fields and labels (a number that opted out stays
    opted out)."""
    if not yes:
        raise click.ClickException(
            "this erases the conversation for good; run again with --yes to confirm"
        )

    async def work(service: Service) -> tuple[str, Forgotten | None]:
        try:
            number = normalize_phone(phone, service.rules.current.settings.country)
        except InvalidPhoneNumber as err:
            raise click.ClickException(str(err)) from None
        return number, await service.forget(number, None)

    number, forgotten = with_service(work)
    if forgotten is None:
        raise click.ClickException(f"nothing is known of {number}")
    kept = "; it stays opted out" if forgotten.kept_opted_out else ""
    click.echo(f"forgot {number}: {forgotten.messages} message(s) erased{kept}")
