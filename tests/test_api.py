"""The JSON API over real HTTP: token, shapes, agent replies, modes, simulate."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import loopback
from tests.conftest import ADMIN_TOKEN, RunningApp

PHONE = "584121234567"


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def inbound(app: RunningApp, text: str, phone: str = PHONE) -> None:
    response = loopback.get(app.webhook(), params={"msg": text, "phone": phone})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/conversations"),
        ("GET", f"/api/conversations/{PHONE}/messages"),
        ("POST", f"/api/conversations/{PHONE}/messages"),
        ("POST", f"/api/conversations/{PHONE}/mode"),
        ("POST", "/api/simulate"),
        ("GET", "/api/rules"),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-000000000", ADMIN_TOKEN, f"Basic {ADMIN_TOKEN}", "Bearer señal"],
)
def test_every_endpoint_needs_the_bearer_token(
    app: RunningApp, method: str, path: str, authorization: str | None
) -> None:
    # A non-ASCII token (bytes on the wire) must be refused like any other wrong one.
    headers = {b"Authorization": authorization.encode()} if authorization else {}
    response = loopback.request(method, f"{app.url}{path}", headers=headers, json={"text": "x"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "error" in response.json()


def test_conversations_newest_first_with_their_state(app: RunningApp, clock: object) -> None:
    inbound(app, "horario", "584121234567")
    app.service.clock.advance(60)  # type: ignore[attr-defined]
    inbound(app, "asesor", "584241234567")
    with app.api() as api:
        conversations = api.get("/api/conversations").json()["conversations"]
    assert [c["phone"] for c in conversations] == ["584241234567", "584121234567"]
    first = conversations[0]
    assert first["mode"] == "human"  # the asesor rule hands off
    assert first["opted_out"] is False
    assert first["last_text"] == "Un asesor le escribira pronto."  # smart encoding: á → a
    assert first["last_message_at"] == "2026-11-23T14:01:00.000000Z"
    assert conversations[1]["mode"] == "bot"


def test_messages_oldest_first_and_unknown_phone_404(app: RunningApp) -> None:
    inbound(app, "horario")
    messages = app.wait_for(PHONE, lambda m: m[-1]["status"] == "delivered")
    assert [m["direction"] for m in messages] == ["in", "out"]
    assert set(messages[0]) >= {
        "id", "direction", "text", "status", "rule", "provider", "provider_id", "error",
        "created_at",
    }  # fmt: skip
    assert messages[0]["id"] < messages[1]["id"]
    with app.api() as api:
        missing = api.get("/api/conversations/584249999999/messages")
    assert missing.status_code == 404
    assert "584249999999" in missing.json()["error"]


def test_agent_reply_is_queued_sent_and_takes_over(app: RunningApp) -> None:
    inbound(app, "hola")
    with app.api() as api:
        response = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "Hola, soy Ana."})
        assert response.status_code == 202
        message = response.json()["message"]
        assert message["direction"] == "out"
        assert message["text"] == "Hola, soy Ana."
        assert message["status"] == "queued"
        conversation = api.get("/api/conversations").json()["conversations"][0]
    assert conversation["mode"] == "human"
    messages = app.wait_for(PHONE, lambda m: m[-1]["status"] == "delivered")
    assert messages[-1]["id"] == message["id"]
    # In human mode the bot stays quiet.
    inbound(app, "horario")
    assert app.messages(PHONE)[-1]["direction"] == "in"


def test_mode_switch(app: RunningApp) -> None:
    inbound(app, "hola")
    with app.api() as api:
        response = api.post(f"/api/conversations/{PHONE}/mode", json={"mode": "human"})
        assert response.status_code == 200
        assert response.json()["mode"] == "human"
        assert response.json()["phone"] == PHONE
        back = api.post("/api/conversations/04121234567/mode", json={"mode": "bot"})
        assert back.json()["mode"] == "bot"
        bad = api.post(f"/api/conversations/{PHONE}/mode", json={"mode": "robot"})
        assert bad.status_code == 400
        unknown = api.post("/api/conversations/584249999999/mode", json={"mode": "bot"})
        assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "the body is not valid JSON"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b'{"text": ""}', "'text' must be a non-empty string"),
        (b'{"text": 5}', "'text' must be a non-empty string"),
        (b'{"text": "hola", "via": "massms"}', "via must be a configured provider (sandbox)"),
    ],
)
def test_agent_reply_bad_bodies(app: RunningApp, body: bytes, error: str) -> None:
    inbound(app, "hola")
    with app.api() as api:
        response = api.post(f"/api/conversations/{PHONE}/messages", content=body)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert [m["direction"] for m in app.messages(PHONE)] == ["in", "out"]  # nothing queued


def test_agent_reply_to_invalid_number_is_400(app: RunningApp) -> None:
    with app.api() as api:
        response = api.post("/api/conversations/12ab/messages", json={"text": "hola"})
    assert response.status_code == 400
    assert "not a valid phone number" in response.json()["error"]


def test_opted_out_number_refuses_agent_reply(app: RunningApp) -> None:
    inbound(app, "BAJA")
    with app.api() as api:
        response = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "¿Seguro?"})
        assert response.status_code == 409
        assert "opted out" in response.json()["error"]
        conversation = api.get("/api/conversations").json()["conversations"][0]
    assert conversation["opted_out"] is True
    messages = app.messages(PHONE)
    assert [m["text"] for m in messages if m["direction"] == "out"] == [
        "No recibira mas mensajes. Envie ALTA para volver."
    ]


def test_simulate_shape_and_no_side_effects(app: RunningApp) -> None:
    with app.api() as api:
        response = api.post("/api/simulate", json={"phone": "04121234567", "text": "precio cafe"})
        assert response.status_code == 200
        result = response.json()
        assert result["rule"] == "precio"
        assert result["replies"] == [{"text": "El precio de cafe es 5 USD.", "segments": 1}]
        assert "pattern" in result["explanation"]
        none = api.post("/api/simulate", json={"phone": PHONE, "text": "zzz"}).json()
        assert none["rule"] == "otro"
        assert api.get("/api/conversations").json() == {"conversations": [], "next": None}


def test_rules_version(app: RunningApp, workdir: Path) -> None:
    with app.api() as api:
        body = api.get("/api/rules").json()
    rules = workdir / "rules.yaml"
    assert body["version"]["sha256"] == hashlib.sha256(rules.read_bytes()).hexdigest()
    assert body["version"]["path"] == str(rules)
    assert body["version"]["id"] == 1  # the files, imported as the first stored version
    assert [r["name"] for r in body["rules"]] == ["horario", "precio", "asesor", "otro"]


def test_conversation_filters(app: RunningApp) -> None:
    inbound(app, "horario", "584121234567")
    inbound(app, "asesor", "584241234567")
    inbound(app, "baja", "584161234567")
    with app.api() as api:

        def phones(query: str) -> list[str]:
            body = api.get(f"/api/conversations?{query}").json()
            return [c["phone"] for c in body["conversations"]]

        assert phones("mode=human") == ["584241234567"]
        assert phones("opted_out=true") == ["584161234567"]
        assert sorted(phones("opted_out=false")) == ["584121234567", "584241234567"]
        assert api.get("/api/conversations?mode=x").status_code == 400
        assert api.get("/api/conversations?limit=x").status_code == 400


def test_contact_fields_read_and_written(app: RunningApp) -> None:
    inbound(app, "hola")
    with app.api() as api:
        assert api.get(f"/api/contacts/{PHONE}").json()["fields"] == {}
        response = api.patch(
            "/api/contacts/04121234567", json={"fields": {"nombre": "Ana", "cliente": "vip"}}
        )
        assert response.status_code == 200
        assert response.json()["fields"] == {"nombre": "Ana", "cliente": "vip"}
        removed = api.patch(f"/api/contacts/{PHONE}", json={"fields": {"cliente": None}})
        assert removed.json()["fields"] == {"nombre": "Ana"}
        assert api.get(f"/api/contacts/{PHONE}").json()["fields"] == {"nombre": "Ana"}
        bad = api.patch(f"/api/contacts/{PHONE}", json={"fields": {"a b": "x"}})
        assert bad.status_code == 400
        nested = api.patch(f"/api/contacts/{PHONE}", json={"fields": {"x": {"y": 1}}})
        assert nested.status_code == 400
        unknown = api.get("/api/contacts/584249999999")
        assert unknown.status_code == 404


def test_contact_labels_read_and_written(app: RunningApp) -> None:
    inbound(app, "hola")
    with app.api() as api:
        assert api.get(f"/api/contacts/{PHONE}").json()["labels"] == []
        url = f"/api/contacts/{PHONE}"
        added = api.patch(url, json={"labels": {"add": ["vip", "promo", "vip"]}})
        assert (added.status_code, added.json()["labels"]) == (200, ["promo", "vip"])
        changed = api.patch(url, json={"labels": {"add": ["b"], "remove": ["vip"]}})
        assert changed.json()["labels"] == ["b", "promo"]
        both = api.patch(url, json={"fields": {"nombre": "Ana"}, "labels": ["z"]})
        assert (both.json()["fields"], both.json()["labels"]) == ({"nombre": "Ana"}, ["z"])
        assert api.get(url).json()["labels"] == ["z"]
        listed = api.get("/api/conversations").json()["conversations"]
        assert [c["labels"] for c in listed] == [["z"]]
        for bad in ({"add": ["con espacio"]}, {"add": "vip"}, {"quitar": ["z"]}, "z", {}):
            assert api.patch(url, json={"labels": bad}).status_code == 400
        assert api.patch(url, json={"labels": ["a" * 41]}).status_code == 400
        assert api.patch(url, json={}).status_code == 400
        assert api.get(url).json()["labels"] == ["z"]  # nothing changed by the refused ones
        unknown = api.patch("/api/contacts/584249999999", json={"labels": ["a"]})
        assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "answer"),
    [
        (
            "GET",
            "/api/messages/99999999999999999999999",
            b"",
            404,
            {"error": "no message 99999999999999999999999"},
        ),
        (
            "GET",
            "/api/conversations?offset=99999999999999999999999999",
            b"",
            200,
            {"conversations": []},
        ),
        (
            "POST",
            f"/api/conversations/{PHONE}/messages",
            b'{"text": "' + b"x" * 1601 + b'"}',
            400,
            {"error": "'text' is longer than 1600 characters (ten SMS)"},
        ),
        (
            "PATCH",
            f"/api/contacts/{PHONE}",
            b'{"fields": {"n": "\\ud800"}}',
            200,
            {"fields": {"n": "\ufffd"}},  # what no database can hold becomes U+FFFD
        ),
        (
            "POST",
            "/api/simulate",
            b'{"phone": "04121234567", "text": "\\udfff"}',
            200,
            {"rule": "otro", "error": None},
        ),
    ],
    ids=["huge-id", "huge-offset", "text-too-long", "surrogate-field", "surrogate-text"],
)
def test_odd_input_gets_a_clear_answer(
    app: RunningApp, method: str, path: str, body: bytes, status: int, answer: dict[str, object]
) -> None:
    inbound(app, "hola")
    with app.api() as api:
        response = api.request(method, path, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json().items() >= answer.items(), response.json()


def test_a_short_code_conversation_can_be_read_and_handed_back(app: RunningApp) -> None:
    inbound(app, "asesor", "2020")
    with app.api() as api:
        assert [
            m["direction"] for m in api.get("/api/conversations/2020/messages").json()["messages"]
        ] == ["in", "out"]
        assert (
            api.post("/api/conversations/2020/mode", json={"mode": "bot"}).json()["mode"] == "bot"
        )
        assert api.get("/api/contacts/2020").status_code == 200
        refused = api.post("/api/conversations/2020/messages", json={"text": "hola"})
        assert refused.status_code == 400
        assert "not a valid phone number" in refused.json()["error"]


def test_writing_to_an_unknown_number_is_404(app: RunningApp) -> None:
    with app.api() as api:
        response = api.post("/api/conversations/04249999999/messages", json={"text": "hola"})
    assert response.status_code == 404
