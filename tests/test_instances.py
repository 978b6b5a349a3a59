"""Several `responder serve` processes on one database, as behind a load balancer: real
processes, a real database (a SQLite file, and a PostgreSQL server), a fake gateway that holds
every send until told."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests import loopback
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, massiva_env
from tests.fakes.common import Recorded
from tests.fakes.massiva import FakeMassiva
from tests.postgres import run_async
from tests.served import ServeProcess

WEBHOOKS = 500
CLIENTS = 50
PHONES = [f"58412{2000000 + i:07d}" for i in range(WEBHOOKS)]
COUNT = 20  # replies in flight during an overlapping deploy


class Database:
    """The database the instances share, read the way a test checks it: straight from the
    file or the server, not through the service."""

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.url.startswith("postgresql://"):
            with sqlite3.connect(self.url) as db:
                return db.execute(sql).fetchall()

        async def fetch() -> list[tuple[Any, ...]]:
            connection = await asyncpg.connect(self.url, timeout=5)
            try:
                return [tuple(row) for row in await connection.fetch(sql)]
            finally:
                await connection.close()

        return run_async(fetch)

    def outbound(self) -> dict[str, list[str]]:
        """Each phone's outbound statuses."""
        found: dict[str, list[str]] = {}
        for phone, status in self.rows(
            "SELECT phone, status FROM messages WHERE direction = 'out' ORDER BY id"
        ):
            found.setdefault(phone, []).append(status)
        return found

    def statuses(self) -> dict[str, int]:
        sql = "SELECT status, COUNT(*) FROM messages WHERE direction = 'out' GROUP BY status"
        return {status: int(n) for status, n in self.rows(sql)}


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, workdir: Path) -> Database:
    if request.param == "postgres":
        return Database(request.getfixturevalue("postgres_url"))
    return Database(str(workdir / "responder.db"))


@pytest.fixture
def env(workdir: Path, database: Database, massiva: tuple[FakeMassiva, str]) -> dict[str, str]:
    fake, url = massiva
    return {
        "RESPONDER_DATABASE": database.url,
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

    def start(name: str, **more: str) -> ServeProcess:
        folder = tmp_path / name
        folder.mkdir()
        server = ServeProcess(folder, env | more)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


def wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_a_killed_instance_loses_nothing_and_sends_nothing_twice(
    instances: Callable[..., ServeProcess],
    workdir: Path,
    database: Database,
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
    reached_gateway: list[Recorded] = []

    def deliver(index: int) -> None:
        """One webhook, as a load balancer sends it: alternately to each instance, and to the
        other one when the first cannot be reached."""
        targets = [first, second] if index % 2 == 0 else [second, first]
        for server in targets:
            if server is first and killed.is_set():
                continue
            url = f"{server.url}/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"
            try:
                response = loopback.get(url, params={"msg": "horario", "phone": PHONES[index]})
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                with lock:
                    acknowledged.add(PHONES[index])
                    if len(acknowledged) == WEBHOOKS // 2 and not killed.is_set():
                        first.process.send_signal(signal.SIGKILL)  # halfway
                        killed.set()
                        reached_gateway.extend(fake.requests)  # before the kill came
                return

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(deliver, range(WEBHOOKS)))
    first.process.wait(timeout=10)
    assert killed.is_set()
    assert acknowledged == set(PHONES)  # every webhook was answered OK by one instance
    accepted_before_release = len(fake.sent)
    assert accepted_before_release == 0  # the gateway held every send so far

    fake.release()
    # The dead instance's leased replies go out from the other one, within the lease time.
    assert wait(lambda: len(database.outbound()) == WEBHOOKS, timeout=40)
    assert wait(lambda: all(s == ["sent"] for s in database.outbound().values()), timeout=40), (
        sorted({tuple(s) for s in database.outbound().values()})
    )
    time.sleep(1.0)  # anything that would still go out twice has had time to
    sent = Counter(s.phone for s in fake.sent)
    assert set(sent) == set(PHONES)  # every customer answered
    # Twice only where the gateway already had the request when the kill came: the dead
    # instance's send still held by the gateway (released later, when the machine is too
    # busy to notice the closed connection first), then the lease ran out.
    had_it = {p for r in reached_gateway for p in r.params.get("telefonos", "").split(";")}
    twice = {phone for phone, n in sent.items() if n > 1}
    assert twice <= had_it and max(sent.values()) <= 2, sorted(twice - had_it)
    second.stop()


def test_an_overlapping_deploy_sends_nothing_twice(
    instances: Callable[..., ServeProcess], database: Database, massiva: tuple[FakeMassiva, str]
) -> None:
    """The new version starts on the same database while the old one still waits on the
    gateway for replies it is sending: neither start nor stop takes the other's sends."""
    fake, _ = massiva
    fake.hang_timeout = 60
    fake.fail_next("hang", times=1000)
    old = instances("old")
    phones = PHONES[:COUNT]
    for phone in phones:
        url = f"{old.url}/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"
        assert loopback.get(url, params={"msg": "horario", "phone": phone}).status_code == 200
    assert wait(lambda: any(r.path.endswith("SendSms") for r in fake.requests), timeout=15)
    new = instances("new")
    time.sleep(1.5)  # the new instance's start-up and first outbox passes
    fake.fail_next("hang", times=0)
    fake.release()
    assert wait(lambda: database.statuses() == {"sent": COUNT}, timeout=15), database.statuses()
    old.stop()
    time.sleep(1.0)  # whatever the new instance would still do, it has had time to
    assert sorted(s.phone for s in fake.sent) == sorted(phones)  # each reply exactly once
    new.stop()


SHARED_RULES = """
settings:
  timezone: America/Caracas
  country: VE
  reply_limit: {count: 2, per: 1h}
  dedupe_window: 60s
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos de 8:00 a 17:00."
  - name: otro
    fallback: true
    reply: "Escriba HORARIO."
"""


def test_dedupe_reply_limit_and_rules_hold_across_instances(
    instances: Callable[..., ServeProcess],
    workdir: Path,
    tmp_path: Path,
    massiva: tuple[FakeMassiva, str],
) -> None:
    fake, _ = massiva
    (workdir / "rules.yaml").write_text(SHARED_RULES, encoding="utf-8")
    # Two machines: each instance has its own copy of the files; they share the database.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(workdir / "rules.yaml", elsewhere / "rules.yaml")
    shutil.copytree(workdir / "templates", elsewhere / "templates")
    first = instances("first")
    second = instances(
        "second",
        RESPONDER_RULES=str(elsewhere / "rules.yaml"),
        RESPONDER_TEMPLATES=str(elsewhere / "templates"),
    )

    def inbound(server: ServeProcess, phone: str, text: str) -> None:
        url = f"{server.url}/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"
        assert loopback.get(url, params={"msg": text, "phone": phone}).status_code == 200

    def sent_to(phone: str) -> list[str]:
        return [s.text for s in fake.sent if s.phone == phone]

    # The gateway's retry of one webhook reaches the other instance: answered once.
    inbound(first, PHONES[0], "horario")
    inbound(second, PHONES[0], "horario")
    assert wait(lambda: len(sent_to(PHONES[0])) >= 1, timeout=10)
    # Two answers an hour for one number, whichever instance gives them.
    inbound(second, PHONES[0], "horario hoy")
    inbound(first, PHONES[0], "horario manana")
    assert wait(lambda: len(sent_to(PHONES[0])) >= 2, timeout=10)
    time.sleep(1.0)  # a third answer, or a second to the retry, would have gone by now
    assert sent_to(PHONES[0]) == ["Abrimos de 8:00 a 17:00."] * 2

    # A rules edit on the first machine is answered by the second within 2 s.
    rules = workdir / "rules.yaml"
    rules.write_text(SHARED_RULES.replace("8:00 a 17:00", "9:00 a 18:00"), encoding="utf-8")
    edited = time.monotonic()
    answer = ""
    while time.monotonic() - edited < 2.0 and answer != "Abrimos de 9:00 a 18:00.":
        phone = PHONES[1 + len(fake.sent)]
        before = len(fake.sent)
        inbound(second, phone, "horario")
        assert wait(lambda n=before: len(fake.sent) > n, timeout=10)  # type: ignore[misc]
        answer = sent_to(phone)[0]
    assert answer == "Abrimos de 9:00 a 18:00.", f"still {answer!r} 2 s after the edit"
