"""`responder users`: the team's people from the command line (DESIGN §11). What is done here
is in the audit trail with no actor (the console)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from responder.accounts import AccountError
from responder.commands.common import with_service
from responder.service import Service
from responder.store.models import UnknownUserError, User, UserExists

T = TypeVar("T")


def _run(work: Callable[[Service], Awaitable[T]]) -> T:
    """`work` on the configured database, its refusals as one line each."""

    async def guarded(service: Service) -> T:
        try:
            return await work(service)
        except AccountError as err:
            raise click.ClickException(err.message) from None
        except UserExists as err:
            raise click.ClickException(f"a person named {err.args[0]} exists already") from None
        except UnknownUserError as err:
            raise click.ClickException(f"no person named {err.args[0]}") from None

    return with_service(guarded)


def _password(from_stdin: bool) -> str:
    """The new password: typed twice at a terminal, or the first line of standard input."""
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    value: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return value


STDIN_HELP = "Read the password from the first line of standard input (for scripts)."


@click.group()
def users() -> None:
    """The team: people who sign in to the admin, their roles and tokens."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["owner", "agent"]), required=True)
@click.option("--password-stdin", is_flag=True, help=STDIN_HELP)
def add(name: str, role: str, password_stdin: bool) -> None:
    """Add a person (the password is asked for twice)."""
    password = _password(password_stdin)
    user = _run(lambda service: service.accounts.add_user(None, name, role, password))
    click.echo(f"added {user.name} ({user.role})")


@users.command("list")
def list_users() -> None:
    """Every person: name, role, whether they may sign in, since when."""

    def line(user: User) -> str:
        state = "disabled" if user.disabled else "active"
        return f"{user.name}\t{user.role}\t{state}\t{user.created_at:%Y-%m-%d %H:%M} UTC"

    people = _run(lambda service: service.accounts.users())
    for user in people:
        click.echo(line(user))
    if not people:
        click.echo("nobody yet: `responder users add NAME --role owner` adds the first", err=True)


@users.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable a person: their sessions end at once and their tokens stop working."""
    user = _run(lambda service: service.accounts.change_user(None, name, disabled=True))
    click.echo(f"disabled {user.name}")


@users.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Let a disabled person sign in again."""
    user = _run(lambda service: service.accounts.change_user(None, name, disabled=False))
    click.echo(f"enabled {user.name}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help=STDIN_HELP)
def passwd(name: str, password_stdin: bool) -> None:
    """Set a person's password; the sessions opened with the old one end."""
    password = _password(password_stdin)
    user = _run(lambda service: service.accounts.change_user(None, name, password=password))
    click.echo(f"password of {user.name} changed")


@users.command("token")
@click.argument("name")
def token(name: str) -> None:
    """Print a new personal API token for NAME (shown this once; it acts as that person)."""

    async def work(service: Service) -> str:
        _, secret = await service.accounts.create_token(None, name)
        return secret

    click.echo(_run(work))
