"""Values that must not break the service for everyone: NaN and Infinity, dates off the
calendar, a database that cannot write, HEAD on a webhook, phone fields with letters."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import httpx
import pytest
from click.testing import CliRunner

from responder.cli import main
from responder.moments import BadMoment
from responder.store.sqlite import SQLiteStore
from responder.web.admin import STORE_UNAVAILABLE
from responder.web.sessions import TOUCH_EVERY
from tests import loopback
from tests.conftest import ADMIN_TOKEN, MONDAY_10AM, WEBHOOK_TOKEN, Clock, RunningApp

PHONE = "584121234567"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    app = start_app()
    response = loopback.get(app.webhook(), params={"msg": "hola", "phone": PHONE})
    assert response.status_code == 200  # a conversation to write to
    return app


def rows(app: RunningApp, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(app.service.settings.database) as db:
        return db.execute(sql).fetchall()


def call(app: RunningApp, method: str, path: str, body: bytes) -> httpx.Response:
    headers = {**AUTH, "Content-Type": "application/json"}
    return loopback.request(method, f"{app.url}{path}", content=body, headers=headers)


# -- NaN and Infinity -----------------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_in_contact_fields_are_400_and_not_stored(
    app: RunningApp, number: str
) -> None:
    body = f'{{"fields": {{"score": {number}, "nombre": "Ana"}}}}'.encode()
    response = call(app, "PATCH", f"/api/contacts/{PHONE}", body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(number)
    contact = loopback.get(f"{app.url}/api/contacts/{PHONE}", headers=AUTH)
    assert (contact.status_code, contact.json()["fields"]) == (200, {})
    listed = loopback.get(f"{app.url}/api/conversations", headers=AUTH)
    assert listed.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", f"/api/conversations/{PHONE}/messages", '{"text": "hola", "x": NaN}'),
        ("POST", f"/api/conversations/{PHONE}/mode", '{"mode": "human", "x": Infinity}'),
        ("POST", "/api/simulate", f'{{"phone": "{PHONE}", "text": "hola", "x": [-Infinity]}}'),
    ],
    ids=["send", "mode", "simulate"],
)
def test_every_json_endpoint_refuses_nan(
    app: RunningApp, method: str, path: str, body: str
) -> None:
    response = call(app, method, path, body.encode())
    assert response.status_code == 400
    assert "NaN, Infinity" in response.json()["error"]
    assert rows(app, "SELECT direction, origin FROM messages") == [
        ("in", "massiva"),
        ("out", "auto"),
    ]
    assert rows(app, "SELECT mode FROM contacts") == [("bot",)]


def test_a_json_webhook_with_nan_is_rejected_and_kept(app: RunningApp) -> None:
    body = f'{{"phone": "{PHONE}", "msg": "horario", "n": NaN}}'.encode()
    headers = {"Content-Type": "application/json"}
    response = loopback.post(app.webhook(), content=body, headers=headers)
    assert response.status_code == 400
    assert rows(app, "SELECT body FROM rejected_webhooks") == [(body,)]
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(2,)]


def test_a_nan_an_older_version_stored_reads_as_null(app: RunningApp) -> None:
    with sqlite3.connect(app.service.settings.database) as db:
        db.execute('UPDATE contacts SET fields = \'{"score": NaN, "n": Infinity}\'')
    contact = loopback.get(f"{app.url}/api/contacts/{PHONE}", headers=AUTH)
    assert (contact.status_code, contact.json()["fields"]) == (200, {"score": None, "n": None})
    assert loopback.get(f"{app.url}/api/conversations", headers=AUTH).status_code == 200


# -- dates off the calendar -----------------------------------------------------------------


@pytest.mark.parametrize(
    "send_at",
    [
        "9999-12-31T23:59",
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00+14:00",
        (MONDAY_10AM + timedelta(days=367)).isoformat(),
        (MONDAY_10AM - timedelta(days=367)).isoformat(),
    ],
    ids=["year-9999", "year-9999-offset", "year-1", "beyond-a-year", "a-year-ago"],
)
def test_send_at_beyond_a_year_is_400_and_nothing_is_queued(app: RunningApp, send_at: str) -> None:
    with app.api() as api:
        response = api.post(
            f"/api/conversations/{PHONE}/messages", json={"text": "luego", "send_at": send_at}
        )
    assert response.status_code == 400
    assert response.json()["error"].startswith("'send_at': ")
    assert "more than a year from now" in response.json()["error"]
    assert len(app.messages(PHONE)) == 2
    within = (MONDAY_10AM + timedelta(days=365)).isoformat()
    with app.api() as api:
        response = api.post(
            f"/api/conversations/{PHONE}/messages", json={"text": "luego", "send_at": within}
        )
    assert (response.status_code, response.json()["message"]["status"]) == (202, "scheduled")


def test_the_service_refuses_a_far_send_at_from_any_caller(app: RunningApp) -> None:
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert app.service.loop is not None
    future = asyncio.run_coroutine_threadsafe(
        app.service.send(PHONE, "luego", None, "agent", far), app.service.loop
    )
    with pytest.raises(BadMoment, match="more than a year from now"):
        future.result(timeout=5)
    assert len(app.messages(PHONE)) == 2


@pytest.mark.parametrize(
    ("command", "at"),
    [
        ("send", "9999-12-31 23:59"),
        ("send", "0001-01-01 00:00"),
        ("simulate", "9999-12-31 23:59"),
        ("simulate", "9999-12-31T23:59-12:00"),
    ],
)
def test_cli_refuses_dates_off_the_calendar(workdir: Path, command: str, at: str) -> None:
    env = {
        "RESPONDER_DATABASE": str(workdir / "cli.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }
    result = CliRunner().invoke(main, [command, "04121234567", "hola", "--at", at], env=env)
    assert result.exit_code == 2, result.output
    assert "--at" in result.output and "from now" in result.output
    assert "Traceback" not in result.output
    if (workdir / "cli.db").exists():
        with sqlite3.connect(workdir / "cli.db") as db:
            assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)


# -- a database that cannot write -----------------------------------------------------------


def on_writer(app: RunningApp, sql: str) -> None:
    """Runs `sql` on the store's writer connection, on its event loop."""
    loop = app.service.loop
    assert loop is not None

    async def run() -> None:
        cast(SQLiteStore, app.service.store).db.execute(sql)

    asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=5)


def fill_up(app: RunningApp) -> int:
    """Caps the database at its current size (real SQLite: writes then fail with SQLITE_FULL,
    as on a full disk) and sends webhooks until one cannot be stored (it is kept in the spool
    and still answered OK); returns how many were stored."""
    on_writer(app, "PRAGMA max_page_count = 1")  # SQLite keeps it at the current size
    for stored in range(500):
        params = {"msg": f"mensaje {stored} " + "x" * 200, "phone": f"58412{stored:07d}"}
        response = loopback.get(app.webhook(), params=params)
        assert (response.status_code, response.text) == (200, "OK")
        if app.service.spool.pending:
            return stored
    raise AssertionError("500 webhooks fit in a full database")


def healthy_again(app: RunningApp) -> None:
    """/healthz answers 200 once the spooled webhooks are being stored (the replayer's pause
    is shortened: how long it waits is not what these tests are about)."""
    app.service.replayer.outage.first = app.service.replayer.outage.cap = 0.05
    deadline = time.monotonic() + 10
    while loopback.get(f"{app.url}/healthz").status_code != 200:
        assert time.monotonic() < deadline, "not healthy again within 10 s"
        time.sleep(0.02)
    while app.service.spool.pending:
        assert time.monotonic() < deadline, "the spool was not stored within 10 s"
        time.sleep(0.02)


def sign_in(app: RunningApp) -> httpx.Client:
    client = loopback.Client(base_url=app.url, timeout=10)
    form = client.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    data = {"csrf": csrf.group(1), "name": "admin", "password": ADMIN_TOKEN}
    response = client.post("/admin/login", data=data)
    assert response.status_code == 303
    return client


def test_a_database_that_cannot_write_is_503_for_writes_and_webhooks_wait_in_the_spool(
    app: RunningApp, clock: Clock
) -> None:
    staff = sign_in(app)  # signed in while the database could still write
    page = staff.get(f"/admin/conversations/{PHONE}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    assert loopback.get(f"{app.url}/healthz").status_code == 200
    stored = fill_up(app)
    messages_before = rows(app, "SELECT COUNT(*) FROM messages")

    health = loopback.get(f"{app.url}/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "database cannot write"
    assert health.json()["error"].startswith("the database is full")

    with app.api() as api:
        sent = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "x" * 1500})
    assert sent.status_code == 503
    assert sent.json()["error"].startswith("the database cannot store anything right now")
    assert sent.headers["retry-after"] == "60"

    reply = staff.post(
        f"/admin/conversations/{PHONE}/reply", data={"csrf": csrf.group(1), "text": "y" * 1500}
    )
    assert reply.status_code == 503
    assert STORE_UNAVAILABLE in reply.text and "y" * 1500 in reply.text  # the draft is kept

    # Webhooks are kept on disk and acknowledged (tests/test_unreachable.py for the rest).
    inbound = loopback.get(app.webhook(), params={"msg": "z" * 1500, "phone": "584249999999"})
    assert (inbound.status_code, inbound.text) == (200, "OK")
    assert app.service.spool.pending == 2
    assert rows(app, "SELECT COUNT(*) FROM messages") == messages_before

    # Room again: healthy again, and writes go through.
    on_writer(app, "PRAGMA max_page_count = 1073741823")
    clock.advance(1)
    healthy_again(app)
    assert app.messages("584249999999")[0]["text"] == "z" * 1500
    assert stored > 0
    staff.close()


def test_a_read_only_database_is_503_until_a_write_succeeds(app: RunningApp, clock: Clock) -> None:
    staff = sign_in(app)
    # Real SQLite refusing every write (SQLITE_READONLY), as on a file system remounted
    # read-only: room is not the problem, so only the failed writes tell.
    on_writer(app, "PRAGMA query_only = 1")
    clock.advance(TOUCH_EVERY.total_seconds())  # the session's last use is due to be written
    page = staff.get(f"/admin/conversations/{PHONE}")
    assert page.status_code == 200  # reading still works
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    reply = staff.post(
        f"/admin/conversations/{PHONE}/reply", data={"csrf": csrf.group(1), "text": "¿sigue?"}
    )
    assert reply.status_code == 503
    assert STORE_UNAVAILABLE in reply.text and "¿sigue?" in reply.text
    with app.api() as api:
        sent = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "hola"})
    assert sent.status_code == 503
    inbound = loopback.get(app.webhook(), params={"msg": "horario", "phone": "584249999999"})
    assert (inbound.status_code, inbound.text) == (200, "OK")  # kept in the spool
    rejected = loopback.get(app.webhook(), params={"msg": "sin número"})  # even keeping it fails
    assert (rejected.status_code, rejected.text) == (503, "temporarily unable to store; retry")
    for _ in range(2):  # the probe write fails too: still 503 a second later
        health = loopback.get(f"{app.url}/healthz")
        assert health.status_code == 503
        assert health.json()["error"].startswith("the last write failed: ")
        assert health.json()["spooled"] == 1
        clock.advance(1)
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(2,)]
    on_writer(app, "PRAGMA query_only = 0")
    healthy_again(app)
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(4,)]  # the spooled one, answered
    assert rows(app, "SELECT COUNT(*) FROM rejected_webhooks") == [(0,)]
    staff.close()


# -- HEAD on a webhook ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/inbound", "/status", ""])
def test_head_on_a_webhook_has_no_effect(app: RunningApp, suffix: str) -> None:
    params = {"msg": "horario", "phone": "584249999999", "id": "1", "estatus": "1"}
    if suffix == "/status":
        params = {"id": "1", "estatus": "1"}
    response = loopback.head(app.webhook(suffix), params=params)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(2,)]
    assert rows(app, "SELECT COUNT(*) FROM early_reports") == [(0,)]
    assert rows(app, "SELECT COUNT(*) FROM rejected_webhooks") == [(0,)]
    wrong = loopback.head(app.webhook(suffix, token="wrong"), params=params)
    assert wrong.status_code == 404


# -- phone fields ---------------------------------------------------------------------------


@pytest.mark.parametrize("phone", ["584armed", "58412abc4567", "12", "+58 412 123 4567 ext 2"])
def test_a_phone_field_with_letters_or_too_few_digits_is_rejected(
    app: RunningApp, phone: str
) -> None:
    response = loopback.get(app.webhook(), params={"msg": "horario", "phone": phone})
    assert response.status_code == 400
    assert response.text.startswith("phone: ")
    [(reason, query)] = rows(app, "SELECT reason, query FROM rejected_webhooks")
    assert str(reason).startswith("phone: ") and "horario" in str(query)
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(2,)]  # nothing stored, no reply
    # Separators and short codes are still taken.
    tolerated = [("+58 (412) 123-45.67", PHONE), ("0412.123.45.67", PHONE), ("2020", "2020")]
    for typed, stored in tolerated:
        response = loopback.get(app.webhook(), params={"msg": typed, "phone": typed})
        assert (response.status_code, response.text) == (200, "OK")
        inbound = [m["text"] for m in app.messages(stored) if m["direction"] == "in"]
        assert inbound[-1] == typed
