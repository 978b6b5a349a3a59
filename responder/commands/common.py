"""What every command shares: the one clock of a command, the settings it reads, and a
service opened on the configured database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from responder.clock import SystemClock
from responder.config import Settings, StartupError, load_settings
from responder.service import Service

T = TypeVar("T")

# The one clock of a command: every part it builds reads the time from here.
CLOCK = SystemClock()


def settings() -> Settings:
    try:
        return load_settings()
    except StartupError as err:
        raise click.ClickException(str(err)) from None


def with_service(work: Callable[[Service], Awaitable[T]]) -> T:
    """Runs `work` against the configured database, without the web server."""

    async def run() -> T:
        service = Service(settings(), clock=CLOCK)
        await service.open()
        try:
            return await work(service)
        finally:
            for provider in service.providers.values():
                await provider.aclose()
            await service.close()

    try:
        return asyncio.run(run())
    except StartupError as err:
        raise click.ClickException(str(err)) from None
