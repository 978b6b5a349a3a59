"""Delivery policy: expiry, retry limits, at-most-once, failover, rate, priority, scheduling,
low credit, attempts — against the fake providers over HTTP."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from responder.config import MassivaSettings, MasSMSSettings
from responder.engine import Reply
from responder.providers.massiva import MassivaClient
from responder.providers.massms import MasSMSClient
from responder.rules.model import Retry, RulesSettings
from responder.store.sqlite import SQLiteStore
from responder.workers.outbox import OutboxWorker
from tests import loopback
from tests.conftest import Clock, RunningApp, massiva_env, massms_env
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS

PHONE = "584121234567"


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "delivery.db", clock)
    await store.open()
    yield store
    await store.close()


def massiva_client(url: str, fake: FakeMassiva) -> MassivaClient:
    return MassivaClient(MassivaSettings(url, fake.user, fake.password, 50))


def massms_client(url: str, fake: FakeMasSMS) -> MasSMSClient:
    return MasSMSClient(MasSMSSettings(url, fake.api_id, fake.user, fake.password, None))


def start_conversation(app: RunningApp) -> None:
    """The customer writes first: staff can only answer an existing conversation."""
    response = loopback.get(app.webhook(), params={"msg": "hola", "phone": PHONE})
    assert response.status_code == 200


async def drain(worker: OutboxWorker) -> None:
    await worker.drain()
    await worker.wait_idle()


async def test_old_auto_replies_expire_but_agent_replies_wait_longer(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, url = massiva
    await store.queue_outbound(PHONE, [Reply("auto", 1, "massiva")], "auto")
    await store.queue_outbound(PHONE, [Reply("agente", 1, "massiva")], "agent")
    clock.advance(2 * 3600)  # the provider was down for two hours
    client = massiva_client(url, fake)
    await drain(make_worker(store, {"massiva": client}))
    by_text = {m.text: m for m in await store.all_messages()}
    assert by_text["auto"].status == "failed"
    assert by_text["auto"].error is not None and by_text["auto"].error.startswith("expired")
    assert by_text["agente"].status == "sent"
    assert [s.text for s in fake.sent] == ["agente"]
    await client.aclose()


async def test_retries_stop_at_max_age(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, url = massiva
    fake.fail_next("http500", times=10)
    settings = RulesSettings(retry=Retry(attempts=100, max_age=600))
    client = massiva_client(url, fake)
    worker = make_worker(store, {"massiva": client}, settings=lambda: settings)
    await store.queue_outbound(PHONE, [Reply("hola", 1, "massiva")], "agent")
    await drain(worker)
    clock.advance(700)
    await drain(worker)
    [message] = await store.all_messages()
    assert (message.status, message.attempts) == ("failed", 2)
    attempts = await store.message_attempts(message.id)
    assert [a["outcome"] for a in attempts] == ["retry", "failed"]
    assert all("HTTP 500" in a["error"] for a in attempts)
    await client.aclose()


@pytest.mark.parametrize(
    ("delivery", "status"), [("at_least_once", "sent"), ("at_most_once", "failed")]
)
async def test_what_a_crash_mid_send_leads_to(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    massiva: tuple[FakeMassiva, str],
    delivery: str,
    status: str,
) -> None:
    fake, url = massiva
    await store.queue_outbound(PHONE, [Reply("hola", 1, "massiva")], "agent")
    # Claimed by a process on this machine that then died (another token, the same pid).
    dead = SQLiteStore(store.path, store.clock)
    dead.instance = store.instance.rsplit(":", 1)[0] + ":dead"
    await dead.open()
    await dead.claim_outbox(10)
    await dead.close()
    settings = RulesSettings(delivery=delivery)
    client = massiva_client(url, fake)
    worker = make_worker(store, {"massiva": client}, settings=lambda: settings, poll_interval=0.01)
    task = asyncio.create_task(worker.run())
    for _ in range(500):  # until the worker has settled the message: at most 5 s
        [message] = await store.all_messages()
        if message.status in ("sent", "failed"):
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await worker.wait_idle()
    [message] = await store.all_messages()
    assert message.status == status
    assert len(fake.sent) == (1 if status == "sent" else 0)
    await client.aclose()


async def test_failover_to_the_other_provider_when_out_of_credits(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    clock: Clock,
    massiva: tuple[FakeMassiva, str],
    massms: tuple[FakeMasSMS, str],
) -> None:
    (fake_a, url_a), (fake_b, url_b) = massiva, massms
    fake_a.credits = 0
    providers = {"massiva": massiva_client(url_a, fake_a), "massms": massms_client(url_b, fake_b)}
    settings = RulesSettings(failover=True)
    worker = make_worker(store, providers, settings=lambda: settings)
    await store.queue_outbound(PHONE, [Reply("hola", 1, "massiva")], "agent")
    await drain(worker)
    await drain(worker)
    [message] = await store.all_messages()
    assert (message.status, message.provider, message.failover_from) == (
        "sent",
        "massms",
        "massiva",
    )
    assert [s.text for s in fake_b.sent] == ["hola"] and fake_a.sent == []
    attempts = await store.message_attempts(message.id)
    assert [(a["provider"], a["outcome"]) for a in attempts] == [
        ("massiva", "failover"),
        ("massms", "sent"),
    ]
    for provider in providers.values():
        await provider.aclose()


async def test_without_failover_no_credits_fails_at_once(
    make_worker: Callable[..., OutboxWorker],
    store: SQLiteStore,
    massiva: tuple[FakeMassiva, str],
    massms: tuple[FakeMasSMS, str],
) -> None:
    (fake_a, url_a), (fake_b, url_b) = massiva, massms
    fake_a.credits = 0
    providers = {"massiva": massiva_client(url_a, fake_a), "massms": massms_client(url_b, fake_b)}
    await store.queue_outbound(PHONE, [Reply("hola", 1, "massiva")], "agent")
    await drain(make_worker(store, providers))
    [message] = await store.all_messages()
    assert message.status == "failed" and message.error is not None
    assert "no credits" in message.error
    for provider in providers.values():
        await provider.aclose()


def test_massms_schedules_natively_and_massiva_holds(
    start_app: Callable[..., RunningApp],
    massiva: tuple[FakeMassiva, str],
    massms: tuple[FakeMasSMS, str],
) -> None:
    (fake_a, url_a), (fake_b, url_b) = massiva, massms
    app = start_app(**massiva_env(url_a, fake_a), **massms_env(url_b, fake_b))
    start_conversation(app)
    with app.api() as api:
        # 2026-11-23 12:00 in Caracas is two hours after the test clock's 10:00.
        for via in ("massms", "massiva"):
            response = api.post(
                f"/api/conversations/{PHONE}/messages",
                json={"text": f"recordatorio {via}", "via": via, "send_at": "2026-11-23T12:00"},
            )
            assert response.status_code == 202
            assert response.json()["message"]["status"] == "scheduled"
    messages = app.wait_for(PHONE, lambda m: m[-2]["provider_id"] is not None)[-2:]
    assert [s.smstype for s in fake_b.sent] == ["p"]
    assert (fake_b.sent[0].date_delivery, fake_b.sent[0].time_delivery) == ("2026-11-23", "12:00")
    assert [(m["provider"], m["status"]) for m in messages] == [
        ("massms", "scheduled"),
        ("massiva", "scheduled"),
    ]
    assert "recordatorio massiva" not in [s.text for s in fake_a.sent]  # held until due


def test_low_credit_is_reported(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str], workdir: Path
) -> None:
    fake, url = massiva
    fake.credits = 5
    rules = workdir / "rules.yaml"
    rules.write_text(
        rules.read_text(encoding="utf-8").replace("settings:\n", "settings:\n  low_credit: 10\n"),
        encoding="utf-8",
    )
    app = start_app(**massiva_env(url, fake))
    with app.api() as api:
        balances = api.get("/api/balances?refresh=true").json()["balances"]
    assert balances["massiva"]["credits"] == 5
    assert balances["massiva"]["low"] is True
    health = loopback.get(f"{app.url}/healthz")
    assert health.status_code == 200
    assert health.json()["low_credit"] == ["massiva"]


def stored_balances(app: RunningApp) -> list[tuple[str]]:
    with sqlite3.connect(app.service.settings.database) as db:
        return db.execute("SELECT provider FROM balances").fetchall()


def test_message_detail_lists_attempts(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not stored_balances(app):
        time.sleep(0.01)  # let the start-up balance check pass first
    start_conversation(app)
    app.wait_for(PHONE, lambda m: m[-1]["status"] == "sent")
    fake.fail_next("http500")
    with app.api() as api:
        sent = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "hola"}).json()
        message_id = sent["message"]["id"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            detail = api.get(f"/api/messages/{message_id}").json()
            if detail["attempts"] and detail["message"]["status"] != "sending":
                break
            time.sleep(0.02)
        assert detail["message"]["status"] == "queued", detail
        assert [a["outcome"] for a in detail["attempts"]] == ["retry"]
        assert "HTTP 500" in detail["attempts"][0]["error"]
        assert api.get("/api/messages/999999").status_code == 404
