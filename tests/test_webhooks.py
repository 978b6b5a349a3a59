"""Massiva webhooks over real HTTP: tokens, fields, encodings, status reports, limits."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import httpx
import pytest

from responder.store.sqlite import SQLiteStore
from tests import loopback
from tests.conftest import RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva

PHONE = "584121234567"


def rows(app: RunningApp, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(app.service.settings.database) as db:
        return db.execute(sql).fetchall()


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("suffix", ["/inbound", ""], ids=["inbound-url", "shared-url"])
def test_inbound_is_stored_and_answered(app: RunningApp, method: str, suffix: str) -> None:
    fields = {"msg": "horario", "phone": PHONE, "linea": "584141234567", "email": "a@b.c"}
    if method == "GET":
        response = loopback.get(app.webhook(suffix), params=fields)
    else:
        response = loopback.post(app.webhook(suffix), data=fields)
    assert (response.status_code, response.text) == (200, "OK")
    messages = app.messages(PHONE)
    assert messages[0]["direction"] == "in"
    assert messages[0]["text"] == "horario"
    assert messages[0]["line"] == "584141234567"
    assert messages[1]["direction"] == "out"
    assert messages[1]["rule"] == "horario"


@pytest.mark.parametrize(
    ("raw_query", "expected_text"),
    [
        ("msg=Ma%F1ana&phone=584121234567", "Mañana"),  # Latin-1
        ("msg=Ma%C3%B1ana&phone=584121234567", "Mañana"),  # UTF-8
        ("msg=%BFA+qu%E9+hora%3F&phone=584121234567", "¿A qué hora?"),
        ("msg=caf%E9+%93bueno%94&phone=584121234567", "café “bueno”"),  # Windows-1252
        ("msg=&phone=584121234567", ""),  # empty text is still a message
    ],
    ids=["latin1", "utf8", "latin1-question", "cp1252-quotes", "empty"],
)
def test_text_decoding(app: RunningApp, raw_query: str, expected_text: str) -> None:
    response = loopback.get(f"{app.webhook()}?{raw_query}")
    assert response.status_code == 200
    assert app.messages(PHONE)[0]["text"] == expected_text


@pytest.mark.parametrize(
    "phone",
    ["+584121234567", " 584121234567", "04121234567", "+58 412-123.45.67", "4121234567"],
)
def test_phone_forms_are_normalised(app: RunningApp, phone: str) -> None:
    response = loopback.get(app.webhook(), params={"msg": "hola", "phone": phone})
    assert response.status_code == 200
    assert app.messages(PHONE)[0]["phone"] == PHONE


def test_plus_in_raw_query_is_tolerated(app: RunningApp) -> None:
    # An unencoded `+` arrives as a space after form decoding.
    response = loopback.get(f"{app.webhook()}?msg=hola&phone=+584121234567")
    assert response.status_code == 200
    assert len(app.messages(PHONE)) == 2


@pytest.mark.parametrize("token", ["wrong-token-0123456789abc", "se%C3%B1al"])
def test_wrong_token_is_404_and_stores_nothing(app: RunningApp, token: str) -> None:
    url = app.webhook(token=token)
    response = loopback.get(url, params={"msg": "horario", "phone": PHONE})
    assert response.status_code == 404
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(0,)]
    assert rows(app, "SELECT COUNT(*) FROM rejected_webhooks") == [(0,)]


@pytest.mark.parametrize(
    ("suffix", "params", "reason"),
    [
        ("/inbound", {"msg": "hola"}, "missing field(s): phone"),
        ("/inbound", {"phone": PHONE}, "missing field(s): msg"),
        ("/inbound", {"msg": "hola", "phone": "abc"}, "phone:"),
        ("/status", {"estatus": "1"}, "missing field(s): id"),
        ("/status", {"id": "5"}, "missing field(s): estatus"),
        ("/status", {"id": "5", "estatus": "7"}, "estatus must be 1"),
        ("", {"linea": "584141234567"}, "missing field(s): phone, msg"),
    ],
)
def test_bad_requests_are_400_and_kept_raw(
    app: RunningApp, suffix: str, params: dict[str, str], reason: str
) -> None:
    response = loopback.get(app.webhook(suffix), params=params)
    assert response.status_code == 400
    assert reason in response.text
    assert "\n" not in response.text.strip()
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(0,)]
    kept = rows(app, "SELECT method, path, query, reason FROM rejected_webhooks")
    assert len(kept) == 1
    method, path, query, stored_reason = kept[0]
    assert method == "GET"
    assert "{token}" in str(path) and "test-webhook-token" not in str(path)
    assert str(query) == httpx.QueryParams(params).__str__()
    assert reason in str(stored_reason)


def test_body_over_64_kib_is_413_and_changes_nothing(app: RunningApp) -> None:
    response = loopback.post(app.webhook(), data={"msg": "x" * 70_000, "phone": PHONE})
    assert response.status_code == 413
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(0,)]


@pytest.fixture
def massiva_app(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> RunningApp:
    fake, url = massiva
    return start_app(**massiva_env(url, fake))


def _sent_reply(app: RunningApp) -> dict[str, object]:
    loopback.get(app.webhook(), params={"msg": "horario", "phone": PHONE})
    return app.wait_for(PHONE, lambda m: m[-1]["status"] == "sent")[-1]


@pytest.mark.parametrize("suffix", ["/status", ""], ids=["status-url", "shared-url"])
@pytest.mark.parametrize(
    ("estatus", "detalle", "status", "error", "line"),
    [
        ("1", "+584142122268", "delivered", None, "+584142122268"),
        ("2", "ERROR EN ENVIO", "failed", "ERROR EN ENVIO", None),
    ],
    ids=["delivered", "failed"],
)
def test_status_report_updates_the_message(
    massiva_app: RunningApp,
    suffix: str,
    estatus: str,
    detalle: str,
    status: str,
    error: str | None,
    line: str | None,
) -> None:
    app = massiva_app
    reply = _sent_reply(app)
    assert reply["provider"] == "massiva"
    params = {
        "id": str(reply["provider_id"]),
        "estatus": estatus,
        "fecha_actualizacion": "2026-11-23 10:00:05",
        "usuario": "demo@example.com",
        "detalle": detalle,
    }
    response = loopback.get(app.webhook(suffix), params=params)
    assert (response.status_code, response.text) == (200, "OK")
    updated = app.messages(PHONE)[-1]
    assert (updated["status"], updated["error"], updated["line"]) == (status, error, line)


def test_status_for_unknown_id_is_acknowledged_and_kept(app: RunningApp) -> None:
    response = loopback.get(app.webhook("/status"), params={"id": "999999", "estatus": "1"})
    assert (response.status_code, response.text) == (200, "OK")
    assert rows(app, "SELECT COUNT(*) FROM rejected_webhooks") == [(0,)]
    # It may have overtaken the send's answer: kept until that records the id (48 h at most).
    assert rows(app, "SELECT provider_id, status FROM early_reports") == [("999999", "delivered")]


def test_multipart_and_json_bodies(app: RunningApp, tmp_path: Path) -> None:
    multipart = loopback.post(
        app.webhook(), data={"msg": "horario", "phone": PHONE}, files={"x": ("a", b"b")}
    )
    as_json = loopback.post(app.webhook(), json={"msg": "precio cafe", "phone": PHONE})
    assert multipart.status_code == as_json.status_code == 200
    texts = [m["text"] for m in app.messages(PHONE) if m["direction"] == "in"]
    assert texts == ["horario", "precio cafe"]


def test_healthz(app: RunningApp) -> None:
    response = loopback.get(f"{app.url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "low_credit": [], "spooled": 0}


def test_provider_retries_are_stored_and_answered_once(app: RunningApp) -> None:
    params = {"msg": "horario", "phone": PHONE, "linea": "584141234567"}
    for _ in range(3):
        response = loopback.get(app.webhook(), params=params)
        assert (response.status_code, response.text) == (200, "OK")
    assert [m["direction"] for m in app.messages(PHONE)] == ["in", "out"]
    # Another line, or another text, is another message.
    loopback.get(app.webhook(), params={**params, "linea": "584149999999"})
    loopback.get(app.webhook(), params={**params, "msg": "horario?"})
    assert [m["direction"] for m in app.messages(PHONE)] == ["in", "out"] * 3
    # After the window (10 s by default) the same word is answered again.
    app.service.clock.advance(11)  # type: ignore[attr-defined]
    loopback.get(app.webhook(), params=params)
    assert [m["direction"] for m in app.messages(PHONE)] == ["in", "out"] * 4


def test_a_write_that_cannot_be_committed_is_spooled_and_stored_once_it_can(
    app: RunningApp,
) -> None:
    store = cast(SQLiteStore, app.service.store)
    assert app.service.loop is not None
    # A real failure inside the writer's transaction (as a full disk would cause).
    sql = (
        "CREATE TEMP TRIGGER fail AFTER INSERT ON messages "
        "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
    )
    app.service.loop.call_soon_threadsafe(store.db.execute, sql)
    response = loopback.get(app.webhook(), params={"msg": "horario", "phone": PHONE})
    assert (response.status_code, response.text) == (200, "OK")  # kept in the spool on disk
    assert app.service.spool.pending == 1
    app.service.loop.call_soon_threadsafe(store.db.execute, "DROP TRIGGER fail")
    response = loopback.get(app.webhook(), params={"msg": "hola", "phone": PHONE})
    assert response.status_code == 200  # behind the spooled one, whose answer comes first
    deadline = time.monotonic() + 10
    while app.service.spool.pending:  # stored by the replayer within its next try
        assert time.monotonic() < deadline, "the spool was not stored within 10 s"
        time.sleep(0.02)
    messages = app.messages(PHONE)
    assert len(messages) == 4
    assert [(m["direction"], m["text"]) for m in messages][::2] == [
        ("in", "horario"),
        ("in", "hola"),
    ]


def test_json_with_a_lone_surrogate_is_stored_not_a_500(app: RunningApp) -> None:
    body = b'{"phone": "584121234567", "msg": "hola \\ud800"}'
    response = loopback.post(
        app.webhook(), content=body, headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.text) == (200, "OK")
    assert app.messages(PHONE)[0]["text"] == "hola \ufffd"
