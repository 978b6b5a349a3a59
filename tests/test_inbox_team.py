"""The team inbox over real HTTP (DESIGN §11): assignment and its filters, open and resolved
conversations, internal notes that are never sent, who is typing, a reply that crossed
another person's, and what needs attention, in the API and in the admin of two people."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import closing

import httpx
import pytest

from tests.conftest import Clock, RunningApp
from tests.test_admin import csrf_of, flat, inbound
from tests.test_team import add_person, bearer, sign_in_as, token_of

PHONE = "584121234567"
OTHER = "584241234567"
ANA_PASSWORD = "clave-de-ana-1"
BEA_PASSWORD = "clave-de-bea-2"
PAGE = f"/admin/conversations/{PHONE}"


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    running = start_app()
    add_person(running, "ana", "agent", ANA_PASSWORD)
    add_person(running, "bea", "agent", BEA_PASSWORD)
    return running


def phones(client: httpx.Client, path: str) -> list[str]:
    """The conversations a page of the inbox lists, by number."""
    return re.findall(r'href="/admin/conversations/(\d+)"', client.get(path).text)


def submit(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    """A form of the conversation page, sent with that page's CSRF token."""
    return client.post(path, data={"csrf": csrf_of(client.get(PAGE).text), **data})


# -- the API ---------------------------------------------------------------------------------


def test_assignment_in_the_api(app: RunningApp) -> None:
    inbound(app, "hola", PHONE)
    inbound(app, "horario", OTHER)
    with bearer(app, token_of(app, "ana")) as api:
        assert api.get(f"/api/contacts/{PHONE}").json()["assigned_to"] is None
        assigned = api.post(f"/api/conversations/{PHONE}/assign", json={"user": "Bea"})
        assert assigned.status_code == 200
        assert (assigned.json()["assigned_to"], assigned.json()["status"]) == ("bea", "open")
        listed = api.get("/api/conversations", params={"assigned": "bea"}).json()
        assert [c["phone"] for c in listed["conversations"]] == [PHONE]
        for nobody in ("", "none"):
            listed = api.get("/api/conversations", params={"assigned": nobody}).json()
            assert [c["phone"] for c in listed["conversations"]] == [OTHER]
        refused = [
            ({"user": "nadie"}, 404),  # no such person
            ({"user": 3}, 400),
            ({}, 400),
        ]
        for body, status in refused:
            response = api.post(f"/api/conversations/{PHONE}/assign", json=body)
            assert response.status_code == status, body
        unknown = api.post("/api/conversations/584160000000/assign", json={"user": "ana"})
        assert unknown.status_code == 404
        cleared = api.post(f"/api/conversations/{PHONE}/assign", json={"user": None})
        assert cleared.json()["assigned_to"] is None
    with app.api() as owner:
        events = owner.get("/api/audit").json()["events"]
    assigned_events = [e for e in events if e["action"] == "assigned"]
    assert [(e["actor"], e["subject"], e["detail"]) for e in assigned_events] == [
        ("ana", PHONE, {"to": None, "before": "bea"}),
        ("ana", PHONE, {"to": "bea", "before": None}),
    ]


def test_resolving_in_the_api_and_an_inbound_message_reopens(app: RunningApp) -> None:
    inbound(app, "qwerty")  # the fallback answers: it needs attention
    with app.api() as api:
        assert api.get(f"/api/contacts/{PHONE}").json()["needs_attention"] is True
        resolved = api.post(f"/api/conversations/{PHONE}/status", json={"status": "resolved"})
        assert resolved.status_code == 200
        assert (resolved.json()["status"], resolved.json()["needs_attention"]) == (
            "resolved",
            False,
        )
        listed = api.get("/api/conversations", params={"status": "resolved"}).json()
        assert [c["phone"] for c in listed["conversations"]] == [PHONE]
        assert api.get("/api/conversations", params={"status": "open"}).json() == {
            "conversations": [],
            "next": None,
        }
        assert api.get("/api/conversations?status=done").status_code == 400
        bad = api.post(f"/api/conversations/{PHONE}/status", json={"status": "closed"})
        assert bad.status_code == 400
        inbound(app, "horario")
        assert api.get(f"/api/contacts/{PHONE}").json()["status"] == "open"


def test_notes_in_the_api_are_never_sent(app: RunningApp) -> None:
    inbound(app, "horario")
    before = app.wait_for(PHONE, lambda m: m[-1]["status"] == "delivered")
    with bearer(app, token_of(app, "ana")) as api:
        created = api.post(f"/api/conversations/{PHONE}/notes", json={"text": "Cliente VIP"})
        assert created.status_code == 201
        note = created.json()["note"]
        assert (note["author"], note["text"], note["phone"]) == ("ana", "Cliente VIP", PHONE)
        assert note["created_at"] == "2026-11-23T14:00:00.000000Z"
        assert api.post(f"/api/conversations/{PHONE}/notes", json={"text": "  "}).status_code == 400
        assert api.post(f"/api/conversations/{PHONE}/notes", json={}).status_code == 400
        unknown = api.post("/api/conversations/584160000000/notes", json={"text": "x"})
        assert unknown.status_code == 404
        listed = api.get(f"/api/conversations/{PHONE}/notes").json()["notes"]
        assert [n["text"] for n in listed] == ["Cliente VIP"]
    assert app.messages(PHONE) == before  # a note is no message: nothing queued, nothing sent


def test_attention_stays_until_a_person_replies(app: RunningApp) -> None:
    inbound(app, "qwerty")  # the fallback answered
    with app.api() as api:
        assert api.get(f"/api/contacts/{PHONE}").json()["needs_attention"] is True
        inbound(app, "horario")  # the bot answers this one; it still needs a person
        assert api.get(f"/api/contacts/{PHONE}").json()["needs_attention"] is True
        sent = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "Hola, soy Ana"})
        assert sent.status_code == 202
        assert api.get(f"/api/contacts/{PHONE}").json()["needs_attention"] is False
        inbound(app, "horario", OTHER)
        assert api.get(f"/api/contacts/{OTHER}").json()["needs_attention"] is False


# -- the admin, two people side by side -----------------------------------------------------------


def test_one_assigns_the_other_sees_it(app: RunningApp) -> None:
    inbound(app, "hola", PHONE)
    inbound(app, "horario", OTHER)
    with (
        closing(sign_in_as(app, "ana", ANA_PASSWORD)) as ana,
        closing(sign_in_as(app, "bea", BEA_PASSWORD)) as bea,
    ):
        page = ana.get(PAGE).text
        assert 'id="assign-me"' in page and 'id="assign-user"' in page
        assert '<option value="bea">bea</option>' in page
        response = submit(ana, f"{PAGE}/assign", user="ana")  # "Asignarme"
        assert response.status_code == 303
        assert response.headers["location"] == f"{PAGE}?ok=assigned"
        assert phones(ana, "/admin?f=mine") == [PHONE]
        assert phones(bea, "/admin?f=mine") == []
        assert phones(bea, "/admin?f=unassigned") == [OTHER]
        listed = flat(bea.get("/admin"))
        assert "→ ana" in listed
        assert re.search(r"Mías <span class=\"count\">0</span>", listed)
        assert re.search(r"Sin asignar <span class=\"count\">1</span>", listed)
        # Bea's open page learns it at its next look, and has "Asignarme" for herself.
        live = bea.get(f"/admin/partials/conversations/{PHONE}").text
        assert '<option value="ana" selected>ana</option>' in live
        assert 'id="assign-me"' in live
        assert 'id="assign-me"' not in ana.get(PAGE).text  # it is hers already
        # Bea hands it to nobody, with the select.
        assert submit(bea, f"{PAGE}/assign", user="").headers["location"].endswith("ok=unassigned")
        assert phones(ana, "/admin?f=mine") == []
        refused = submit(bea, f"{PAGE}/assign", user="nadie")
        assert refused.status_code == 400 and "nadie" in refused.text


def test_resolve_and_reopen_in_the_admin(app: RunningApp) -> None:
    inbound(app, "qwerty")
    with closing(sign_in_as(app, "ana", ANA_PASSWORD)) as ana:
        assert phones(ana, "/admin?f=attention") == [PHONE]
        assert 'id="resolve"' in ana.get(PAGE).text
        response = submit(ana, f"{PAGE}/status", status="resolved")
        assert response.headers["location"] == f"{PAGE}?ok=resolved"
        page = flat(ana.get(PAGE))
        assert 'id="reopen"' in page and "resuelta" in page
        assert phones(ana, "/admin?f=resolved") == [PHONE]
        assert phones(ana, "/admin?f=open") == []
        assert phones(ana, "/admin?f=attention") == []  # resolving settles it
        inbound(app, "otra pregunta")
        assert phones(ana, "/admin?f=open") == [PHONE]
        assert 'id="resolve"' in ana.get(PAGE).text
        assert submit(ana, f"{PAGE}/status", status="later").status_code == 400


def test_an_internal_note_shows_in_the_thread_and_is_never_sent(app: RunningApp) -> None:
    inbound(app, "horario")
    before = app.wait_for(PHONE, lambda m: m[-1]["status"] == "delivered")
    with (
        closing(sign_in_as(app, "ana", ANA_PASSWORD)) as ana,
        closing(sign_in_as(app, "bea", BEA_PASSWORD)) as bea,
    ):
        assert 'id="note-form"' in ana.get(PAGE).text
        response = submit(ana, f"{PAGE}/notes", note="Pidió factura <b>fiscal</b>")
        assert response.headers["location"] == f"{PAGE}?ok=note"
        thread = flat(bea.get(f"/admin/partials/conversations/{PHONE}"))
        note = re.search(r'<li class="note" id="n\d+">(.*?)</li>', thread)
        assert note is not None
        assert "Nota interna · no se envía" in note.group(1)
        assert "Pidió factura &lt;b&gt;fiscal&lt;/b&gt;" in note.group(1)
        assert '<span class="author">ana</span>' in note.group(1)
        # After the bot's reply, in the order written.
        assert thread.index("Abrimos de lunes") < thread.index("Pidió factura")
        empty = submit(ana, f"{PAGE}/notes", note="   ")
        assert empty.status_code == 400 and "Escriba la nota" in empty.text
    assert app.messages(PHONE) == before


def test_who_is_typing_shows_to_the_others_for_a_few_seconds(app: RunningApp, clock: Clock) -> None:
    inbound(app, "hola")
    with (
        closing(sign_in_as(app, "ana", ANA_PASSWORD)) as ana,
        closing(sign_in_as(app, "bea", BEA_PASSWORD)) as bea,
    ):
        assert 'data-typing-url="/admin/conversations/' in ana.get(PAGE).text
        assert submit(ana, f"{PAGE}/typing").status_code == 204
        live = flat(bea.get(f"/admin/partials/conversations/{PHONE}"))
        assert (
            '<p id="typing" class="typing" data-live aria-live="polite">ana está escribiendo…'
            in live
        )
        assert "escribiendo" not in ana.get(f"/admin/partials/conversations/{PHONE}").text
        assert submit(bea, f"{PAGE}/typing").status_code == 204
        assert "escribiendo" in ana.get(f"/admin/partials/conversations/{PHONE}").text
        clock.advance(9)
        assert "escribiendo" not in bea.get(f"/admin/partials/conversations/{PHONE}").text
        assert ana.post(f"{PAGE}/typing", data={"csrf": "wrong"}).status_code == 403


def test_a_reply_that_crossed_another_asks_before_sending(app: RunningApp) -> None:
    inbound(app, "asesor")
    with (
        closing(sign_in_as(app, "ana", ANA_PASSWORD)) as ana,
        closing(sign_in_as(app, "bea", BEA_PASSWORD)) as bea,
    ):
        bea_page = bea.get(PAGE).text  # what Bea has on screen while she writes
        seen = re.search(r'name="seen" value="(\d+)"', bea_page)
        assert seen is not None
        csrf = csrf_of(bea_page)
        sent = submit(ana, f"{PAGE}/reply", text="Hola, soy Ana.", seen=seen.group(1))
        assert sent.status_code == 303
        count = len(app.messages(PHONE))
        crossed = bea.post(
            f"{PAGE}/reply", data={"csrf": csrf, "text": "Hola, soy Bea.", "seen": seen.group(1)}
        )
        assert crossed.status_code == 409
        shown = flat(crossed)
        assert "ana respondió mientras usted escribía: ¿enviar de todos modos?" in shown
        assert 'id="confirm-send"' in shown and "Hola, soy Bea." in shown  # the draft is kept
        assert len(app.messages(PHONE)) == count  # nothing sent yet
        confirmed = bea.post(
            f"{PAGE}/reply",
            data={"csrf": csrf, "text": "Hola, soy Bea.", "seen": seen.group(1), "confirm": "1"},
        )
        assert confirmed.status_code == 303
        texts = [m["text"] for m in app.messages(PHONE)]
        assert texts[-2:] == ["Hola, soy Ana.", "Hola, soy Bea."]
        # Her own replies never stop her; nor does one she had seen.
        again = bea.post(
            f"{PAGE}/reply", data={"csrf": csrf, "text": "¿Algo más?", "seen": seen.group(1)}
        )
        assert again.status_code == 409  # Ana's is still after what she saw
        newest = re.search(r'name="seen" value="(\d+)"', bea.get(PAGE).text)
        assert newest is not None and int(newest.group(1)) > int(seen.group(1))
        fine = bea.post(
            f"{PAGE}/reply", data={"csrf": csrf, "text": "¿Algo más?", "seen": newest.group(1)}
        )
        assert fine.status_code == 303
