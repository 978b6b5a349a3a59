"""What the outbox does with provider answers that are not a clean yes or no: an HTTP 200 that
cannot be read leaves the batch unconfirmed (never sent again), and what goes wrong for one
number of a batch touches only that message."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from html import escape
from pathlib import Path

import pytest

from responder.config import MassivaSettings, MasSMSSettings
from responder.engine import Reply
from responder.providers.base import Provider
from responder.providers.massiva import MassivaClient
from responder.providers.massms import MasSMSClient
from responder.providers.transport import HttpTransport
from responder.store.models import Message
from responder.store.sqlite import SQLiteStore
from responder.workers.outbox import OutboxWorker
from tests import loopback
from tests.conftest import Clock, RunningApp, massiva_env
from tests.fakes.common import FakeProvider
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS
from tests.test_admin import sign_in

A, B, C = "584121234567", "584141234567", "584161234567"
PASSES = 8  # the default retry policy's attempts: every retry the old code would have made


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "outbox.db", clock)
    await store.open()
    yield store
    await store.close()


def client_for(fake: FakeProvider, url: str) -> Provider:
    if isinstance(fake, FakeMassiva):
        settings = MassivaSettings(url, fake.user, fake.password, 50)
        return MassivaClient(settings, HttpTransport(url, "massiva", timeout=2.0))
    assert isinstance(fake, FakeMasSMS)
    ms = MasSMSSettings(url, fake.api_id, fake.user, fake.password, "MiTienda")
    return MasSMSClient(ms, HttpTransport(url, "massms", timeout=2.0))


async def queue(store: SQLiteStore, provider: str, texts: list[tuple[str, str]]) -> None:
    for phone, text in texts:
        await store.queue_outbound(phone, [Reply(text, 1, provider)], "agent")


async def every_chance(worker: OutboxWorker, clock: Clock) -> None:
    """Drains the outbox as often as the retry policy could ever bring a message back."""
    for _ in range(PASSES):
        await worker.drain()
        await worker.wait_idle()
        clock.advance(3600)


def send_requests(fake: FakeProvider) -> int:
    return sum(1 for r in fake.requests if r.path.endswith(("SendSms", "sendmsg.php")))


def by_phone(messages: list[Message]) -> dict[str, tuple[str, str | None]]:
    return {m.phone: (m.status, m.provider_id) for m in messages}


@pytest.mark.parametrize("which", ["massiva", "massms"])
async def test_a_200_with_garbage_after_sending_is_one_request_and_unconfirmed(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
    massms: tuple[FakeMasSMS, str],
    which: str,
) -> None:
    fake, url = massiva if which == "massiva" else massms
    client = client_for(fake, url)
    # MasSMS takes one text for many numbers; Massiva one text per number.
    texts = ["Su pedido está listo"] * 3 if which == "massms" else ["uno", "dos", "tres"]
    await queue(store, which, list(zip((A, B, C), texts, strict=True)))
    fake.fail_next("garbage-after-sending")  # the gateway sends all three, its answer breaks
    await every_chance(make_worker(store, {which: client}), clock)
    assert send_requests(fake) == 1
    assert len(fake.sent) == 3  # each customer got it exactly once
    messages = await store.all_messages()
    assert [m.status for m in messages] == ["unconfirmed"] * 3
    assert all(m.error and "not sent again" in m.error for m in messages)
    assert all(m.attempts == 1 for m in messages)
    await client.aclose()


async def test_xml_broken_by_an_echoed_control_character_is_one_request(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
) -> None:
    """Massiva echoes each texto; a gateway that echoes `€` as the GSM-7 septets ESC + e puts
    a control character into its XML even though none was sent."""
    fake, url = massiva
    fake.echo_gsm7_escapes = True
    client = client_for(fake, url)
    await queue(store, "massiva", [(A, "Total: 5 €"), (B, "hola"), (C, "adiós")])
    await every_chance(make_worker(store, {"massiva": client}), clock)
    assert send_requests(fake) == 1
    assert sorted(s.phone for s in fake.sent) == [A, B, C]
    assert [m.status for m in await store.all_messages()] == ["unconfirmed"] * 3
    await client.aclose()


async def test_one_number_massiva_refuses_fails_alone(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, url = massiva
    client = client_for(fake, url)
    short = "584121234"  # Massiva answers per-number status 2 for it
    await queue(store, "massiva", [(A, "uno"), (short, "dos"), (C, "tres")])
    await every_chance(make_worker(store, {"massiva": client}), clock)
    assert send_requests(fake) == 1
    ids = {s.phone: s.id for s in fake.sent}
    messages = await store.all_messages()
    assert by_phone([m for m in messages if m.phone != short]) == {
        A: ("sent", ids[A]),
        C: ("sent", ids[C]),
    }
    [refused] = [m for m in messages if m.phone == short]
    assert (refused.status, refused.error) == ("failed", "massiva: rejected (number status 2)")
    await client.aclose()


@pytest.mark.parametrize("fault", ["unlisted", "garbled"])
async def test_one_number_massms_answers_unreadably_for_touches_only_its_message(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massms: tuple[FakeMasSMS, str],
    fault: str,
) -> None:
    fake, url = massms
    getattr(fake, fault).add(B)  # left out of the answer, or listed without its msgid
    client = client_for(fake, url)
    await queue(store, "massms", [(A, "promo"), (B, "promo"), (C, "promo")])
    await every_chance(make_worker(store, {"massms": client}), clock)
    assert send_requests(fake) == 1
    assert len(fake.sent) == 3  # nobody got it twice
    ids = {s.phone: s.id for s in fake.sent}
    messages = await store.all_messages()
    assert by_phone(messages) == {
        A: ("sent", ids[A]),
        B: ("unconfirmed", None),
        C: ("sent", ids[C]),
    }
    [doubtful] = [m for m in messages if m.phone == B]
    assert doubtful.error is not None and "does not list this number" in doubtful.error
    await client.aclose()


def test_unconfirmed_is_shown_in_the_api_and_the_inbox(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    deadline = time.monotonic() + 5
    while not fake.requests and time.monotonic() < deadline:  # the balance asked at start
        time.sleep(0.01)
    fake.fail_next("garbage-after-sending")
    loopback.get(app.webhook(), params={"msg": "horario", "phone": A}).raise_for_status()
    messages = app.wait_for(A, lambda m: m[-1]["status"] not in ("queued", "sending"))
    reply = messages[-1]
    assert reply["status"] == "unconfirmed"
    assert reply["error"].startswith("massiva: SendSms answered something that is not its XML")
    assert reply["error"].endswith("it may have gone out, so it is not sent again")
    with closing(sign_in(app)) as staff:
        page = " ".join(staff.get(f"/admin/conversations/{A}").text.split())
        dashboard = " ".join(staff.get("/admin/dashboard").text.split())
    # the reason in Spanish, the provider's raw answer on hover
    assert 'sin confirmar</span>: <span class="reason"' in page
    assert f'title="{escape(reply["error"])}">Respuesta ilegible del proveedor' in page
    assert "sin confirmar 1" in dashboard
    assert send_requests(fake) == 1 and len(fake.sent) == 1
