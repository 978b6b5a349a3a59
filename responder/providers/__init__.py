"""Providers by name, built from the settings."""

from __future__ import annotations

from responder.config import Settings
from responder.providers.base import Provider
from responder.providers.massiva import MassivaClient
from responder.providers.massms import MasSMSClient
from responder.providers.sandbox import SandboxProvider


def build_providers(settings: Settings) -> dict[str, Provider]:
    """Every configured provider; the sandbox when none is, or when it is chosen."""
    providers: dict[str, Provider] = {}
    if settings.massiva is not None:
        providers["massiva"] = MassivaClient(settings.massiva)
    if settings.massms is not None:
        providers["massms"] = MasSMSClient(settings.massms)
    if not providers or settings.provider == "sandbox":
        providers["sandbox"] = SandboxProvider()
    return providers
