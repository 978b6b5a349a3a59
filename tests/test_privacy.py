"""Privacy over real HTTP (DESIGN §13): forgetting a person through the API and the admin
(owners only), a forgotten opted-out number still refused, and the retention sweep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN, TEST_RULES, Clock, RunningApp
from tests.test_admin import inbound, post
from tests.test_team import ANA_PASSWORD, PHONE, add_person, bearer, sign_in_as, token_of

LUIS = "584241234567"


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def audit_actions(app: RunningApp) -> list[str]:
    with app.api() as api:
        return [e["action"] for e in api.get("/api/audit").json()["events"]]


def test_an_owner_forgets_a_person_through_the_api(app: RunningApp) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    inbound(app, "hola")
    inbound(app, "horario", phone=LUIS)
    with bearer(app, token_of(app, "ana")) as ana:
        refused = ana.delete(f"/api/contacts/{PHONE}")
        assert refused.status_code == 403
    with app.api() as api:
        assert api.patch(f"/api/contacts/{PHONE}", json={"fields": {"nombre": "Ana"}}).is_success
        gone = api.delete(f"/api/contacts/{PHONE}")
        assert gone.status_code == 200, gone.text
        assert gone.json() == {"phone": PHONE, "messages": 2, "kept_opted_out": False}
        assert api.get(f"/api/contacts/{PHONE}").status_code == 404
        assert api.get(f"/api/conversations/{PHONE}/messages").status_code == 404
        assert api.delete(f"/api/contacts/{PHONE}").status_code == 404
        phones = [c["phone"] for c in api.get("/api/conversations").json()["conversations"]]
        assert phones == [LUIS]
    assert "contact_forgotten" in audit_actions(app)


def test_a_forgotten_number_that_had_opted_out_is_still_refused(app: RunningApp) -> None:
    inbound(app, "BAJA")
    with app.api() as api:
        gone = api.delete(f"/api/contacts/{PHONE}")
        assert gone.json()["kept_opted_out"] is True
        assert api.get(f"/api/contacts/{PHONE}").status_code == 404
        # The API writes only to conversations it has: none here, so nothing is queued.
        sent = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "oferta"})
        assert sent.status_code == 404
        assert api.get(f"/api/contacts/{PHONE}").status_code == 404
    # A new message from the number starts a conversation that is still opted out.
    inbound(app, "hola")
    with app.api() as api:
        assert api.get(f"/api/contacts/{PHONE}").json()["opted_out"] is True
        sent = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "oferta"})
        assert sent.status_code == 409 and "opted out" in sent.json()["error"]


def test_only_an_owner_sees_and_uses_the_forget_button(app: RunningApp) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    inbound(app, "hola")
    page = f"/admin/conversations/{PHONE}"
    with closing(sign_in_as(app, "ana", ANA_PASSWORD)) as ana:
        assert "Borrar contacto" not in ana.get(page).text
        refused = post(ana, f"{page}/forget", page, confirm=PHONE)
        assert refused.status_code == 403
    with closing(sign_in_as(app, "admin", ADMIN_TOKEN)) as owner:
        assert "Borrar contacto" in owner.get(page).text
        wrong = post(owner, f"{page}/forget", page, confirm="0412")
        assert wrong.status_code == 400 and "escriba su número" in wrong.text
        assert owner.get(page).status_code == 200  # nothing erased
        done = post(owner, f"{page}/forget", page, confirm=PHONE)
        assert done.status_code == 303
        assert owner.get(done.headers["location"]).status_code == 200
        assert owner.get(page).status_code == 404
    assert audit_actions(app).count("contact_forgotten") == 1


def test_the_retention_sweep_erases_old_texts_and_keeps_the_rows(
    start_app: Callable[..., RunningApp], workdir: Path, clock: Clock
) -> None:
    rules = TEST_RULES.replace("  country: VE\n", "  country: VE\n  retention: {messages: 30d}\n")
    (workdir / "rules.yaml").write_text(rules, encoding="utf-8")
    app = start_app()
    inbound(app, "horario")
    clock.advance(31 * 86400)
    inbound(app, "horario hoy", phone=LUIS)
    assert app.service.loop is not None
    batches = asyncio.run_coroutine_threadsafe(
        app.service.expire_texts(batch=1), app.service.loop
    ).result(timeout=10)
    assert batches == 2
    assert [m["text"] for m in app.messages(PHONE)] == ["", ""]
    assert app.messages(LUIS)[0]["text"] == "horario hoy"
    assert "messages_expired" in audit_actions(app)
