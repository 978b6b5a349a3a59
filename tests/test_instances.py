"""Several `responder serve` processes on one database, as behind a load balancer: real
processes, a real database, a fake gateway that holds every send until told."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.served import ServeProcess

WEBHOOKS = 500
CLIENTS = 50
PHONES = [f"58412{2000000 + i:07d}" for i in range(WEBHOOKS)]


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
def instances(tmp_path: Path, env: dict[str, str]) -> Iterator[Callable[[str], ServeProcess]]:
    """Starts named instances, each in its own folder (its own logs), all on one database."""
    started: list[ServeProcess] = []

    def start(name: str) -> ServeProcess:
        folder = tmp_path / name
        folder.mkdir()
        server = ServeProcess(folder, env)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def outbound(database: Path) -> dict[str, list[str]]:
    """Each phone's outbound statuses."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT phone, status FROM messages WHERE direction = 'out'").fetchall()
    found: dict[str, list[str]] = {}
    for phone, status in rows:
        found.setdefault(phone, []).append(status)
    return found


def wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_killed_instance_loses_nothing_and_sends_nothing_twice(
    instances: Callable[[str], ServeProcess],
    workdir: Path,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, _ = massiva
    fake.hang_timeout = 120
    fake.fail_next("hang", times=10 * WEBHOOKS)  # the gateway holds every send
    # A webhook the dying instance committed but never answered is sent again to the other
    # one: a provider retry, recognised within the dedupe window. On a loaded machine the
    # first try may have waited seconds in the dead process, so the window is wide here.
    rules = workdir / "rules.yaml"
    rules.write_text(
        rules.read_text().replace("  country: VE\n", "  country: VE\n  dedupe_window: 120s\n"),
        encoding="utf-8",
    )
    first, second = instances("first"), instances("second")
    acknowledged: set[str] = set()
    lock = threading.Lock()
    killed = threading.Event()

    def deliver(index: int) -> None:
        """One webhook, as a load balancer sends it: alternately to each instance, and to the
        other one when the first cannot be reached."""
        targets = [first, second] if index % 2 == 0 else [second, first]
        for server in targets:
            if server is first and killed.is_set():
                continue
            url = f"{server.url}/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"
            try:
                response = httpx.get(url, params={"msg": "horario", "phone": PHONES[index]})
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                with lock:
                    acknowledged.add(PHONES[index])
                    if len(acknowledged) == WEBHOOKS // 2 and not killed.is_set():
                        first.process.send_signal(signal.SIGKILL)  # halfway
                        killed.set()
                return

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(deliver, range(WEBHOOKS)))
    first.process.wait(timeout=10)
    assert killed.is_set()
    assert acknowledged == set(PHONES)  # every webhook was answered OK by one instance
    accepted_before_release = len(fake.sent)
    assert accepted_before_release == 0  # the gateway held every send so far

    fake.release()
    database = workdir / "responder.db"
    # The dead instance's leased replies go out from the other one, within the lease time.
    assert wait(lambda: len(outbound(database)) == WEBHOOKS, timeout=40)
    assert wait(lambda: all(s == ["sent"] for s in outbound(database).values()), timeout=40), (
        sorted({tuple(s) for s in outbound(database).values()})
    )
    time.sleep(1.0)  # anything that would still go out twice has had time to
    sent = sorted(s.phone for s in fake.sent)
    assert sent == sorted(PHONES)  # each customer answered exactly once
    second.stop()
