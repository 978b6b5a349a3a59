"""The database unreachable (DESIGN §9): webhooks are kept in the spool on disk and answered
`OK`, stored in order when the database takes writes again, across a restart too; /healthz
says 503 meanwhile; the workers wait without filling the log. Real SQLite made unwritable on
the store's own writer connection (`PRAGMA query_only`), real HTTP, real files."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from responder.app import create_app
from responder.config import Settings
from tests import loopback
from tests.conftest import Clock, RunningApp, massiva_env, massms_env
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS
from tests.fakes.server import FakeServer
from tests.test_bad_values import on_writer

ANA, BETO = "584121111111", "584142222222"
HANDOFF = "Un asesor le escribira pronto."  # smart encoding keeps the reply in GSM-7
HOURS = "Abrimos de lunes a viernes, 8:00 a 17:00."


def spooled(workdir: Path) -> list[tuple[str, str]]:
    """(phone, text) of every record in the spool files, in the order written."""
    found = []
    for segment in sorted((workdir / "responder.db-spool").glob("*/*.jsonl")):
        for line in segment.read_bytes().splitlines():
            record = json.loads(line)
            found.append((record["phone"], record["text"]))
    return found


def count(workdir: Path, sql: str) -> int:
    with sqlite3.connect(workdir / "responder.db") as db:
        value: int = db.execute(sql).fetchone()[0]
        return value


def health(app: RunningApp) -> tuple[int, dict[str, Any]]:
    response = loopback.get(f"{app.url}/healthz", timeout=10)
    body: dict[str, Any] = response.json()
    return response.status_code, body


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.02)


def quick(app: RunningApp, pause: float = 0.1) -> None:
    """Short pauses between the replayer's tries, so a test does not wait seconds for them."""
    app.service.replayer.outage.first = app.service.replayer.outage.cap = pause


def inbound(app: RunningApp, phone: str, text: str) -> httpx.Response:
    return loopback.get(app.webhook(), params={"msg": text, "phone": phone}, timeout=10)


def conversation(app: RunningApp, phone: str) -> list[tuple[str, str]]:
    return [(m["direction"], m["text"]) for m in app.messages(phone)]


@pytest.fixture
def gateway(massiva: tuple[FakeMassiva, str]) -> tuple[FakeMassiva, dict[str, str]]:
    fake, url = massiva
    return fake, massiva_env(url, fake)


def test_webhooks_are_spooled_while_the_database_cannot_write_and_stored_in_order_after(
    start_app: Callable[..., RunningApp],
    workdir: Path,
    clock: Clock,
    gateway: tuple[FakeMassiva, dict[str, str]],
) -> None:
    fake, env = gateway
    app = start_app(**env)
    quick(app)
    on_writer(app, "PRAGMA query_only = 1")
    sent = [
        (ANA, "asesor"),  # hands Ana to a person: her later messages get no bot reply
        (BETO, "horario"),
        (ANA, "horario"),
        (BETO, "precio pan"),
        (ANA, "precio pan"),
    ]
    for phone, text in sent:
        response = inbound(app, phone, text)
        assert (response.status_code, response.text) == (200, "OK")
        clock.advance(1)
    assert spooled(workdir) == sent  # fsynced before each OK
    status, body = health(app)
    assert (status, body["spooled"]) == (503, 5)
    assert body["status"] == "database cannot write"
    assert count(workdir, "SELECT COUNT(*) FROM messages") == 0

    on_writer(app, "PRAGMA query_only = 0")
    eventually(lambda: health(app) == (200, {"status": "ok", "low_credit": [], "spooled": 0}))
    assert conversation(app, ANA) == [
        ("in", "asesor"),
        ("out", HANDOFF),
        ("in", "horario"),
        ("in", "precio pan"),
    ]
    assert conversation(app, BETO) == [
        ("in", "horario"),
        ("out", HOURS),
        ("in", "precio pan"),
        ("out", "El precio de pan es 5 USD."),
    ]
    eventually(lambda: len(fake.sent) == 3)
    time.sleep(0.3)  # anything sent twice would have gone by now
    assert sorted((s.phone, s.text) for s in fake.sent) == sorted(
        [(ANA, HANDOFF), (BETO, HOURS), (BETO, "El precio de pan es 5 USD.")]
    )
    assert spooled(workdir) == []  # replayed segments are deleted


def test_a_newer_webhook_waits_behind_the_spooled_ones_of_its_phone(
    start_app: Callable[..., RunningApp], workdir: Path, clock: Clock
) -> None:
    app = start_app()
    quick(app, pause=2.0)  # the database comes back during the replayer's pause
    on_writer(app, "PRAGMA query_only = 1")
    assert inbound(app, ANA, "asesor").status_code == 200
    eventually(lambda: app.service.replayer.outage.failures >= 1)
    on_writer(app, "PRAGMA query_only = 0")
    clock.advance(1)
    # The database could take it now, but Ana's older message is not stored yet: deciding on
    # this one first would answer it with the bot although she asked for a person.
    assert inbound(app, ANA, "horario").status_code == 200
    assert spooled(workdir) == [(ANA, "asesor"), (ANA, "horario")]
    eventually(lambda: app.service.spool.pending == 0)
    assert conversation(app, ANA) == [("in", "asesor"), ("out", HANDOFF), ("in", "horario")]


def test_delivery_reports_are_spooled_too(
    start_app: Callable[..., RunningApp], gateway: tuple[FakeMassiva, dict[str, str]]
) -> None:
    fake, env = gateway
    app = start_app(**env)
    quick(app)
    assert inbound(app, BETO, "horario").status_code == 200
    eventually(lambda: len(fake.sent) == 1 and app.messages(BETO)[-1]["status"] == "sent")
    on_writer(app, "PRAGMA query_only = 1")
    report = loopback.get(app.webhook("/status"), params={"id": fake.sent[0].id, "estatus": "1"})
    assert (report.status_code, report.text) == (200, "OK")
    assert app.service.spool.pending == 1
    on_writer(app, "PRAGMA query_only = 0")
    eventually(lambda: app.messages(BETO)[-1]["status"] == "delivered")


def test_when_the_spool_cannot_keep_it_either_the_webhook_is_503(
    start_app: Callable[..., RunningApp], workdir: Path
) -> None:
    app = start_app()
    app.service.spool.own.max_bytes = 1  # as a spool at its bound, or on a disk that is full
    on_writer(app, "PRAGMA query_only = 1")
    response = inbound(app, ANA, "horario")
    assert (response.status_code, response.text) == (503, "temporarily unable to store; retry")
    assert spooled(workdir) == [] and app.service.spool.pending == 0
    on_writer(app, "PRAGMA query_only = 0")
    assert inbound(app, ANA, "horario").status_code == 200
    assert conversation(app, ANA) == [("in", "horario"), ("out", HOURS)]


class Instance:
    """An app started and stopped within a test (start_app's stop only at the test's end)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        app = create_app(settings, clock=clock)
        self.server = FakeServer(app, lifespan="on").__enter__()
        self.app = RunningApp(self.server.url, app.state.service)

    def stop(self) -> None:
        self.server.__exit__(None, None, None)


@pytest.fixture
def instances(
    make_settings: Callable[..., Settings], clock: Clock
) -> Iterator[Callable[..., Instance]]:
    started: list[Instance] = []

    def start(**env: str) -> Instance:
        started.append(Instance(make_settings(**env), clock))
        return started[-1]

    yield start
    for instance in started:
        instance.stop()


def test_a_restart_stores_what_the_spool_kept(
    instances: Callable[..., Instance], workdir: Path, clock: Clock
) -> None:
    first = instances()
    on_writer(first.app, "PRAGMA query_only = 1")
    for phone, text in [(ANA, "asesor"), (BETO, "horario"), (ANA, "horario")]:
        assert inbound(first.app, phone, text).status_code == 200
        clock.advance(1)
    first.stop()  # stopped while the database could not write: the records stay on disk
    assert len(spooled(workdir)) == 3
    assert count(workdir, "SELECT COUNT(*) FROM messages") == 0

    second = instances()
    eventually(lambda: second.app.service.spool.pending == 0)
    assert conversation(second.app, ANA) == [("in", "asesor"), ("out", HANDOFF), ("in", "horario")]
    assert conversation(second.app, BETO) == [("in", "horario"), ("out", HOURS)]
    assert spooled(workdir) == []


def test_records_replayed_again_after_a_crash_are_not_stored_twice(
    instances: Callable[..., Instance], workdir: Path, clock: Clock
) -> None:
    # Without a dedupe window only the replay's own check recognises a record already stored.
    rules = workdir / "rules.yaml"
    rules.write_text(
        rules.read_text(encoding="utf-8").replace(
            "  country: VE\n", "  country: VE\n  dedupe_window: 0\n"
        ),
        encoding="utf-8",
    )
    first = instances()
    on_writer(first.app, "PRAGMA query_only = 1")
    for phone in (ANA, BETO):
        assert inbound(first.app, phone, "horario").status_code == 200
    slot = workdir / "responder.db-spool" / "0"
    before = {path: path.read_bytes() for path in slot.iterdir() if path.name != "lock"}
    quick(first.app)
    on_writer(first.app, "PRAGMA query_only = 0")
    eventually(lambda: first.app.service.spool.pending == 0)
    first.stop()
    assert count(workdir, "SELECT COUNT(*) FROM messages") == 4
    assert spooled(workdir) == []
    # As if the process had died after the commits and before moving the position past them.
    for path, data in before.items():
        path.write_bytes(data)
    assert len(spooled(workdir)) == 2

    second = instances()
    eventually(lambda: second.app.service.spool.pending == 0)
    assert conversation(second.app, ANA) == [("in", "horario"), ("out", HOURS)]
    assert conversation(second.app, BETO) == [("in", "horario"), ("out", HOURS)]
    # A message sent again by the provider (a new moment) is still a new message here.
    clock.advance(1)
    assert inbound(second.app, ANA, "horario").status_code == 200
    assert len(conversation(second.app, ANA)) == 4


def record(phone: str, text: str, second: int) -> str:
    received_at = f"2026-11-23T14:00:{second:02d}+00:00"
    fields = {"v": 1, "kind": "inbound", "phone": phone, "text": text}
    return json.dumps({**fields, "received_at": received_at, "line": None, "provider": "massiva"})


def test_a_record_that_cannot_be_stored_is_set_aside_and_the_rest_go_on(
    instances: Callable[..., Instance], workdir: Path
) -> None:
    slot = workdir / "responder.db-spool" / "0"
    slot.mkdir(parents=True)
    lines = [
        record(ANA, "horario", 0),
        record(BETO, "\udc80", 1),  # a text SQLite cannot encode: no retry can ever store it
        "{damaged",
        record(BETO, "horario", 2),
    ]
    (slot / "0000000001.jsonl").write_text("".join(line + "\n" for line in lines))
    app = instances().app
    quick(app)
    eventually(lambda: app.service.spool.pending == 0, timeout=20)
    assert conversation(app, ANA) == [("in", "horario"), ("out", HOURS)]
    assert conversation(app, BETO) == [("in", "horario"), ("out", HOURS)]
    with sqlite3.connect(workdir / "responder.db") as db:
        kept = db.execute("SELECT method, body, reason FROM rejected_webhooks").fetchall()
    reasons = {body.decode(): (method, reason) for method, body, reason in kept}
    assert len(kept) == 2  # each set aside once, though its chunk was tried five times
    assert reasons[lines[1]][0] == reasons[lines[2]][0] == "SPOOL"
    assert reasons[lines[1]][1].startswith("could not be stored from the spool: StoreUnavailable")
    assert reasons[lines[2]][1].startswith("unreadable spool record: ")


def test_the_workers_wait_for_the_database_and_say_so_once(
    start_app: Callable[..., RunningApp],
    massms: tuple[FakeMasSMS, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = massms
    app = start_app(**massms_env(url, fake))
    app.service.poller.interval = 0.05
    with caplog.at_level(logging.INFO, logger="responder"):
        on_writer(app, "PRAGMA query_only = 1")
        time.sleep(3)  # a few passes of the outbox (every second) and the poller
        on_writer(app, "PRAGMA query_only = 0")
        inbound(app, ANA, "horario")  # wakes the outbox at once
        eventually(lambda: caplog.text.count("works again") >= 2)
    # One line each when writes start failing, one when they work again: not one per pass.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == len(set(warnings)), caplog.text
    failing = sorted(r.name for r in caplog.records if "failed (" in r.getMessage())
    assert {"responder.outbox", "responder.poller"} <= set(failing)
    back = sorted(r.name for r in caplog.records if "works again" in r.getMessage())
    assert {"responder.outbox", "responder.poller"} <= set(back)
