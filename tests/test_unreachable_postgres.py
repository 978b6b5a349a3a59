"""PostgreSQL cut off (DESIGN §9): the app reaches a real server through a TCP proxy that the
test closes and opens again, a real network failure without mocking the driver. Webhooks are
still answered `OK` and kept in the spool, /healthz says 503, and when the server answers again
everything is stored and answered in order, once."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import loopback
from tests.conftest import Clock, RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.fakes.tcpproxy import TcpProxy
from tests.test_unreachable import ANA, BETO, HANDOFF, HOURS, conversation, eventually, health

CARLA = "584163333333"
PRICE = "El precio de pan es 5 USD."


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as running:
        yield running


def through(proxy: TcpProxy, url: str) -> str:
    """`url` with the proxy's address in place of the server's."""
    parts = urlsplit(url)
    user, _, _ = parts.netloc.rpartition("@")
    host = f"127.0.0.1:{proxy.port}"
    return parts._replace(netloc=f"{user}@{host}" if user else host).geturl()


def spooled(folder: Path) -> list[tuple[str, str]]:
    found = []
    for segment in sorted(folder.glob("*/*.jsonl")):
        for line in segment.read_bytes().splitlines():
            record = json.loads(line)
            found.append((record["phone"], record["text"]))
    return found


def test_postgres_cut_off_webhooks_are_spooled_and_stored_when_it_answers_again(
    proxy: TcpProxy,  # first: it closes after the app, which stops on a reachable server
    start_app: Callable[..., RunningApp],
    workdir: Path,
    clock: Clock,
    postgres_url: str,
    massiva: tuple[FakeMassiva, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = massiva
    spool = workdir / "spool"
    app = start_app(
        RESPONDER_DATABASE=through(proxy, postgres_url),
        RESPONDER_SPOOL=str(spool),
        **massiva_env(url, fake),
    )
    app.service.replayer.outage.first = app.service.replayer.outage.cap = 0.2
    inbound = app.webhook()
    assert loopback.get(inbound, params={"msg": "horario", "phone": BETO}).text == "OK"
    eventually(lambda: len(fake.sent) == 1)

    with caplog.at_level(logging.INFO, logger="responder"):
        proxy.cut()  # every connection closed, new ones refused: PostgreSQL is gone
        clock.advance(60)
        sent = [(ANA, "asesor"), (CARLA, "precio pan"), (ANA, "horario"), (BETO, "horario")]
        for phone, text in sent:
            response = loopback.get(inbound, params={"msg": text, "phone": phone}, timeout=30)
            assert (response.status_code, response.text) == (200, "OK")
            clock.advance(1)
        assert spooled(spool) == sent
        status, body = health(app)
        assert (status, body["status"], body["spooled"]) == (503, "database unavailable", 4)
        time.sleep(1.5)  # the workers and the replayer try a few times meanwhile

        proxy.restore()
        eventually(lambda: health(app) == (200, {"status": "ok", "low_credit": [], "spooled": 0}))
        eventually(lambda: len(fake.sent) == 4)

    assert conversation(app, ANA) == [("in", "asesor"), ("out", HANDOFF), ("in", "horario")]
    assert conversation(app, CARLA) == [("in", "precio pan"), ("out", PRICE)]
    # Beto's second "horario" came 64 s after the first: a new message, answered again.
    assert conversation(app, BETO) == [("in", "horario"), ("out", HOURS)] * 2
    time.sleep(0.5)  # anything sent twice would have gone by now
    assert sorted((s.phone, s.text) for s in fake.sent) == sorted(
        [(BETO, HOURS), (ANA, HANDOFF), (CARLA, PRICE), (BETO, HOURS)]
    )
    assert spooled(spool) == []
    # The outage is told once per thing that noticed it, not once per try (asyncpg's own
    # pool says so at each of its reconnection tries, 1 s apart and doubling: not ours).
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("responder")
    ]
    assert len(warnings) == len(set(warnings)), caplog.text
    assert "stored the 4 webhook(s) the spool kept" in caplog.text
