"""GET /metrics (DESIGN §13): Prometheus text, for a bearer token only; counters per instance,
the outbox gauges read from the database. Over real HTTP, with the fake Massiva."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import loopback
from tests.conftest import ADMIN_TOKEN, Clock, RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.test_team import ANA_PASSWORD, add_person, token_of

METRICS_TOKEN = "metrics-token-0123456789"


def scrape(app: RunningApp, token: str | None = ADMIN_TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return loopback.get(f"{app.url}/metrics", headers=headers)


def samples(app: RunningApp) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels, parsed as Prometheus parses it."""
    response = scrape(app)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str):
    return found.get((name, frozenset(labels.items())), 0.0)


def inbound(app: RunningApp, phone: str, text: str) -> None:
    response = loopback.get(app.webhook(), params={"msg": text, "phone": phone})
    assert response.status_code == 200, response.text


def test_metrics_need_a_bearer_token_of_an_owner_or_the_metrics_token(
    start_app: Callable[..., RunningApp],
) -> None:
    app = start_app(RESPONDER_METRICS_TOKEN=METRICS_TOKEN)
    add_person(app, "ana", "agent", ANA_PASSWORD)
    add_person(app, "olga", "owner", ANA_PASSWORD)
    for token in (None, "wrong-token-0123456789", token_of(app, "ana")):
        response = scrape(app, token)
        assert response.status_code == 401, token
        assert response.headers["www-authenticate"] == "Bearer"
        assert "RESPONDER_METRICS_TOKEN" in response.text
        assert "Traceback" not in response.text
    basic = loopback.get(f"{app.url}/metrics", headers={"Authorization": f"Basic {ADMIN_TOKEN}"})
    assert basic.status_code == 401
    for token in (ADMIN_TOKEN, METRICS_TOKEN, token_of(app, "olga")):
        response = scrape(app, token)
        assert response.status_code == 200, token
        assert "responder_outbox_queued 0.0" in response.text


def test_counts_after_webhooks_sends_and_delivery_reports(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str], clock: Clock
) -> None:
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    before = samples(app)
    assert value(before, "responder_inbound_total", provider="massiva") == 0
    assert value(before, "responder_webhook_seconds_count") == 0

    inbound(app, "584121234567", "¿a qué hora abren?")
    inbound(app, "584121234568", "hola")
    for phone in ("584121234567", "584121234568"):
        app.wait_for(phone, lambda m: len(m) == 2 and m[1]["status"] == "sent")
    clock.advance(42)
    # The two replies may reach the gateway in either order: the report is for this one's.
    sms = next(s for s in fake.sent if s.phone == "584121234567")
    report = asyncio.run(fake.report_status(app.webhook("/status"), sms.id, 1))
    assert report.status_code == 200
    app.wait_for("584121234567", lambda m: m[1]["status"] == "delivered")

    found = samples(app)
    assert value(found, "responder_inbound_total", provider="massiva") == 2
    assert value(found, "responder_outbound_total", provider="massiva", outcome="sent") == 2
    assert value(found, "responder_segments_total", provider="massiva") == 2
    assert value(found, "responder_rule_matches_total", rule="horario") == 1
    assert value(found, "responder_rule_matches_total", rule="otro") == 1
    assert value(found, "responder_webhook_seconds_count") == 3  # two inbound, one report
    assert value(found, "responder_send_seconds_count") >= 1
    assert value(found, "responder_delivery_seconds_count") == 1
    assert value(found, "responder_delivery_seconds_sum") == pytest.approx(42)
    assert value(found, "responder_delivery_seconds_bucket", le="30.0") == 0
    assert value(found, "responder_delivery_seconds_bucket", le="60.0") == 1


def test_a_failed_send_counts_by_outcome(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    fake.plan_active = False  # every send refused, for good: the reply fails
    app = start_app(**massiva_env(url, fake))
    inbound(app, "584121234567", "horario")
    app.wait_for("584121234567", lambda m: len(m) == 2 and m[1]["status"] == "failed")
    found = samples(app)
    assert value(found, "responder_outbound_total", provider="massiva", outcome="failed") == 1
    assert value(found, "responder_outbound_total", provider="massiva", outcome="sent") == 0
    assert value(found, "responder_segments_total", provider="massiva") == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_outbox_gauges_come_from_the_database(
    backend: str,
    start_app: Callable[..., RunningApp],
    massiva: tuple[FakeMassiva, str],
    clock: Clock,
) -> None:
    fake, url = massiva
    app = start_app(backend=backend, **massiva_env(url, fake))
    # The balance check at start must not be the request that hangs.
    deadline = time.monotonic() + 5
    while not any(r.path.endswith("obtenerCreditoDisponible") for r in fake.requests):
        assert time.monotonic() < deadline, "the balance check at start never came"
        time.sleep(0.01)
    fake.fail_next("hang")  # the first send waits at the gateway: its reply stays 'sending'
    inbound(app, "584121234567", "horario")
    app.wait_for("584121234567", lambda m: len(m) == 2 and m[1]["status"] == "sending")
    clock.advance(90)
    found = samples(app)
    assert value(found, "responder_outbox_queued") == 1
    assert value(found, "responder_outbox_oldest_seconds") == pytest.approx(90)
    if backend == "postgres":
        # Another instance on the same database: the same queue, but none of the first's counts.
        other = start_app(backend=backend, **massiva_env(url, fake))
        theirs = samples(other)
        assert value(theirs, "responder_outbox_queued") == 1
        assert value(theirs, "responder_outbox_oldest_seconds") == pytest.approx(90)
        assert value(theirs, "responder_inbound_total", provider="massiva") == 0
        assert value(found, "responder_inbound_total", provider="massiva") == 1
    fake.release()
    app.wait_for("584121234567", lambda m: m[1]["status"] == "sent")
    found = samples(app)
    assert value(found, "responder_outbox_queued") == 0
    assert value(found, "responder_outbox_oldest_seconds") == 0


def test_each_app_counts_on_its_own(start_app: Callable[..., RunningApp], tmp_path) -> None:
    first = start_app()
    inbound(first, "584121234567", "hola")
    second = start_app(RESPONDER_DATABASE=str(tmp_path / "other.db"))
    assert value(samples(first), "responder_inbound_total", provider="massiva") == 1
    assert value(samples(second), "responder_inbound_total", provider="massiva") == 0
