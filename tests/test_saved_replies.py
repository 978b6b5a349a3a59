"""Saved replies over real HTTP: owners manage them (the API and the Respuestas guardadas page),
everyone signed in gets them filled in with a conversation's contact fields, rendered in the
rules' sandbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing

import pytest

from tests import loopback
from tests.conftest import RunningApp
from tests.test_admin import csrf_of, inbound, sign_in
from tests.test_team import add_person, bearer, sign_in_as, token_of

PHONE = "584121234567"
BEA_PASSWORD = "clave-de-bea-2"


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def test_owners_manage_saved_replies_through_the_api(app: RunningApp) -> None:
    add_person(app, "bea", "agent", BEA_PASSWORD)
    with app.api() as api:
        created = api.post(
            "/api/saved-replies",
            json={"name": " Horario ", "text": "Hola {{ contact.nombre }}, abrimos de 8 a 5."},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["name"], body["author"]) == ("horario", "admin")
        assert set(body) == {"id", "name", "text", "author", "created_at"}
        refused = [
            ({"name": "horario", "text": "otra"}, 409),
            ({"name": "dos palabras", "text": "x"}, 400),
            ({"name": "/precio", "text": "x"}, 400),
            ({"name": "precio", "text": "  "}, 400),
            ({"name": "precio", "text": "Hola {{ contact.nombre "}, 400),
            ({"name": "precio", "text": "x" * 1601}, 400),
            ({"text": "x"}, 400),
        ]
        for data, status in refused:
            response = api.post("/api/saved-replies", json=data)
            assert response.status_code == status, data
            assert "error" in response.json()
        listed = api.get("/api/saved-replies").json()["saved_replies"]
        assert [r["name"] for r in listed] == ["horario"]
    with closing(bearer(app, token_of(app, "bea"))) as agent:
        assert agent.get("/api/saved-replies").status_code == 200
        forbidden = agent.post("/api/saved-replies", json={"name": "mia", "text": "x"})
        assert forbidden.status_code == 403
        assert agent.delete(f"/api/saved-replies/{body['id']}").status_code == 403
    with app.api() as api:
        assert api.delete(f"/api/saved-replies/{body['id']}").status_code == 204
        assert api.delete(f"/api/saved-replies/{body['id']}").status_code == 404
        assert api.delete("/api/saved-replies/nope").status_code == 404
        assert api.get("/api/saved-replies").json() == {"saved_replies": []}
        actions = [(e["action"], e["subject"]) for e in api.get("/api/audit").json()["events"]]
    assert ("saved_reply_created", "horario") in actions
    assert ("saved_reply_deleted", "horario") in actions


def test_saved_replies_are_filled_in_for_a_conversation(app: RunningApp) -> None:
    inbound(app, "hola")
    with app.api() as api:
        api.patch(f"/api/contacts/{PHONE}", json={"fields": {"nombre": "Ana"}})
        for name, text, status in [
            ("saludo", "Hola {{ contact.nombre }}, ¿en qué le ayudo?", 201),
            ("roto", "{{ contact.nombre | no_such_filter }}", 400),
            ("sandbox", "{{ contact.__class__.__mro__ }}", 201),
        ]:
            response = api.post("/api/saved-replies", json={"name": name, "text": text})
            assert response.status_code == status, response.text
        filled = api.get(f"/api/conversations/{PHONE}/saved-replies").json()["saved_replies"]
        assert api.get("/api/conversations/584249999999/saved-replies").status_code == 404
    by_name = {r["name"]: r for r in filled}
    assert by_name["saludo"]["text"] == "Hola Ana, ¿en qué le ayudo?"
    assert by_name["saludo"]["error"] is None
    assert by_name["sandbox"]["error"] is not None  # refused by the sandbox, shown as written
    assert by_name["sandbox"]["text"] == "{{ contact.__class__.__mro__ }}"


def test_agents_pick_saved_replies_in_the_reply_box(app: RunningApp) -> None:
    add_person(app, "bea", "agent", BEA_PASSWORD)
    inbound(app, "hola")
    with app.api() as api:
        api.patch(f"/api/contacts/{PHONE}", json={"fields": {"nombre": "Ana"}})
        api.post("/api/saved-replies", json={"name": "saludo", "text": "Hola {{ contact.nombre }}"})
    with closing(sign_in_as(app, "bea", BEA_PASSWORD)) as bea:
        thread = bea.get(f"/admin/conversations/{PHONE}").text
        assert f'data-saved-replies="/admin/partials/conversations/{PHONE}/saved-replies"' in thread
        assert 'id="saved-replies-picker"' in thread and 'role="listbox"' in thread
        picked = bea.get(f"/admin/partials/conversations/{PHONE}/saved-replies")
        assert picked.status_code == 200
        assert [(r["name"], r["text"]) for r in picked.json()["saved_replies"]] == [
            ("saludo", "Hola Ana")
        ]
        # The page that manages them is for owners: no link, and 403.
        assert 'href="/admin/saved-replies"' not in thread
        assert bea.get("/admin/saved-replies").status_code == 403
        add = bea.post(
            "/admin/saved-replies", data={"csrf": csrf_of(thread), "name": "x", "text": "y"}
        )
        assert add.status_code == 403
    stranger = loopback.get(f"{app.url}/admin/partials/conversations/{PHONE}/saved-replies")
    assert stranger.status_code == 401


def test_the_saved_replies_page(app: RunningApp) -> None:
    with closing(sign_in(app)) as owner:
        page = owner.get("/admin/saved-replies")
        assert page.status_code == 200
        assert "Todavía no hay respuestas guardadas." in page.text
        assert "{{ contact.nombre }}" in page.text  # the help shows the variable as written
        added = owner.post(
            "/admin/saved-replies",
            data={
                "csrf": csrf_of(page.text),
                "name": "Horario",
                "text": "De 8 a 5\r\nSábados 9 a 1",
            },
        )
        assert added.status_code == 303
        page = owner.get(added.headers["location"])
        assert "Respuesta guardada" in page.text
        found = re.search(r'<li id="saved-reply-(\d+)">', page.text)
        assert found and "/horario" in page.text
        assert "De 8 a 5\nSábados 9 a 1" in page.text
        again = owner.post(
            "/admin/saved-replies",
            data={"csrf": csrf_of(page.text), "name": "horario", "text": "otra"},
        )
        assert again.status_code == 400
        assert "Ya hay una respuesta llamada horario." in again.text
        bad = owner.post(
            "/admin/saved-replies",
            data={"csrf": csrf_of(page.text), "name": "mal", "text": "{% if %}"},
        )
        assert bad.status_code == 400
        assert "error de plantilla en la línea 1" in bad.text
        assert 'value="mal"' in bad.text  # what was typed stays in the form
        deleted = owner.post(
            f"/admin/saved-replies/{found.group(1)}/delete", data={"csrf": csrf_of(page.text)}
        )
        assert deleted.status_code == 303
        assert "Todavía no hay respuestas guardadas." in owner.get("/admin/saved-replies").text
        gone = owner.post(
            f"/admin/saved-replies/{found.group(1)}/delete", data={"csrf": csrf_of(page.text)}
        )
        assert gone.status_code == 404
