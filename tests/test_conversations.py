"""Conversation protections over HTTP, with a controllable clock: opt-out, reply limit, loop
guard, hand-off and its timeout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import loopback
from tests.conftest import Clock, RunningApp

PHONE = "584121234567"
OPTED_OUT = "No recibira mas mensajes. Envie ALTA para volver."

RULES = """
settings:
  timezone: America/Caracas
  reply_limit: {count: 3, per: 1h}
  loop_guard: {count: 4, per: 5m}
  dedupe_window: 0s
  handoff_timeout: 30m
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos de 8 a 5."
  - name: asesor
    keywords: [asesor]
    reply: "Un asesor le escribirá."
    handoff: true
  - name: eco
    keywords: [bot]
    reply: "Soy un bot."
"""


@pytest.fixture
def app(start_app: Callable[..., RunningApp], workdir: Path) -> RunningApp:
    (workdir / "rules.yaml").write_text(RULES, encoding="utf-8")
    return start_app()


def send(app: RunningApp, text: str) -> list[str]:
    """Texts `text` from PHONE; returns the auto-reply texts it caused."""
    before = len(app.messages(PHONE)) if conversation_exists(app) else 0
    response = loopback.get(app.webhook(), params={"msg": text, "phone": PHONE})
    assert response.status_code == 200
    return [m["text"] for m in app.messages(PHONE)[before:] if m["direction"] == "out"]


def conversation_exists(app: RunningApp) -> bool:
    with app.api() as api:
        return api.get(f"/api/contacts/{PHONE}").status_code == 200


def conversation(app: RunningApp) -> dict[str, object]:
    with app.api() as api:
        result: dict[str, object] = api.get(f"/api/contacts/{PHONE}").json()
        return result


def test_opt_out_then_silence_then_opt_in(app: RunningApp) -> None:
    assert send(app, "Baja.") == [OPTED_OUT]
    assert conversation(app)["opted_out"] is True
    assert send(app, "horario") == []
    assert send(app, "BAJA") == []  # one confirmation only
    with app.api() as api:
        refused = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "hola"})
    assert refused.status_code == 409
    assert send(app, "alta") == ["Suscripcion reactivada."]
    assert send(app, "horario") == ["Abrimos de 8 a 5."]


@pytest.mark.parametrize(
    ("text", "opts_out"),
    [
        ("STOP por favor", True),
        ("baja gracias", True),
        ("¡CANCELAR!", True),
        ("el precio está alto", False),
        ("no quiero darme de baja", False),
    ],
)
def test_opt_out_is_forgiving_but_not_fooled(app: RunningApp, text: str, opts_out: bool) -> None:
    send(app, text)
    assert conversation(app)["opted_out"] is opts_out


def test_opt_out_wins_in_human_mode(app: RunningApp) -> None:
    assert send(app, "asesor") == ["Un asesor le escribira."]
    assert conversation(app)["mode"] == "human"
    assert send(app, "horario") == []
    assert send(app, "stop") == [OPTED_OUT]


def test_reply_limit_stores_but_does_not_answer(app: RunningApp, clock: Clock) -> None:
    for _ in range(3):
        assert send(app, "horario") == ["Abrimos de 8 a 5."]
        clock.advance(60)
    assert send(app, "horario") == []
    inbound = [m for m in app.messages(PHONE) if m["direction"] == "in"]
    assert len(inbound) == 4  # stored and visible
    clock.advance(3600)  # the window slides
    assert send(app, "horario") == ["Abrimos de 8 a 5."]


def test_opt_out_confirmations_do_not_count_toward_the_limit(
    app: RunningApp, start_app: Callable[..., RunningApp], clock: Clock
) -> None:
    answer, stop, again = ["Abrimos de 8 a 5."], [OPTED_OUT], ["Suscripcion reactivada."]
    # Four auto-replies in the hour, two of them confirmations: the second answer still goes.
    for text, replies in [
        ("horario", answer),
        ("baja", stop),
        ("alta", again),
        ("horario", answer),
    ]:
        assert send(app, text) == replies
        clock.advance(1)
    restarted = start_app()  # another process: it reads the recent replies from the database
    assert send(restarted, "horario") == answer  # the third answer in the hour
    clock.advance(1)
    assert send(restarted, "horario") == []  # the fourth is over the limit
    assert send(restarted, "baja") == stop  # and a confirmation is not held back by it


def test_loop_guard_flags_the_conversation(app: RunningApp, clock: Clock, workdir: Path) -> None:
    rules = workdir / "rules.yaml"
    rules.write_text(RULES.replace("count: 3, per: 1h", "count: 100, per: 1h"), encoding="utf-8")
    app.service.rules.reload()
    for _ in range(4):
        assert send(app, "bot") == ["Soy un bot."]
        clock.advance(10)
    assert send(app, "bot") == []
    assert conversation(app)["flagged"] is True
    assert send(app, "horario") == ["Abrimos de 8 a 5."]  # only the repeated text is held back
    with app.api() as api:
        api.post(f"/api/conversations/{PHONE}/mode", json={"mode": "bot"})
    assert conversation(app)["flagged"] is False


def test_handoff_and_its_timeout(app: RunningApp, clock: Clock) -> None:
    send(app, "asesor")
    clock.advance(10 * 60)
    assert send(app, "horario") == []  # people are on it
    with app.api() as api:
        response = api.get("/api/conversations?mode=human").json()["conversations"]
    assert [(c["phone"], c["unread"]) for c in response] == [(PHONE, 2)]
    clock.advance(31 * 60)  # nobody wrote for longer than handoff_timeout
    assert send(app, "horario") == ["Abrimos de 8 a 5."]
    assert conversation(app)["mode"] == "bot"


def test_agent_activity_keeps_the_conversation_with_people(app: RunningApp, clock: Clock) -> None:
    send(app, "asesor")
    clock.advance(25 * 60)
    with app.api() as api:
        api.post(f"/api/conversations/{PHONE}/messages", json={"text": "Hola, soy Ana"})
    clock.advance(25 * 60)
    assert send(app, "horario") == []
    assert conversation(app)["mode"] == "human"


def test_unmatched_message_needs_attention(app: RunningApp) -> None:
    send(app, "quiero factura")  # no rule, no fallback
    assert conversation(app)["needs_attention"] is True
    with app.api() as api:
        listed = api.get("/api/conversations?needs_attention=true").json()["conversations"]
    assert [c["phone"] for c in listed] == [PHONE]


def test_opt_out_stops_what_was_waiting_to_go(app: RunningApp, clock: Clock) -> None:
    send(app, "horario")
    with app.api() as api:
        response = api.post(
            f"/api/conversations/{PHONE}/messages",
            json={"text": "Promoción de mañana", "send_at": "2026-11-23T18:00"},
        )
        assert response.status_code == 202
    assert send(app, "BAJA") == [OPTED_OUT]
    clock.advance(10 * 3600)
    scheduled = app.wait_for(PHONE, lambda m: m[2]["status"] == "failed")[2]
    assert scheduled["text"] == "Promocion de mañana"
    assert scheduled["error"] == "not sent: the number opted out"


def test_opt_out_time_is_shown(app: RunningApp) -> None:
    send(app, "baja")
    assert conversation(app)["opted_out_at"] == "2026-11-23T14:00:00.000000Z"
    send(app, "alta")
    assert conversation(app)["opted_out_at"] is None


def test_two_instances_share_the_reply_limit_and_the_dedupe_window(
    app: RunningApp, start_app: Callable[..., RunningApp], clock: Clock, workdir: Path
) -> None:
    rules = workdir / "rules.yaml"
    rules.write_text(RULES.replace("dedupe_window: 0s", "dedupe_window: 10s"), encoding="utf-8")
    assert app.service.rules.reload()
    other = start_app()  # a second instance on the same database, as behind a load balancer
    # The gateway retries a webhook and the retry reaches the other instance: answered once.
    assert send(app, "horario") == ["Abrimos de 8 a 5."]
    assert send(other, "horario") == []
    assert [m["direction"] for m in other.messages(PHONE)] == ["in", "out"]
    clock.advance(11)  # outside the dedupe window: a new message
    # Three answers an hour, whichever instance gives them.
    assert send(other, "horario") == ["Abrimos de 8 a 5."]
    clock.advance(11)
    assert send(app, "horario") == ["Abrimos de 8 a 5."]
    clock.advance(11)
    assert send(other, "horario") == []
    assert send(app, "bot") == []
