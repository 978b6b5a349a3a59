"""Failures handled where they are seen, over real HTTP: the "falló" badge in the inbox, the
reason in plain Spanish with the raw error on hover, Reintentar and Cancelar in the thread and
the API (`POST /api/messages/{id}/retry|cancel`), on the audit trail."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from contextlib import closing
from typing import Any

import pytest

from tests import loopback
from tests.conftest import RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.test_admin import csrf_of, inbound, sign_in
from tests.test_team import add_person, sign_in_as

PHONE = "584121234567"
OTHER = "584241234567"


@pytest.fixture
def app(start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]) -> RunningApp:
    fake, url = massiva
    return start_app(**massiva_env(url, fake))


@pytest.fixture
def fake(massiva: tuple[FakeMassiva, str]) -> FakeMassiva:
    return massiva[0]


def reply(app: RunningApp, text: str, phone: str = PHONE, **extra: Any) -> dict[str, Any]:
    with app.api() as api:
        response = api.post(f"/api/conversations/{phone}/messages", json={"text": text, **extra})
    assert response.status_code == 202, response.text
    message: dict[str, Any] = response.json()["message"]
    return message


def status_of(app: RunningApp, message_id: int, phone: str = PHONE) -> dict[str, Any]:
    return next(m for m in app.messages(phone) if m["id"] == message_id)


def failed_reply(app: RunningApp, fake: FakeMassiva, text: str = "le escribo") -> dict[str, Any]:
    """An agent's reply that fails: Massiva says the user has no SMS left (status -6)."""
    settled = ("sent", "delivered", "failed")
    app.wait_for(
        PHONE, lambda ms: all(m["status"] in settled for m in ms if m["direction"] == "out")
    )
    fake.credits = 0
    sent = reply(app, text)
    app.wait_for(
        PHONE, lambda ms: any(m["id"] == sent["id"] and m["status"] == "failed" for m in ms)
    )
    return status_of(app, sent["id"])


def badges(page: str, phone: str) -> str:
    """The badges of `phone`'s row in the inbox."""
    row = re.search(rf'href="/admin/conversations/{phone}".*?</a>', page, re.S)
    assert row, f"{phone} is not in the inbox"
    return row.group(0)


def item(thread: str, message_id: int) -> str:
    """The message's <li> in the thread."""
    found = re.search(rf'<li class="msg [^"]*" id="m{message_id}">.*?</li>', thread, re.S)
    assert found, f"message {message_id} is not in the thread"
    return found.group(0)


def test_a_failed_reply_is_explained_flagged_and_retried(
    app: RunningApp, fake: FakeMassiva
) -> None:
    inbound(app, "hola")
    inbound(app, "hola", OTHER)
    for phone in (PHONE, OTHER):  # the bot's answers went out before the credits ran out
        app.wait_for(phone, lambda ms: ms[-1]["status"] == "sent")
    failed = failed_reply(app, fake)
    assert failed["error"].startswith("massiva: no credits: the user has no SMS left (status -6")
    with closing(sign_in(app)) as staff:
        inbox = staff.get("/admin").text
        assert 'class="badge failed"' in badges(inbox, PHONE)
        assert 'class="badge failed"' not in badges(inbox, OTHER)
        thread = staff.get(f"/admin/conversations/{PHONE}").text
        reason = re.search(
            rf'<span class="reason" id="reason-{failed["id"]}" title="([^"]+)">([^<]+)<', thread
        )
        assert reason, "no reason shown for the failed message"
        assert html.unescape(reason.group(1)) == failed["error"]  # the raw error, on hover
        assert reason.group(2) == "Sin saldo en Massiva (el usuario no tiene SMS)"
        assert f'id="retry-{failed["id"]}"' in thread
        assert 'title="Falló: no salió; puede reintentarlo"' in item(thread, failed["id"])
        assert "¿Enviado o entregado?" in thread

        fake.credits = 100
        retried = staff.post(
            f"/admin/messages/{failed['id']}/retry", data={"csrf": csrf_of(thread)}
        )
        assert retried.status_code == 303
        assert retried.headers["location"] == f"/admin/conversations/{PHONE}?ok=retried"
        app.wait_for(PHONE, lambda ms: status_of(app, failed["id"])["status"] == "sent")
        assert fake.sent[-1].text == "le escribo"
        thread = staff.get(f"/admin/conversations/{PHONE}?ok=retried").text
        assert "Mensaje en cola otra vez" in thread
        sent = 'title="Enviado: el proveedor lo aceptó; todavía no confirma que llegó'
        assert sent in item(thread, failed["id"])
        assert f'id="retry-{failed["id"]}"' not in thread
        assert 'class="badge failed"' not in badges(staff.get("/admin").text, PHONE)

        # A second retry of a message now sent is refused, and says why.
        again = staff.post(f"/admin/messages/{failed['id']}/retry", data={"csrf": csrf_of(thread)})
        assert again.status_code == 409
        assert "Solo se reintenta un mensaje que falló; este ya está «enviado»" in again.text
    with app.api() as api:
        detail = api.get(f"/api/messages/{failed['id']}").json()
        events = api.get("/api/audit").json()["events"]
    outcomes = [(a["outcome"], a["error"]) for a in detail["attempts"]]
    assert outcomes[1] == ("requeued", "retried by admin")
    assert [o for o, _ in outcomes] == ["failed", "requeued", "sent"]
    assert detail["message"]["attempts"] == 2
    retry_events = [e for e in events if e["action"] == "message_retried"]
    assert [(e["actor"], e["subject"], e["detail"]) for e in retry_events] == [
        ("admin", PHONE, {"message": failed["id"]})
    ]


def test_the_api_retries_and_cancels(app: RunningApp, fake: FakeMassiva) -> None:
    inbound(app, "hola")
    failed = failed_reply(app, fake)
    fake.credits = 100
    later = reply(app, "mañana temprano", send_at="2026-11-24T09:00:00")
    assert later["status"] == "scheduled"
    with app.api() as api:
        # Only what is still waiting here is cancelled; only a failure is retried.
        assert api.post(f"/api/messages/{failed['id']}/cancel").status_code == 409
        refused = api.post(f"/api/messages/{later['id']}/retry")
        assert refused.status_code == 409
        assert refused.json() == {
            "error": "only a failed message is retried; this one is scheduled"
        }
        cancelled = api.post(f"/api/messages/{later['id']}/cancel")
        assert cancelled.status_code == 200
        body = cancelled.json()["message"]
        assert (body["status"], body["error"]) == ("failed", "cancelled by admin")
        assert api.post(f"/api/messages/{later['id']}/cancel").status_code == 409
        retried = api.post(f"/api/messages/{failed['id']}/retry")
        assert retried.status_code == 200
        assert retried.json()["message"]["status"] == "queued"
        for path in ("/api/messages/999999/retry", "/api/messages/abc/cancel"):
            assert api.post(path).status_code == 404
        inbound_id = app.messages(PHONE)[0]["id"]
        assert api.post(f"/api/messages/{inbound_id}/retry").status_code == 404
    app.wait_for(PHONE, lambda ms: status_of(app, failed["id"])["status"] == "sent")
    assert "mañana temprano" not in [s.text for s in fake.sent]  # the cancelled one never went
    with closing(sign_in(app)) as staff:
        thread = staff.get(f"/admin/conversations/{PHONE}").text
        assert "Cancelado por admin" in thread
        # A cancelled message is not a failure to flag.
        assert 'class="badge failed"' not in badges(staff.get("/admin").text, PHONE)


def test_cancel_from_the_thread(app: RunningApp, fake: FakeMassiva) -> None:
    inbound(app, "hola")
    later = reply(app, "la semana que viene", send_at="2026-11-30T09:00:00")
    with closing(sign_in(app)) as staff:
        thread = staff.get(f"/admin/conversations/{PHONE}").text
        assert f'id="cancel-{later["id"]}"' in thread
        done = staff.post(f"/admin/messages/{later['id']}/cancel", data={"csrf": csrf_of(thread)})
        assert done.status_code == 303
        thread = staff.get(done.headers["location"]).text
        assert "Mensaje cancelado: no se enviará." in thread
        assert f'id="cancel-{later["id"]}"' not in thread
        assert f'id="retry-{later["id"]}"' in thread  # it may still be sent after all
        forged = staff.post(f"/admin/messages/{later['id']}/retry", data={"csrf": "nope"})
        assert forged.status_code == 403
    assert status_of(app, later["id"])["status"] == "failed"


def test_a_retry_to_a_number_that_opted_out_is_refused(app: RunningApp, fake: FakeMassiva) -> None:
    inbound(app, "hola")
    failed = failed_reply(app, fake)
    fake.credits = 100
    inbound(app, "BAJA")
    app.wait_for(PHONE, lambda ms: ms[-1]["rule"] == "opt_out" and ms[-1]["status"] == "sent")
    with app.api() as api:
        refused = api.post(f"/api/messages/{failed['id']}/retry")
    assert refused.status_code == 409
    assert "opted out" in refused.json()["error"]
    with closing(sign_in(app)) as staff:
        thread = staff.get(f"/admin/conversations/{PHONE}").text
        assert f'id="retry-{failed["id"]}"' not in thread
        forced = staff.post(f"/admin/messages/{failed['id']}/retry", data={"csrf": csrf_of(thread)})
        assert forced.status_code == 409
        assert "se dio de baja" in forced.text
    assert status_of(app, failed["id"])["status"] == "failed"


def test_agents_retry_and_cancel_too(app: RunningApp, fake: FakeMassiva) -> None:
    add_person(app, "bea", "agent", "clave-de-bea-2")
    inbound(app, "hola")
    failed = failed_reply(app, fake)
    fake.credits = 100
    with closing(sign_in_as(app, "bea", "clave-de-bea-2")) as bea:
        thread = bea.get(f"/admin/conversations/{PHONE}").text
        done = bea.post(f"/admin/messages/{failed['id']}/retry", data={"csrf": csrf_of(thread)})
        assert done.status_code == 303
    app.wait_for(PHONE, lambda ms: status_of(app, failed["id"])["status"] == "sent")
    with app.api() as api:
        attempts = api.get(f"/api/messages/{failed['id']}").json()["attempts"]
    assert ("requeued", "retried by bea") in [(a["outcome"], a["error"]) for a in attempts]


def test_strangers_cannot_retry(app: RunningApp) -> None:
    assert loopback.post(f"{app.url}/api/messages/1/retry").status_code == 401
    assert loopback.post(f"{app.url}/api/messages/1/cancel").status_code == 401
