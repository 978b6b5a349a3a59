"""What every command shares: the one clock of a command, and the settings it reads."""

from __future__ import annotations

import click

from responder.clock import SystemClock
from responder.config import Settings, StartupError, load_settings

# The one clock of a command: every part it builds reads the time from here.
CLOCK = SystemClock()


def settings() -> Settings:
    try:
        return load_settings()
    except StartupError as err:
        raise click.ClickException(str(err)) from None
