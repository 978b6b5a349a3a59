"""The outbox worker against the fake providers over HTTP: batching, outages, errors."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from responder.config import MassivaSettings, MasSMSSettings
from responder.engine import Reply
from responder.providers.base import OutboundSMS, Provider, SendResult
from responder.providers.massiva import MassivaClient
from responder.providers.massms import MasSMSClient
from responder.providers.transport import HttpTransport
from responder.rules.model import Retry, RulesSettings
from responder.store.models import OutboxItem
from responder.store.sqlite import SQLiteStore
from responder.workers.outbox import OutboxWorker, batches
from responder.workers.poller import StatusPoller
from tests import loopback
from tests.conftest import MONDAY_10AM, Clock, RunningApp, massms_env
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "outbox.db", clock)
    await store.open()
    yield store
    await store.close()


def massiva_client(url: str, fake: FakeMassiva, batch: int = 50) -> MassivaClient:
    settings = MassivaSettings(url, fake.user, fake.password, batch)
    return MassivaClient(settings, HttpTransport(url, "massiva", timeout=2.0))


def massms_client(url: str, fake: FakeMasSMS) -> MasSMSClient:
    settings = MasSMSSettings(url, fake.api_id, fake.user, fake.password, "MiTienda")
    return MasSMSClient(settings, HttpTransport(url, "massms", timeout=2.0))


async def queue(store: SQLiteStore, provider: str, texts: list[tuple[str, str]]) -> list[int]:
    ids: list[int] = []
    for phone, text in texts:
        messages = await store.queue_outbound(phone, [Reply(text, 1, provider)], "cli")
        ids.extend(m.id for m in messages)
    return ids


async def statuses(store: SQLiteStore) -> list[tuple[str, str | None]]:
    return [(m.status, m.error) for m in await store.all_messages()]


async def drain(worker: OutboxWorker) -> None:
    await worker.drain()
    await worker.wait_idle()


def phones(n: int) -> list[str]:
    return [f"58412{1000000 + i:07d}" for i in range(n)]


async def test_massiva_batches_different_texts_in_one_request(
    make_worker: Callable[..., OutboxWorker], store: SQLiteStore, massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    client = massiva_client(url, fake, batch=50)
    await queue(store, "massiva", [(p, f"texto {i}") for i, p in enumerate(phones(120))])
    worker = make_worker(store, {"massiva": client})
    await drain(worker)
    sends = [r for r in fake.requests if r.path.endswith("SendSms")]
    assert sorted(len(r.params["telefonos"].split(";")) for r in sends) == [20, 50, 50]
    assert all(r.method == "POST" for r in sends)
    assert {(s.phone, s.text) for s in fake.sent} == {
        (p, f"texto {i}") for i, p in enumerate(phones(120))
    }
    messages = await store.all_messages()
    assert all(m.status == "sent" and m.provider_id for m in messages)
    assert {m.provider_id for m in messages} == {s.id for s in fake.sent}
    await client.aclose()


async def test_massms_groups_same_text_at_most_100_numbers(
    make_worker: Callable[..., OutboxWorker], store: SQLiteStore, massms: tuple[FakeMasSMS, str]
) -> None:
    fake, url = massms
    client = massms_client(url, fake)
    texts = [(p, "promo" if i % 2 else "hola") for i, p in enumerate(phones(250))]
    await queue(store, "massms", texts)
    await drain(make_worker(store, {"massms": client}))
    sends = [r for r in fake.requests if r.path.endswith("sendmsg.php")]
    sizes = sorted(len(r.params["to"].split(",")) for r in sends)
    assert sizes == [25, 25, 100, 100]
    assert all(len({s.text for s in fake.sent if s.phone in r.params["to"]}) == 1 for r in sends)
    assert len(fake.sent) == 250
    assert all(m.status == "sent" for m in await store.all_messages())
    await client.aclose()


# An HTTP 200 that cannot be read is not among them: see test_outbox_answers.py.
@pytest.mark.parametrize("fault", ["http500", "status:503", "status:429"])
async def test_transient_failure_is_retried_then_sent(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
    fault: str,
) -> None:
    fake, url = massiva
    client = massiva_client(url, fake)
    fake.fail_next(fault)
    [_message_id] = await queue(store, "massiva", [("584121234567", "hola")])
    worker = make_worker(store, {"massiva": client})
    await drain(worker)
    [message] = await store.all_messages()
    assert message.status == "queued"
    assert message.error and "massiva" in message.error
    await drain(worker)  # not due yet: nothing is sent
    assert fake.sent == []
    clock.advance(60)
    await drain(worker)
    [message] = await store.all_messages()
    assert (message.status, message.attempts, message.error) == ("sent", 2, None)
    assert [s.text for s in fake.sent] == ["hola"]
    await client.aclose()


async def test_permanent_errors_fail_at_once(
    make_worker: Callable[..., OutboxWorker], store: SQLiteStore, massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    settings = MassivaSettings(url, fake.user, "wrong-password", 50)
    client = MassivaClient(settings)  # status -1: authentication failed
    await queue(store, "massiva", [("584121234567", "hola")])
    await drain(make_worker(store, {"massiva": client}))
    [(status, error)] = await statuses(store)
    assert status == "failed"
    assert error is not None and "authentication failed" in error
    await client.aclose()


async def test_no_credits_fails_as_no_credits(
    make_worker: Callable[..., OutboxWorker], store: SQLiteStore, massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    fake.credits = 0
    client = massiva_client(url, fake)
    await queue(store, "massiva", [("584121234567", "hola")])
    await drain(make_worker(store, {"massiva": client}))
    [(status, error)] = await statuses(store)
    assert status == "failed"
    assert error is not None and "no credits" in error
    await client.aclose()


async def test_gives_up_after_max_attempts(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, url = massiva
    client = massiva_client(url, fake)
    fake.fail_next("http500", times=3)
    await queue(store, "massiva", [("584121234567", "hola")])
    settings = RulesSettings(retry=Retry(attempts=3))
    worker = make_worker(store, {"massiva": client}, settings=lambda: settings)
    for _ in range(3):
        await drain(worker)
        clock.advance(3600)
    [message] = await store.all_messages()
    assert (message.status, message.attempts) == ("failed", 3)
    assert message.error is not None and "HTTP 500" in message.error
    await client.aclose()


async def test_unconfigured_provider_fails_clearly(
    make_worker: Callable[..., OutboxWorker], store: SQLiteStore
) -> None:
    await queue(store, "massms", [("584121234567", "hola")])
    await drain(make_worker(store, {}))
    assert await statuses(store) == [("failed", "provider massms is not configured")]


async def claim_as_another_process(store: SQLiteStore, clock: Clock, owner: str) -> None:
    """Claims everything due as another instance would (`owner` names it), then walks away."""
    other = SQLiteStore(store.path, clock)
    other.instance = owner
    await other.open()
    assert await other.claim_outbox(10)
    await other.close()


async def run_briefly(worker: OutboxWorker, fake: FakeMassiva, seconds: float = 2.0) -> None:
    task = asyncio.create_task(worker.run())
    for _ in range(int(seconds / 0.01)):
        if fake.sent:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await worker.wait_idle()


async def test_sends_of_a_dead_process_on_this_machine_are_queued_again_on_start(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, url = massiva
    await queue(store, "massiva", [("584121234567", "hola")])
    # A previous run of this very process (same host and pid, another token) died mid-send.
    await claim_as_another_process(store, clock, store.instance.rsplit(":", 1)[0] + ":dead")
    assert [m.status for m in await store.all_messages()] == ["sending"]
    client = massiva_client(url, fake)
    await run_briefly(make_worker(store, {"massiva": client}, poll_interval=0.01), fake)
    assert [s.text for s in fake.sent] == ["hola"]
    await client.aclose()


async def test_a_live_instance_keeps_its_sends_until_its_lease_expires(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, url = massiva
    await queue(store, "massiva", [("584121234567", "hola")])
    await claim_as_another_process(store, clock, "other-host:4242:abcd")
    client = massiva_client(url, fake)
    worker = make_worker(store, {"massiva": client}, poll_interval=0.01)
    await run_briefly(worker, fake, seconds=0.3)
    await worker.stop()  # neither a start nor a stop takes another instance's send
    assert fake.sent == []
    assert [m.status for m in await store.all_messages()] == ["sending"]
    clock.advance(31)  # the other instance stopped renewing its lease
    await run_briefly(make_worker(store, {"massiva": client}, poll_interval=0.01), fake)
    assert [s.text for s in fake.sent] == ["hola"]
    await client.aclose()


def test_batches_never_exceed_the_provider_limit() -> None:
    class Tiny(Provider):
        name = "tiny"
        max_batch = 3
        per_message_texts = False

        async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
            return []

        async def balance(self) -> float:
            return 0

    items = [
        OutboxItem(i, f"58412000000{i}", "a" if i < 5 else "b", "tiny", 1, MONDAY_10AM)
        for i in range(8)
    ]
    groups = list(batches(items, Tiny()))
    assert [[i.id for i in g] for g in groups] == [[0, 1, 2], [3, 4], [5, 6, 7]]


def test_massms_end_to_end_with_status_polling(
    start_app: Callable[..., RunningApp], massms: tuple[FakeMasSMS, str], clock: Clock
) -> None:
    fake, url = massms
    app = start_app(**massms_env(url, fake))
    loopback.get(app.webhook(), params={"msg": "horario", "phone": "584121234567"})
    phone = "584121234567"
    messages = app.wait_for(phone, lambda m: m[-1]["status"] == "sent")
    assert messages[-1]["provider"] == "massms"
    assert [s.senderid for s in fake.sent] == ["MiTienda"]
    fake.deliver_all()
    clock.advance(30)
    poller: StatusPoller = app.service.poller
    assert app.service.loop is not None
    future = asyncio.run_coroutine_threadsafe(poller.poll_due(), app.service.loop)
    assert future.result(timeout=5) == 1
    assert app.messages(phone)[-1]["status"] == "delivered"


async def test_replies_handed_over_while_the_provider_is_busy_go_together(
    make_worker: Callable[..., OutboxWorker], store: SQLiteStore, massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    fake.delay = 0.2  # a distant gateway
    client = massiva_client(url, fake)
    worker = make_worker(store, {"massiva": client}, concurrency=1)
    ids = await queue(store, "massiva", [(p, f"r{i}") for i, p in enumerate(phones(6))])
    items = await store.claim_outbox(10)
    assert [i.id for i in items] == ids
    worker.take(items[:1])
    for _ in range(500):  # until the first request reaches the gateway: the slot is busy
        if fake.requests:
            break
        await asyncio.sleep(0.01)
    assert len(fake.requests) == 1
    for item in items[1:]:
        worker.take([item])
    await worker.wait_idle()
    sends = [r for r in fake.requests if r.path.endswith("SendSms")]
    assert [len(r.params["telefonos"].split(";")) for r in sends] == [1, 5]
    assert all(m.status == "sent" for m in await store.all_messages())
    await client.aclose()


async def test_parts_of_a_long_reply_stay_in_order_after_a_retry(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, url = massiva
    client = massiva_client(url, fake, batch=1)  # one request per part
    parts = [Reply(f"parte {i}", 1, "massiva") for i in range(1, 6)]
    await store.queue_outbound("584121234567", parts, "agent")
    fake.fail_next("http500", times=5)
    worker = make_worker(store, {"massiva": client}, concurrency=1)
    await drain(worker)
    clock.advance(600)
    await drain(worker)
    assert [s.text for s in fake.sent] == [f"parte {i}" for i in range(1, 6)]
    await client.aclose()


async def test_the_worker_survives_a_failing_pass(
    make_worker: Callable[..., OutboxWorker], store: SQLiteStore, massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    client = massiva_client(url, fake)
    worker = make_worker(store, {"massiva": client}, poll_interval=0.01)
    real_claim = store.claim_outbox
    failures: list[int] = []

    async def locked_once(limit: int, at_most_once: bool = False) -> list[OutboxItem]:
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        return await real_claim(limit, at_most_once)

    store.claim_outbox = locked_once  # type: ignore[method-assign]
    task = asyncio.create_task(worker.run())
    await store.queue_outbound("584121234567", [Reply("hola", 1, "massiva")], "agent")
    for _ in range(300):
        if fake.sent:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert failures == [1]
    assert [s.text for s in fake.sent] == ["hola"]
    await client.aclose()
