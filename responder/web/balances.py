"""Asking providers for their balances: all together, errors shown, never raised."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass

from responder.providers.base import Provider, ProviderError


@dataclass(frozen=True)
class Balance:
    provider: str
    credits: float | None  # None when it could not be read; inf when unlimited (sandbox)
    error: str | None = None

    @property
    def unlimited(self) -> bool:
        return self.credits is not None and math.isinf(self.credits)


async def ask_balances(providers: Mapping[str, Provider], timeout: float = 8.0) -> list[Balance]:
    """Every provider's balance, asked together; a failure becomes the balance's `error`."""
    return list(await asyncio.gather(*(_ask(n, p, timeout) for n, p in providers.items())))


async def _ask(name: str, provider: Provider, timeout: float) -> Balance:
    try:
        credits = await asyncio.wait_for(provider.balance(), timeout)
    except ProviderError as err:
        return Balance(name, None, err.message)
    except TimeoutError:
        return Balance(name, None, f"sin respuesta en {timeout:g} s")
    except Exception as err:  # a dashboard must render whatever a provider does
        return Balance(name, None, f"{type(err).__name__}: {err}")
    return Balance(name, credits)
