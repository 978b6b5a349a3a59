"""The MasSMS status poller against the fake MasSMS: final states, NOTFOUND, errors, give-up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from responder.config import MasSMSSettings
from responder.engine import Reply
from responder.providers.base import OutboundSMS
from responder.providers.massms import MasSMSClient
from responder.store.models import SendOutcome
from responder.store.sqlite import SQLiteStore
from responder.workers.poller import StatusPoller
from tests.conftest import Clock
from tests.fakes.massms import FakeMasSMS


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "poll.db", clock)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def client(massms: tuple[FakeMasSMS, str]) -> AsyncIterator[MasSMSClient]:
    fake, url = massms
    client = MasSMSClient(MasSMSSettings(url, fake.api_id, fake.user, fake.password, None))
    yield client
    await client.aclose()


async def sent(store: SQLiteStore, provider_id: str) -> int:
    """A message the provider accepted as `provider_id`, due for its first poll in 10 s."""
    [message] = await store.queue_outbound("584121234567", [Reply("hola", 1, "massms")], "cli")
    await store.record_outcomes([SendOutcome(message.id, "massms", "sent", provider_id)])
    return message.id


async def status(store: SQLiteStore) -> tuple[str, str | None]:
    [message] = await store.all_messages()
    return message.status, message.error


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1, ("delivered", None)),
        (3, ("failed", "invalid mobile number")),
        (6, ("failed", "no credits: insufficient balance")),
    ],
)
async def test_a_final_status_ends_polling(
    make_poller: Callable[..., StatusPoller],
    store: SQLiteStore,
    clock: Clock,
    client: MasSMSClient,
    massms: tuple[FakeMasSMS, str],
    code: int,
    expected: tuple[str, str | None],
) -> None:
    fake, _ = massms
    [result] = await client.send([OutboundSMS(1, "584121234567", "hola")])
    assert result.provider_id is not None
    msgid = result.provider_id
    await sent(store, msgid)
    fake.set_status(msgid, code)
    poller = make_poller(store, {"massms": client})
    assert await poller.poll_due() == 0  # not due yet: the first poll waits 10 s
    clock.advance(11)
    assert await poller.poll_due() == 1
    assert await status(store) == expected
    clock.advance(3600)
    assert await poller.poll_due() == 0  # final: never asked again


async def test_notfound_and_errors_keep_polling_until_the_give_up_age(
    make_poller: Callable[..., StatusPoller],
    store: SQLiteStore,
    clock: Clock,
    client: MasSMSClient,
    massms: tuple[FakeMasSMS, str],
) -> None:
    fake, _ = massms
    await sent(store, "0" * 32)  # the platform does not know it (yet): NOTFOUND
    poller = make_poller(store, {"massms": client}, give_up_after=3600)
    clock.advance(11)
    assert await poller.poll_due() == 1
    fake.fail_next("http500")
    clock.advance(600)
    assert await poller.poll_due() == 1  # an error is retried like NOTFOUND
    assert await status(store) == ("sent", None)
    clock.advance(3600)
    assert await poller.poll_due() == 1  # older than give_up_after: the last look
    clock.advance(3600)
    assert await poller.poll_due() == 0
    assert await status(store) == ("sent", None)
