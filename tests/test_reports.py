"""Delivery reports: the order statuses follow, and reports that overtake the send's answer."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from responder.store.reports import reported_status
from tests import loopback
from tests.conftest import RunningApp, massiva_env
from tests.fakes.massiva import DELIVERED_LINE, FAILED_DETAIL, FakeMassiva

PHONE = "584121234567"


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def stored_balances(app: RunningApp) -> list[tuple[object, ...]]:
    """The providers whose balance is stored, read from the file: asking the API would ask
    the gateway too, when the start-up check has not stored its answer yet."""
    with sqlite3.connect(app.service.settings.database) as db:
        return db.execute("SELECT provider FROM balances").fetchall()


def early_reports(path: str | Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT provider, provider_id, status, detail FROM early_reports ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize(
    ("current", "reported", "expected"),
    [
        ("sent", "delivered", "delivered"),
        ("sent", "failed", "failed"),
        ("failed", "delivered", "delivered"),  # the gateway retried and got it through
        ("failed", "failed", "failed"),  # a newer reason
        ("delivered", "failed", None),  # history only: no flapping
        ("delivered", "delivered", None),
    ],
)
def test_the_order_reports_follow(current: str, reported: str, expected: str | None) -> None:
    assert reported_status(current, reported) == expected


@pytest.mark.parametrize(
    ("estatus", "status", "error", "line"),
    [(1, "delivered", None, DELIVERED_LINE), (2, "failed", FAILED_DETAIL, None)],
    ids=["delivered", "failed"],
)
def test_a_report_that_overtakes_the_send_answer_is_applied_with_it(
    start_app: Callable[..., RunningApp],
    massiva: tuple[FakeMassiva, str],
    estatus: int,
    status: str,
    error: str | None,
    line: str | None,
) -> None:
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    wait_until(lambda: stored_balances(app) == [("massiva",)])  # the start-up check is done
    fake.fail_next("hang")  # the gateway takes the send, but its answer is late
    response = loopback.get(app.webhook(), params={"msg": "horario", "phone": PHONE})
    assert response.status_code == 200
    wait_until(lambda: len(fake.requests) > 1)
    assert fake.requests[-1].path == "/webservices/SendSms"
    # Meanwhile the SMS was delivered, and its report comes first.
    detail = DELIVERED_LINE if estatus == 1 else FAILED_DETAIL
    params = {"id": fake.next_id, "estatus": str(estatus), "detalle": detail}
    report = loopback.get(app.webhook("/status"), params=params)
    assert (report.status_code, report.text) == (200, "OK")
    assert early_reports(app.service.settings.database) == [
        ("massiva", fake.next_id, status, detail)
    ]
    fake.release()
    messages = app.wait_for(PHONE, lambda m: m[-1]["status"] not in ("sending", "queued"))
    reply = messages[-1]
    assert (reply["status"], reply["error"], reply["line"]) == (status, error, line)
    assert reply["provider_id"] == fake.sent[0].id
    assert early_reports(app.service.settings.database) == []


def test_a_failed_report_after_delivered_is_kept_as_history(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    loopback.get(app.webhook(), params={"msg": "horario", "phone": PHONE})
    reply = app.wait_for(PHONE, lambda m: m[-1]["status"] == "sent")[-1]
    for estatus, detalle in [("2", "SIN COBERTURA"), ("1", DELIVERED_LINE), ("2", "TARDE")]:
        params = {"id": str(reply["provider_id"]), "estatus": estatus, "detalle": detalle}
        response = loopback.get(app.webhook("/status"), params=params)
        assert (response.status_code, response.text) == (200, "OK")
    with app.api() as api:
        detail = api.get(f"/api/messages/{reply['id']}").json()
    message = detail["message"]
    assert (message["status"], message["error"], message["line"]) == (
        "delivered",
        None,
        DELIVERED_LINE,
    )
    assert [(a["outcome"], a["error"]) for a in detail["attempts"]] == [
        ("sent", None),
        ("report ignored", "failed reported after delivered: TARDE"),
    ]
