"""Crash safety, proven on a real process: SIGKILL while replies are queued and the provider
hangs, then a restart; and a graceful SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import loopback
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, massiva_env
from tests.fakes.massiva import FakeMassiva

COUNT = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`responder serve` as a child process, like production runs it."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "responder", "serve", "--port", str(self.port)],
            cwd=workdir,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if loopback.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.process.kill()
        raise RuntimeError("responder serve did not start")

    def inbound(self, phone: str, text: str) -> int:
        url = f"{self.url}/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"
        return loopback.get(url, params={"msg": text, "phone": phone}, timeout=5).status_code


def statuses(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT status, COUNT(*) FROM messages WHERE direction = 'out' GROUP BY status"
        ).fetchall()
    return dict(rows)


def wait(condition: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def env(workdir: Path, massiva: tuple[FakeMassiva, str]) -> Iterator[dict[str, str]]:
    fake, url = massiva
    yield {
        "RESPONDER_DATABASE": str(workdir / "responder.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
        **massiva_env(url, fake),
    }


PHONES = [f"58412{1000000 + i:07d}" for i in range(COUNT)]


def test_sigkill_while_the_provider_hangs_loses_no_reply(
    workdir: Path, env: dict[str, str], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, _ = massiva
    fake.hang_timeout = 60
    fake.fail_next("hang", times=1000)
    server = Server(workdir, env)
    assert [server.inbound(phone, "horario") for phone in PHONES] == [200] * COUNT
    assert wait(lambda: any(r.path.endswith("SendSms") for r in fake.requests))
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    before = statuses(workdir / "responder.db")
    assert sum(before.values()) == COUNT
    assert before.get("sending", 0) >= 1  # claimed, never answered: recognisable after a crash

    fake.fail_next("hang", times=0)
    fake.release()
    restarted = Server(workdir, env)
    try:
        assert wait(lambda: {s.phone for s in fake.sent} == set(PHONES))
        assert wait(lambda: statuses(workdir / "responder.db") == {"sent": COUNT})
        duplicates = len(fake.sent) - COUNT
        assert 0 <= duplicates <= COUNT  # at-least-once: a reply in flight may go twice
    finally:
        restarted.process.terminate()
        restarted.process.wait(timeout=15)


def test_sigterm_is_graceful_and_returns_sends_to_the_queue(
    workdir: Path, env: dict[str, str], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, _ = massiva
    fake.hang_timeout = 60
    fake.fail_next("hang", times=1000)
    server = Server(workdir, env)
    assert [server.inbound(phone, "horario") for phone in PHONES[:5]] == [200] * 5
    assert wait(lambda: any(r.path.endswith("SendSms") for r in fake.requests))
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught: exit status -15.
    assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 10  # in-flight sends get 5 s, then go back to the queue
    assert statuses(workdir / "responder.db") == {"queued": 5}

    fake.fail_next("hang", times=0)
    fake.release()
    restarted = Server(workdir, env)
    try:
        assert wait(lambda: statuses(workdir / "responder.db") == {"sent": 5})
        assert {s.phone for s in fake.sent} == set(PHONES[:5])
    finally:
        restarted.process.terminate()
        restarted.process.wait(timeout=15)
