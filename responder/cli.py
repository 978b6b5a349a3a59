"""The `responder` command: serve, check, simulate, send, urls, token, balance, export,
backup, restore, migrate-to, users, forget, contacts, broadcast."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TypeVar

import click

from responder import text as sms_text
from responder.app import create_app
from responder.budget import OverrunRecord
from responder.commands.backup import backup, restore
from responder.commands.broadcast import broadcast
from responder.commands.common import CLOCK
from responder.commands.common import settings as _settings
from responder.commands.common import with_service as _with_service
from responder.commands.contacts import contacts
from responder.commands.migrate_to import migrate_to
from responder.commands.privacy import forget
from responder.commands.users import users
from responder.config import Settings, StartupError
from responder.export import export_to
from responder.moments import SEND_HORIZON, SIMULATE_HORIZON, BadMoment, parse_moment
from responder.phone import InvalidPhoneNumber, normalize_phone
from responder.providers.base import ProviderError
from responder.rules.model import Rule, RulesSettings
from responder.rules.schema import load_rules
from responder.service import Service
from responder.store import is_postgres, make_store
from responder.store.models import OptedOutError, StoreUnavailable

T = TypeVar("T")


@click.group()
@click.version_option(package_name="responder")
def main() -> None:
    """Self-hosted SMS responder for the Massiva and MasSMS gateways."""


@main.command()
@click.option("--host", default="127.0.0.1", envvar="HOST", show_default=True)
@click.option("--port", default=8000, type=int, envvar="PORT", show_default=True)
def serve(host: str, port: int) -> None:
    """Run the web app and its background workers."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # httpx logs a line per provider request at INFO (its URL redacted by our transport): noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = _settings()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base_url = settings.public_url or f"http://{shown_host}:{port}"

    def announce(service: Service) -> None:
        for line in banner(service, base_url, terminal=sys.stdout.isatty()):
            click.echo(line)

    try:
        app = create_app(settings, clock=CLOCK, on_ready=announce)
        asyncio.run(_probe_database(settings))
    except StartupError as err:
        raise click.ClickException(str(err)) from None
    # No access log: webhook paths carry the secret token. No WebSocket routes: without
    # ws="none" uvicorn loads its WebSocket protocol at every start (20 ms).
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info", ws="none")


def mask(secret: str) -> str:
    """Enough of a secret to tell which one it is: `9fK…`."""
    return f"{secret[:3]}…"


def banner(service: Service, base_url: str, *, terminal: bool) -> list[str]:
    """What `serve` prints once it is ready. A token is printed in full only when this start
    created it and a person is watching (standard output is a terminal); otherwise the lines
    may end up in a log collector, and the tokens are masked."""
    in_full = service.generated_tokens if terminal else set()
    webhook_token, admin_token = (
        token if key in in_full else mask(token)
        for key, token in (
            ("webhook_token", service.webhook_token),
            ("admin_token", service.admin_token),
        )
    )
    urls = service.webhook_urls(base_url, webhook_token)
    lines = [
        "",
        f"responder is answering on {base_url} (providers: {', '.join(service.providers)})",
        "Register these webhook URLs at Massiva:",
        f"    inbound SMS:    {urls['inbound']}",
        f"    status updates: {urls['status']}",
        f"Staff inbox: {base_url}/admin  (name admin, password: the API token below)",
        f"API token (Authorization: Bearer ...): {admin_token}",
    ]
    if "admin_token" in in_full:
        lines.append(
            f"    curl -H 'Authorization: Bearer {admin_token}' {base_url}/api/conversations"
        )
    if in_full:
        lines.append("Generated just now and kept in the database: shown in full only this once.")
    if len(in_full) < 2:
        lines.append(
            "Tokens are masked; `responder urls --show-secrets` and `responder token` print them."
        )
    return [*lines, ""]


async def _probe_database(settings: Settings) -> None:
    """Opens (and migrates) the database once before serving: a bad RESPONDER_DATABASE is one
    line here, not a traceback from inside the server's start-up."""
    store = make_store(settings.database, CLOCK)
    await store.open()
    await store.close()


@main.command()
@click.argument("rules", required=False, type=click.Path(path_type=Path))
@click.option("--templates", type=click.Path(path_type=Path), help="Templates folder.")
def check(rules: Path | None, templates: Path | None) -> None:
    """Validate the rules file and every template it names."""
    settings = _settings()
    path = rules or settings.rules
    if not path.is_file():
        raise click.ClickException(f"{path}: no such file")
    ruleset = load_rules(path, templates or settings.templates, CLOCK())
    for problem in ruleset.problems:
        click.echo(problem.format(str(path)), err=problem.severity == "error")
    overruns = ruleset.own_overruns(asyncio.run(_recorded_overruns(settings)))
    for o in overruns:
        what = "counted as not matching" if o.kind == "pattern" else "no reply sent"
        click.echo(
            f"{path}:{o.line}: warning: {o.kind} over budget ({o.why}) on {o.count} message(s), "
            f"last at {o.last_at:%Y-%m-%d %H:%M} UTC; {what} (rule {o.rule})"
        )
    for rule in ruleset.rules:
        click.echo(f"{path}:{rule.line}: rule {rule.name}: {_cost(rule, ruleset.settings)}")
    errors = len(ruleset.errors)
    warnings = len(ruleset.problems) - errors + len(overruns)
    counts = f"{len(ruleset.rules)} rules, {len(ruleset.flows)} flow(s)"
    click.echo(f"{counts}, {errors} error(s), {warnings} warning(s)")
    if errors:
        sys.exit(1)


async def _recorded_overruns(settings: Settings) -> list[OverrunRecord]:
    """What the service recorded as running over budget; nothing when it never ran here."""
    if not is_postgres(settings.database) and not Path(settings.database).is_file():
        return []
    store = make_store(settings.database, CLOCK)
    try:
        await store.open()
        return await store.overruns()
    except (StartupError, StoreUnavailable, OSError) as err:
        click.echo(f"recorded overruns not read from RESPONDER_DATABASE: {err}", err=True)
        return []
    finally:
        await store.close()


def _cost(rule: Rule, settings: RulesSettings) -> str:
    """How many SMS a rule's reply costs, when that is known before rendering."""
    if rule.reply is None:
        return "no reply"
    if rule.template is not None or "{" in rule.reply_source:
        return "reply varies (template)"
    reply = rule.reply_source
    count = sms_text.segments(sms_text.smart_encode(reply) if settings.smart_encoding else reply)
    return f"{count} SMS"


@main.command()
@click.argument("phone")
@click.argument("text", nargs=-1, required=True)
@click.option("--at", "at", help='Simulate another moment, e.g. "2026-11-23 20:00" (local time).')
def simulate(phone: str, text: tuple[str, ...], at: str | None) -> None:
    """Show which rule answers TEXT from PHONE, without sending or storing anything."""

    async def work(service: Service) -> dict[str, Any]:
        settings = service.rules.current.settings
        number = _phone(phone, settings.country)
        moment = _local_time(at, settings.timezone, SIMULATE_HORIZON) if at else None
        return await service.simulate(number, " ".join(text), moment)

    result = _with_service(work)
    click.echo(f"rule: {result['rule'] or '(none)'}")
    click.echo(f"why:  {result['explanation']}")
    if result["error"]:
        click.echo(f"error: {result['error']}")
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}")
    for reply in result["replies"]:
        click.echo(f"reply ({reply['segments']} SMS): {reply['text']}")
    if not result["replies"]:
        click.echo("no reply")


def _local_time(value: str, timezone: tzinfo, horizon: timedelta) -> datetime:
    try:
        return parse_moment(value, timezone, CLOCK(), horizon)
    except BadMoment as err:
        raise click.BadParameter(f"{err}; use YYYY-MM-DD HH:MM", param_hint="--at") from None


def _phone(raw: str, country: str) -> str:
    try:
        return normalize_phone(raw, country)
    except InvalidPhoneNumber as err:
        raise click.ClickException(str(err)) from None


@main.command()
@click.argument("phone")
@click.argument("text")
@click.option("--via", type=click.Choice(["massiva", "massms", "sandbox"]))
@click.option("--at", "at", help='Send later, e.g. "2026-11-23 09:00" (local time).')
def send(phone: str, text: str, via: str | None, at: str | None) -> None:
    """Queue one message; the running server sends it (at --at, if given)."""

    async def work(service: Service) -> list[int]:
        if via is not None and via not in service.providers:
            raise click.ClickException(f"--via {via}: that provider is not configured")
        settings = service.rules.current.settings
        number = _phone(phone, settings.country)
        send_at = _local_time(at, settings.timezone, SEND_HORIZON) if at else None
        try:
            messages = await service.send(number, text, via, "cli", send_at)
        except (OptedOutError, sms_text.UnsendableText) as err:
            raise click.ClickException(str(err)) from None
        return [m.id for m in messages]

    ids = _with_service(work)
    click.echo(f"queued message(s) {', '.join(map(str, ids))}")


@main.command()
@click.option("--base-url", help="Public URL of this server (default RESPONDER_PUBLIC_URL).")
@click.option("--show-secrets", is_flag=True, help="Print the webhook token in full.")
def urls(base_url: str | None, show_secrets: bool) -> None:
    """Print the webhook URLs to register at the provider (the token masked, unless asked)."""

    async def work(service: Service) -> dict[str, str]:
        base = base_url or service.settings.public_url or "http://127.0.0.1:8000"
        return service.webhook_urls(base, None if show_secrets else mask(service.webhook_token))

    for kind, url in _with_service(work).items():
        click.echo(f"{kind}: {url}")
    if not show_secrets:
        click.echo("(the token is masked: --show-secrets prints it)", err=True)


@main.command()
def token() -> None:
    """Print the API token (`Authorization: Bearer`; in the inbox, the password of the
    built-in `admin`)."""

    async def work(service: Service) -> str:
        return service.admin_token

    click.echo(_with_service(work))


@main.command()
def balance() -> None:
    """Credits left at each configured provider."""

    async def work(service: Service) -> list[str]:
        lines = []
        for name, provider in service.providers.items():
            try:
                lines.append(f"{name}: {await provider.balance():g}")
            except ProviderError as err:
                lines.append(f"{name}: error: {err.message}")
        return lines

    for line in _with_service(work):
        click.echo(line)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv")
def export(fmt: str) -> None:
    """Every conversation with its messages, to stdout: CSV (a row per message, with the
    contact's mode, opt-out and fields) or JSON lines (one conversation per line). A progress
    bar goes to standard error when that is a terminal."""

    async def work(service: Service) -> None:
        if sys.stdout.isatty() or not sys.stderr.isatty():
            await export_to(service.store, fmt, sys.stdout)
            return
        # Only when the data goes to a file or a pipe and standard error is a terminal (click
        # would print its label elsewhere): never into the data, never between its lines.
        total = await service.store.message_total()
        with click.progressbar(
            length=total, label="Exporting", file=sys.stderr, show_pos=True
        ) as bar:
            await export_to(service.store, fmt, sys.stdout, bar.update)
        sys.stdout.flush()

    _with_service(work)


main.add_command(backup)
main.add_command(restore)
main.add_command(migrate_to)
main.add_command(users)
main.add_command(forget)
main.add_command(broadcast)
main.add_command(contacts)
