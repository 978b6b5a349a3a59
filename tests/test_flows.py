"""Multi-step flows over HTTP with a controllable clock: ask, accept, retry, save, branch,
timeout, opt-out, interruption, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from responder import engine
from responder.rules.schema import load_rules
from responder.store.models import FlowTimeout
from tests import loopback
from tests.conftest import MONDAY_10AM, Clock, RunningApp

PHONE = "584121234567"

RULES = """
settings:
  timezone: America/Caracas
  dedupe_window: 0s
  reply_limit: {count: 100, per: 1h}
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos de 8 a 5."
  - name: vip
    keywords: [soy vip]
    when: {field: {name: cliente, equals: vip}}
    reply: "Hola, cliente VIP."
  - name: otro
    fallback: true
    reply: "No entendí."
flows:
  encuesta:
    trigger: {keywords: [encuesta]}
    timeout: 1h
    timeout_reply: "La encuesta expiró. ¡Gracias!"
    steps:
      - ask: "Del 1 al 5, ¿qué tan satisfecho está?"
        save: puntaje
        accept: '^[1-5]$'
        retry: "Responda con un número del 1 al 5."
      - ask: "¿Algún comentario?"
        save: comentario
      - say: "¡Gracias! Puntaje {{ contact.puntaje }}."
  registro:
    trigger: {keywords: [registro]}
    interruptible: true
    steps:
      - ask: "¿Es usted cliente? (si/no)"
        save: es_cliente
        goto: {si: cliente, no: nuevo}
      - id: cliente
        say: "Bienvenido de vuelta."
        end: true
      - id: nuevo
        ask: "¿Cómo se llama?"
        save: nombre
      - say: "Gracias, {{ contact.nombre }}."
  tipo:
    trigger: {keywords: [tipo]}
    steps:
      - ask: "¿Es usted vip?"
        save: cliente
      - say: "Listo."
"""


@pytest.fixture
def app(start_app: Callable[..., RunningApp], workdir: Path) -> RunningApp:
    (workdir / "rules.yaml").write_text(RULES, encoding="utf-8")
    return start_app()


def send(app: RunningApp, text: str) -> list[str]:
    """Texts `text` from PHONE; returns the auto-reply texts it caused."""
    before = len(app.messages(PHONE)) if fields_of(app) is not None else 0
    response = loopback.get(app.webhook(), params={"msg": text, "phone": PHONE})
    assert response.status_code == 200
    return [m["text"] for m in app.messages(PHONE)[before:] if m["direction"] == "out"]


def fields_of(app: RunningApp) -> dict[str, object] | None:
    with app.api() as api:
        response = api.get(f"/api/contacts/{PHONE}")
        if response.status_code == 404:
            return None
        result: dict[str, object] = response.json()["fields"]
        return result


def test_survey_with_retry_save_and_final_say(app: RunningApp) -> None:
    assert send(app, "Quiero la encuesta") == ["Del 1 al 5, ¿qué tan satisfecho esta?"]
    assert send(app, "muy bien") == ["Responda con un numero del 1 al 5."]
    assert send(app, "horario") == ["Responda con un numero del 1 al 5."]  # no interruption
    assert send(app, "4") == ["¿Algun comentario?"]
    assert send(app, "Todo excelente") == ["¡Gracias! Puntaje 4."]
    assert fields_of(app) == {"puntaje": "4", "comentario": "Todo excelente"}
    assert send(app, "horario") == ["Abrimos de 8 a 5."]  # the flow is over


def test_too_many_bad_answers_end_the_flow(app: RunningApp) -> None:
    send(app, "encuesta")
    assert send(app, "x") == ["Responda con un numero del 1 al 5."]
    assert send(app, "y") == ["Responda con un numero del 1 al 5."]
    assert send(app, "z") == []  # max_retries (2) spent: the flow ends quietly
    assert send(app, "horario") == ["Abrimos de 8 a 5."]


def test_branching_by_answer(app: RunningApp) -> None:
    assert send(app, "registro") == ["¿Es usted cliente? (si/no)"]
    assert send(app, "No") == ["¿Como se llama?"]
    assert send(app, "Ana") == ["Gracias, Ana."]
    assert send(app, "registro") == ["¿Es usted cliente? (si/no)"]
    assert send(app, "Sí") == ["Bienvenido de vuelta."]
    assert send(app, "xyz") == ["No entendi."]  # `end: true` stopped the flow


def test_interruptible_flow_gives_way_to_a_keyword(app: RunningApp) -> None:
    send(app, "registro")
    assert send(app, "horario") == ["Abrimos de 8 a 5."]
    assert send(app, "no") == ["No entendi."]  # the flow was left


def test_opt_out_wins_over_a_waiting_flow(app: RunningApp) -> None:
    send(app, "encuesta")
    assert send(app, "BAJA") == ["No recibira mas mensajes. Envie ALTA para volver."]
    send(app, "ALTA")
    assert send(app, "3") == ["No entendi."]  # the flow did not survive the opt-out


def test_saved_fields_drive_rule_conditions(app: RunningApp) -> None:
    assert send(app, "soy vip") == ["No entendi."]
    send(app, "tipo")
    assert send(app, "VIP") == ["Listo."]
    assert send(app, "soy vip") == ["Hola, cliente VIP."]


def test_timeout_sends_the_timeout_reply(app: RunningApp, clock: Clock) -> None:
    send(app, "encuesta")
    clock.advance(2 * 3600)
    assert app.service.loop is not None
    ended = asyncio.run_coroutine_threadsafe(app.service.expire_flows(), app.service.loop)
    assert ended.result(timeout=5) == 1
    messages = app.wait_for(PHONE, lambda m: m[-1]["text"] == "La encuesta expiro. ¡Gracias!")
    assert messages[-1]["rule"] == "flow:encuesta"
    assert send(app, "4") == ["No entendi."]


def test_a_late_answer_after_the_timeout_goes_to_the_rules(app: RunningApp, clock: Clock) -> None:
    send(app, "encuesta")
    clock.advance(2 * 3600)
    assert send(app, "horario") == ["Abrimos de 8 a 5."]
    assert send(app, "4") == ["No entendi."]


def test_flow_state_survives_a_restart(start_app: Callable[..., RunningApp], workdir: Path) -> None:
    (workdir / "rules.yaml").write_text(RULES, encoding="utf-8")
    first = start_app()
    send(first, "encuesta")
    second = start_app()  # another process on the same database file
    assert send(second, "5") == ["¿Algun comentario?"]


@pytest.mark.parametrize(
    ("flows", "line", "message"),
    [
        ("  f:\n    steps: [{say: hola}]\n", 5, "trigger: needs keywords"),
        (
            "  f:\n    trigger: {keywords: [x]}\n    steps: []\n",
            6,
            "steps: must be a non-empty list",
        ),
        (
            "  f:\n    trigger: {keywords: [x]}\n    steps:\n      - {ask: a, goto: {si: nada}}\n",
            7,
            "goto: no step has id 'nada'",
        ),
        (
            "  f:\n    trigger: {keywords: [x]}\n    steps:\n      - {ask: a, accept: '('}\n",
            7,
            "bad regular expression at character 1: ",
        ),
        (
            "  f:\n    trigger: {keywords: [x]}\n    steps:\n      - {ask: a, say: b}\n",
            7,
            "exactly one of",
        ),
        (
            "  f:\n    trigger: {keywords: [x]}\n    timeot: 1h\n    steps: [{say: a}]\n",
            6,
            "did you mean 'timeout'",
        ),
    ],
)
def test_flow_validation(tmp_path: Path, flows: str, line: int, message: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n  - {name: a, keywords: [a], reply: b}\nflows:\n" + flows, encoding="utf-8"
    )
    problems = load_rules(path, tmp_path, MONDAY_10AM).problems
    assert any(p.line == line and message in p.message for p in problems), problems


def test_a_flow_edited_under_a_waiting_contact_ends_cleanly(app: RunningApp, workdir: Path) -> None:
    send(app, "encuesta")
    send(app, "4")  # waiting on step 2 of 3
    rules = workdir / "rules.yaml"
    shorter = RULES.replace('      - ask: "¿Algún comentario?"\n        save: comentario\n', "")
    rules.write_text(shorter, encoding="utf-8")
    assert app.service.rules.reload()
    # Step 2 is now a `say`: the flow cannot take an answer there any more.
    assert send(app, "horario") == ["Abrimos de 8 a 5."]


def test_an_answer_that_beats_the_timeout_sweep_is_kept(app: RunningApp, clock: Clock) -> None:
    send(app, "encuesta")
    clock.advance(2 * 3600)
    store, loop = app.service.store, app.service.loop
    assert loop is not None
    [waiting] = asyncio.run_coroutine_threadsafe(store.contacts_in_flows(), loop).result(5)
    send(app, "encuesta")  # starts again before the sweep writes: a fresh step is waiting
    decision = engine.expire_flow(app.service.rules.current, waiting, clock())
    assert decision is not None
    apply = store.apply_decisions([FlowTimeout(PHONE, decision, waiting.flow)])
    assert asyncio.run_coroutine_threadsafe(apply, loop).result(5) == []
    assert send(app, "4") == ["¿Algun comentario?"]  # the new flow was not cleared
