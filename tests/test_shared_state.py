"""State that decides behaviour is kept in the store, so that two instances on one database
agree: the sign-in limit, provider balances, singleton work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from responder.config import Settings
from responder.providers.base import OutboundSMS, Provider, SendResult
from responder.service import Service
from responder.store.sqlite import SQLiteStore
from responder.web.sessions import SignInLimiter
from tests.conftest import Clock


@pytest.fixture
async def two_stores(
    make_settings: Callable[..., Settings], clock: Clock
) -> AsyncIterator[tuple[SQLiteStore, SQLiteStore]]:
    path = Path(make_settings().database)
    first, second = SQLiteStore(path, clock), SQLiteStore(path, clock)
    await first.open()
    await second.open()
    yield first, second
    await second.close()
    await first.close()


async def test_sign_in_failures_count_across_instances(
    two_stores: tuple[SQLiteStore, SQLiteStore], clock: Clock
) -> None:
    one, two = (SignInLimiter(store, clock, attempts=5, per=60) for store in two_stores)
    client = ["client:1.2.3.4"]
    for limiter in (one, two, one, two, one):
        assert await limiter.retry_after(client) == 0
        await limiter.failed(client)
        clock.advance(1)
    assert await two.retry_after(client) == pytest.approx(55)  # the fifth failure was on `one`
    assert await one.retry_after(["client:5.6.7.8"]) == 0  # per client
    clock.advance(55)
    assert await two.retry_after(client) == 0  # the oldest failure left the window
    await one.failed(client)
    assert await two.retry_after(client) > 0
    await two.succeeded(client)
    assert await one.retry_after(client) == 0


async def test_a_lease_has_one_holder_until_it_expires(
    two_stores: tuple[SQLiteStore, SQLiteStore], clock: Clock
) -> None:
    first, second = two_stores
    assert await first.try_lease("flow-timeouts", 90)
    assert not await second.try_lease("flow-timeouts", 90)
    assert await first.try_lease("flow-timeouts", 90)  # the holder renews
    assert await second.try_lease("balance-check", 90)  # another job, another lease
    clock.advance(91)  # the holder went away without renewing
    assert await second.try_lease("flow-timeouts", 90)
    assert not await first.try_lease("flow-timeouts", 90)


class CountingProvider(Provider):
    name = "counting"

    def __init__(self, credits: float) -> None:
        self.credits = credits
        self.calls = 0

    async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
        raise NotImplementedError

    async def balance(self) -> float:
        self.calls += 1
        await asyncio.sleep(0)
        return self.credits


async def test_balances_are_asked_once_a_minute_for_every_instance(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    first_provider, second_provider = CountingProvider(907.0), CountingProvider(907.0)
    first = Service(make_settings(), clock=clock, providers={"massiva": first_provider})
    second = Service(make_settings(), clock=clock, providers={"massiva": second_provider})
    await first.open()
    await second.open()
    try:
        shown = await first.fresh_balances()
        assert [(b.provider, b.credits, b.error) for b in shown] == [("massiva", 907.0, None)]
        again = await second.fresh_balances()  # the other instance reads what the first asked
        assert [(b.provider, b.credits) for b in again] == [("massiva", 907.0)]
        assert (first_provider.calls, second_provider.calls) == (1, 0)
        clock.advance(61)
        second_provider.credits = 900.0
        assert [b.credits for b in await second.fresh_balances()] == [900.0]
        assert [b.credits for b in await first.fresh_balances()] == [900.0]
        assert (first_provider.calls, second_provider.calls) == (1, 1)
        assert (await first.balances())["massiva"]["credits"] == 900.0
    finally:
        await second.close()
        await first.close()
