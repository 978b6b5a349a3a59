"""SIGKILL while webhooks wait in the spool, on a real `responder serve` process: nothing it
answered `OK` is lost, and the restart stores and answers each once, in order."""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests import loopback
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.served import ServeProcess

ANA, BETO, CARLA = "584121111111", "584142222222", "584163333333"


@pytest.fixture
def env(workdir: Path, massiva: tuple[FakeMassiva, str]) -> dict[str, str]:
    fake, url = massiva
    return {
        "RESPONDER_DATABASE": str(workdir / "responder.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
        **massiva_env(url, fake),
    }


@pytest.fixture
def servers() -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def spooled(workdir: Path) -> list[tuple[str, str]]:
    found = []
    for segment in sorted((workdir / "responder.db-spool").glob("*/*.jsonl")):
        for line in segment.read_bytes().splitlines():
            record = json.loads(line)
            found.append((record["phone"], record["text"]))
    return found


def conversation(server: ServeProcess, phone: str) -> list[tuple[str, str]]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    url = f"{server.url}/api/conversations/{phone}/messages"
    response = loopback.get(url, headers=headers, timeout=10)
    if response.status_code == 404:
        return []
    return [(m["direction"], m["text"]) for m in response.json()["messages"]]


def wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s"
        time.sleep(0.05)


def test_sigkill_while_webhooks_wait_in_the_spool_loses_none(
    workdir: Path,
    env: dict[str, str],
    massiva: tuple[FakeMassiva, str],
    servers: list[ServeProcess],
) -> None:
    fake, _ = massiva
    servers.append(ServeProcess(workdir, env))
    server = servers[0]
    webhook = f"{server.url}/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"

    def send(message: tuple[str, str]) -> tuple[int, str]:
        phone, text = message
        response = loopback.get(webhook, params={"msg": text, "phone": phone}, timeout=60)
        return response.status_code, response.text

    # The server may no longer write past the first 4 KiB of any file (RLIMIT_FSIZE, set from
    # outside as a full disk would): the database's log needs more for a single page and
    # fails at once, while the spool's few short lines still fit.
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    assert send((ANA, "asesor")) == (200, "OK")
    later = [(BETO, "horario"), (ANA, "horario"), (CARLA, "precio pan")]
    with ThreadPoolExecutor(len(later)) as pool:
        assert list(pool.map(send, later)) == [(200, "OK")] * len(later)
    kept = spooled(workdir)
    assert kept[0] == (ANA, "asesor") and sorted(kept[1:]) == sorted(later)
    health = loopback.get(f"{server.url}/healthz", timeout=10)
    assert (health.status_code, health.json()["spooled"]) == (503, 4)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    with sqlite3.connect(workdir / "responder.db") as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)

    servers.append(ServeProcess(workdir, env))
    restarted = servers[1]
    handoff, hours = "Un asesor le escribira pronto.", "Abrimos de lunes a viernes, 8:00 a 17:00."
    price = "El precio de pan es 5 USD."
    wait(lambda: len(conversation(restarted, CARLA)) == 2 and len(fake.sent) == 3)
    assert conversation(restarted, ANA) == [("in", "asesor"), ("out", handoff), ("in", "horario")]
    assert conversation(restarted, BETO) == [("in", "horario"), ("out", hours)]
    assert conversation(restarted, CARLA) == [("in", "precio pan"), ("out", price)]
    time.sleep(0.5)  # anything sent twice would have gone by now
    assert sorted((s.phone, s.text) for s in fake.sent) == sorted(
        [(ANA, handoff), (BETO, hours), (CARLA, price)]
    )
    assert spooled(workdir) == []
    assert restarted.stop() in (0, -signal.SIGTERM)
