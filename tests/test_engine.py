"""engine.decide as a table: rules + contact + message + clock in, Decision out. No I/O."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from responder import engine
from responder.engine import Contact, Decision, InboundMessage, Reply
from responder.rules.schema import RuleSet, load_rules
from responder.text import smart_encode
from tests.conftest import MONDAY_10AM

PHONE = "584121234567"
# Monday 2026-11-23, 10:00 in Caracas (UTC-4).
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
LONG_TEXT = (
    "Gracias por escribirnos. Nuestro horario es de lunes a viernes de 8:00 a 17:00 y los "
    "sábados de 9:00 a 13:00. Estamos en la Avenida Principal de Los Palos Grandes, frente "
    "a la plaza, al lado de la farmacia. Puede pagar en efectivo, con tarjeta o con pago "
    "móvil. Para hablar con una persona escriba ASESOR y le atenderemos en cuanto podamos."
)

RULES = r"""
settings:
  timezone: America/Caracas
  opt_out:
    keywords: [BAJA, STOP, CANCELAR, ALTO]
    reply: "No recibirá más mensajes. Envíe ALTA para volver."
  opt_in: {keywords: [ALTA, START], reply: "Suscripción reactivada."}
rules:
  - name: precio
    pattern: 'precio (?P<producto>\w+)'
    reply: "El {{ match.producto }} cuesta 5 USD."
  - name: asesor
    keywords: [asesor, humano]
    reply: "Un asesor le escribirá pronto."
    handoff: true
  - name: agente
    keywords: [agente]
    handoff: true
  - name: contexto
    keywords: [contexto]
    template: contexto.txt
  - name: largo
    keywords: [largo]
    template: largo.txt
  - name: urgente
    keywords: [urgente]
    reply: "Enviado por MasSMS."
    via: massms
  - name: internals
    keywords: [mro]
    reply: "{{ ''.__class__.__mro__ }}"
  - name: clase
    keywords: [clase]
    reply: "x{{ ''.__class__ }}{{ now.__class__ }}{{ contact.__class__ }}y"
  - name: globales
    keywords: [globales]
    reply: "{{ cycler.__init__.__globals__ }}"
  - name: division
    keywords: [division]
    reply: "{{ 1/0 }}"
  - name: vacio
    keywords: [vacio]
    reply: "{{ contact.nada }}"
  - name: otro
    fallback: true
    reply: "No entendí."
"""
TEMPLATES = {
    "contexto.txt": (
        "{{ rule }}|{{ message.text }}|{{ message.phone }}|"
        "{{ message.received_at.strftime('%H:%M') }}|{{ contact.nombre }}|{{ contact.phone }}|"
        "{{ now.strftime('%Y-%m-%d %H:%M %Z') }}|{{ match }}"
    ),
    "largo.txt": LONG_TEXT,
}
# Any str, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters(exclude_categories=()))
OPT_OUT_REPLY = "No recibira mas mensajes. Envie ALTA para volver."  # after smart encoding


def write(folder: Path, rules: str, templates: dict[str, str]) -> RuleSet:
    (folder / "templates").mkdir(exist_ok=True)
    for name, body in templates.items():
        (folder / "templates" / name).write_text(body, encoding="utf-8")
    (folder / "rules.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
    ruleset = load_rules(folder / "rules.yaml", folder / "templates", MONDAY_10AM)
    assert ruleset.errors == (), ruleset.errors
    return ruleset


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return write(tmp_path_factory.mktemp("engine"), RULES, TEMPLATES)


def decide(rules: RuleSet, text: str, now: datetime = NOW, **contact: Any) -> Decision:
    person = Contact(PHONE, **{"first_contact": False, **contact})
    return engine.decide(rules, InboundMessage(PHONE, text, now), person, now)


def texts(decision: Decision) -> list[str]:
    return [reply.text for reply in decision.replies]


# --- opt-out and opt-in ------------------------------------------------------------------

# (text, contact) → (rule, replies, new opted_out state)
OPT_CASES = [
    ("opt-out-with-period", "Baja.", {}, "opt_out", [OPT_OUT_REPLY], True),
    ("opt-out-then-words", "STOP por favor", {}, "opt_out", [OPT_OUT_REPLY], True),
    ("opt-out-lowercase-then-thanks", "baja gracias", {}, "opt_out", [OPT_OUT_REPLY], True),
    ("opt-out-punctuation-spaces", "  ¡ALTO!  ", {}, "opt_out", [OPT_OUT_REPLY], True),
    ("keyword-later-in-message", "el costo está alto", {}, "otro", ["No entendi."], None),
    ("keyword-inside-a-word", "bajan los precios?", {}, "otro", ["No entendi."], None),
    ("keyword-not-at-start", "quiero darme de baja", {}, "otro", ["No entendi."], None),
    ("opt-out-wins-in-human-mode", "cancelar", {"mode": "human"}, "opt_out", [OPT_OUT_REPLY],
     True),
    ("opt-out-twice-says-nothing", "BAJA", {"opted_out": True}, "opt_out", [], None),
    ("opted-out-gets-nothing", "hola", {"opted_out": True}, None, [], None),
    ("opted-out-handoff-gets-nothing", "asesor", {"opted_out": True}, None, [], None),
    ("opt-in", "ALTA", {"opted_out": True}, "opt_in", ["Suscripcion reactivada."], False),
    ("opt-in-then-words", "start please", {"opted_out": True}, "opt_in",
     ["Suscripcion reactivada."], False),
    ("opt-in-when-subscribed-is-a-message", "alta", {}, "otro", ["No entendi."], None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "contact", "rule", "replies", "opted_out"),
    [case[1:] for case in OPT_CASES],
    ids=[case[0] for case in OPT_CASES],
)
def test_opt_out_and_opt_in(
    rules: RuleSet,
    text: str,
    contact: dict[str, Any],
    rule: str | None,
    replies: list[str],
    opted_out: bool | None,
) -> None:
    decision = decide(rules, text, **contact)
    assert (decision.rule, texts(decision), decision.opted_out) == (rule, replies, opted_out)
    assert decision.error is None


def test_opt_out_can_be_turned_off(tmp_path: Path) -> None:
    ruleset = write(
        tmp_path,
        """\
        settings: {opt_out: false}
        rules:
          - {name: baja, keywords: [baja], reply: "Escriba a la tienda."}
        """,
        {},
    )
    assert (ruleset.settings.opt_out, decide(ruleset, "BAJA").rule) == (None, "baja")


def test_opt_out_is_recorded_even_when_its_reply_fails(tmp_path: Path) -> None:
    ruleset = write(
        tmp_path,
        """\
        settings: {opt_out: {keywords: [baja], reply: "{{ 1/0 }}"}}
        rules:
          - {name: a, keywords: [a], reply: b}
        """,
        {},
    )
    decision = decide(ruleset, "baja")
    assert (decision.rule, decision.replies, decision.opted_out) == ("opt_out", (), True)
    assert decision.error is not None and "ZeroDivisionError" in decision.error


# --- handoff and human mode -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "contact", "rule", "replies", "mode", "attention"),
    [
        ("quiero un ASESOR", {}, "asesor", ["Un asesor le escribira pronto."], "human", False),
        ("agente", {}, "agente", [], "human", False),
        ("precio cafe", {}, "precio", ["El cafe cuesta 5 USD."], None, False),
        ("hola", {"mode": "human"}, None, [], None, False),
        ("asesor", {"mode": "human"}, None, [], None, False),
    ],
    ids=[
        "handoff-with-reply",
        "handoff-without-reply",
        "no-handoff",
        "human-mode-no-reply",
        "human-mode-no-handoff-again",
    ],
)
def test_handoff_and_human_mode(
    rules: RuleSet,
    text: str,
    contact: dict[str, Any],
    rule: str | None,
    replies: list[str],
    mode: str | None,
    attention: bool,
) -> None:
    decision = decide(rules, text, **contact)
    assert (decision.rule, texts(decision), decision.mode) == (rule, replies, mode)
    assert decision.needs_attention is attention


def test_nothing_matched_needs_attention(tmp_path: Path) -> None:
    ruleset = write(tmp_path, "rules:\n  - {name: a, keywords: [hola], reply: b}\n", {})
    decision = decide(ruleset, "otra cosa")
    assert decision == Decision(None, (), "no rule matched", needs_attention=True)


def test_a_rule_s_labels_are_in_its_decision(tmp_path: Path) -> None:
    ruleset = write(
        tmp_path,
        "rules:\n"
        "  - {name: baja, keywords: [no promo], unlabel: promo}\n"
        "  - {name: promo, keywords: [promo], label: [promo, vip], reply: Suscrito}\n"
        "  - {name: hola, keywords: [hola], reply: Hola}\n",
        {},
    )
    subscribed = decide(ruleset, "PROMO")
    assert (texts(subscribed), subscribed.label, subscribed.unlabel) == (
        ["Suscrito"],
        ("promo", "vip"),
        (),
    )
    left = decide(ruleset, "no promo")
    assert (left.rule, texts(left), left.label, left.unlabel) == ("baja", [], (), ("promo",))
    assert (decide(ruleset, "hola").label, decide(ruleset, "hola").unlabel) == ((), ())


ATTENTION_RULES = """\
settings:
  timezone: America/Caracas
  hours: {mon-fri: "08:00-17:00"}
rules:
  - {name: cerrado, keywords: [hola], when: closed, reply: "Abrimos a las 8."}
  - {name: cerrado_tranquilo, keywords: [horario], when: closed, reply: "8 a 17.", attention: false}
  - {name: hola, keywords: [hola], reply: "Hola."}
  - {name: reclamo, keywords: [reclamo], reply: "Lo sentimos.", attention: true}
  - {name: asesor, keywords: [asesor], handoff: true, attention: true}
  - {name: precio, keywords: [precio], reply: "5 USD."}
  - {name: otro, fallback: true, reply: "No entendí."}
flows:
  pedido:
    trigger: {keywords: [pedido]}
    max_retries: 1
    steps:
      - {ask: "¿Cuántos?", accept: '^[0-9]+$', save: cantidad}
      - say: "Listo."
"""
SUNDAY = NOW + timedelta(days=6)  # closed all day


@pytest.mark.parametrize(
    ("text", "now", "rule", "attention"),
    [
        ("hola", SUNDAY, "cerrado", True),  # a `when: closed` rule answered
        ("horario", SUNDAY, "cerrado_tranquilo", False),  # ... unless it says attention: false
        ("hola", NOW, "hola", False),
        ("reclamo", NOW, "reclamo", True),
        ("asesor", NOW, "asesor", True),
        ("precio", NOW, "precio", False),
        ("xyz", NOW, "otro", True),  # the fallback answered
    ],
    ids=["closed", "closed-quiet", "open", "attention-true", "handoff", "plain", "fallback"],
)
def test_what_needs_attention(
    tmp_path: Path, text: str, now: datetime, rule: str, attention: bool
) -> None:
    ruleset = write(tmp_path, ATTENTION_RULES, {})
    decision = decide(ruleset, text, now)
    assert (decision.rule, decision.needs_attention) == (rule, attention)


def test_a_flow_that_gives_up_needs_attention(tmp_path: Path) -> None:
    ruleset = write(tmp_path, ATTENTION_RULES, {})
    started = decide(ruleset, "pedido")
    assert (started.rule, started.needs_attention) == ("flow:pedido", False)
    asked = decide(ruleset, "muchos", flow=started.flow)
    assert (asked.flow is not None, asked.needs_attention) == (True, False)
    gave_up = decide(ruleset, "no sé", flow=asked.flow)
    assert (gave_up.flow, gave_up.replies, gave_up.needs_attention) == (None, (), True)


# --- templates ----------------------------------------------------------------------------


def test_the_template_context(rules: RuleSet) -> None:
    decision = decide(rules, "¿Contexto?", fields={"nombre": "Ana"})
    assert texts(decision) == [
        "contexto|¿Contexto?|584121234567|14:00|Ana|584121234567|2026-11-23 10:00 -04|{}"
    ]


def test_the_context_has_what_the_checks_know() -> None:
    """`responder check` warns about variables outside CONTEXT_VARIABLES: both lists agree."""
    from responder.rules.checks import CONTEXT_VARIABLES, MESSAGE_FIELDS

    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    context = engine._context(
        InboundMessage("584121234567", "hola", now), Contact("5841"), now, None
    )
    assert sorted(context) == sorted(CONTEXT_VARIABLES)
    assert sorted(context["message"]) == sorted(MESSAGE_FIELDS)


def test_pattern_groups_reach_the_template(rules: RuleSet) -> None:
    decision = decide(rules, "¿Cuál es el PRECIO DEL CAFÉ?")
    assert texts(decision) == ["El del cuesta 5 USD."]  # the first `precio <word>` wins
    decision = decide(rules, "¿PRECIO CAFÉ?")
    assert texts(decision) == ["El cafe cuesta 5 USD."]  # groups hold the normalised text
    assert decision.explanation == "pattern 'precio (?P<producto>\\w+)'"


@pytest.mark.parametrize(
    ("text", "rule", "error"),
    [
        ("mro", "internals", "refused by the sandbox: "),
        ("globales", "globales", "refused by the sandbox: "),
        ("division", "division", "ZeroDivisionError: "),
    ],
    ids=["class-mro", "function-globals", "raises-at-render"],
)
def test_a_failing_template_sets_error_and_sends_nothing(
    rules: RuleSet, text: str, rule: str, error: str
) -> None:
    decision = decide(rules, text)
    assert (decision.rule, decision.replies) == (rule, ())
    assert decision.error is not None and decision.error.startswith(f"rule {rule}: {error}")


def test_the_sandbox_hides_python_internals(rules: RuleSet) -> None:
    decision = decide(rules, "clase")
    assert (texts(decision), decision.error) == (["xy"], None)


def test_a_reply_that_renders_empty_sends_nothing(rules: RuleSet) -> None:
    decision = decide(rules, "vacio")
    assert (decision.rule, decision.replies, decision.error) == ("vacio", (), None)


# --- replies as SMS -------------------------------------------------------------------------


def test_long_replies_are_split_into_sms_in_order(rules: RuleSet) -> None:
    decision = decide(rules, "largo")
    parts = texts(decision)
    assert len(parts) == 3
    assert all(len(part) <= engine.SMS_LIMIT for part in parts)
    assert " ".join(parts) == smart_encode(LONG_TEXT)
    assert [reply.segments for reply in decision.replies] == [1, 1, 1]


def test_via_is_carried_on_every_reply(rules: RuleSet) -> None:
    assert decide(rules, "urgente").replies == (Reply("Enviado por MasSMS.", 1, "massms"),)


@pytest.mark.parametrize(
    ("smart", "expected"),
    # é is in the GSM-7 alphabet, á is not.
    [(True, Reply("Sabado: café y té.", 1)), (False, Reply("Sábado: café y té.", 1))],
    ids=["smart-encoding", "as-written"],
)
def test_prepare(smart: bool, expected: Reply) -> None:
    assert engine.prepare("Sábado: café y té.", smart).replies == (expected,)


def test_without_smart_encoding_accents_cost_ucs2_segments(tmp_path: Path) -> None:
    reply = "Sí, abrimos mañana a las 8:00 en punto. " * 2  # 80 characters with accents
    ruleset = write(
        tmp_path,
        f"""\
        settings: {{smart_encoding: false}}
        rules:
          - {{name: a, keywords: [a], reply: "{reply}"}}
        """,
        {},
    )
    (only,) = decide(ruleset, "a").replies
    assert (only.text, only.segments) == (reply.strip(), 2)


def test_the_explanation_is_kept(rules: RuleSet) -> None:
    assert decide(rules, "Un humano por favor").explanation == "word 'humano'"
    assert decide(rules, "???").explanation == "fallback"


def test_a_lone_surrogate_in_a_reply_is_replaced() -> None:
    """JSON (`/api/simulate`) can carry "\\ud800"; it can be neither counted nor sent."""
    assert engine.prepare("hola \ud800", True).replies == (Reply("hola ?", 1),)


ECHO = """\
settings: {timezone: America/Caracas, opt_out: false, opt_in: false}
rules:
  - name: eco
    fallback: true
    reply: "{{ message.text }} {{ contact.nombre }} {{ match }} {{ now.strftime('%A') }}"
"""


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return write(tmp_path_factory.mktemp("echo"), ECHO, {})


@settings(max_examples=200, deadline=None)
@given(text=any_text, name=any_text)
@example(text="hola \ud800", name="\udfff")  # random text seldom holds a lone surrogate
def test_echoing_any_text_never_raises(echo: RuleSet, text: str, name: str) -> None:
    decision = decide(echo, text, fields={"nombre": name})
    assert decision.rule == "eco" and decision.error is None
    assert decision.replies  # the weekday alone is never empty: something always goes out
    assert all(len(reply.text) <= engine.SMS_LIMIT for reply in decision.replies)


# --- what one message may cost -------------------------------------------------------------

COST = """\
settings: {timezone: America/Caracas, reply_limit: {count: 5, per: 1h}}
rules:
  - name: eco
    pattern: 'eco (?P<palabra>\\w+)'
    reply: "{{ match.palabra }}"
  - name: largo
    keywords: [largo]
    reply: "{{ message.text }}"
  - name: cuenta
    keywords: [cuenta]
    reply: "{{ message.text | length }}"
  - name: dos
    keywords: [dos]
    reply: "{{ 'palabra ' * 38 }}"
  - name: horario
    keywords: [horario]
    reply: "Abrimos a las 8."
  - name: otro
    fallback: true
    reply: "No entendí."
"""


@pytest.fixture(scope="module")
def cost(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return write(tmp_path_factory.mktemp("cost"), COST, {})


def sms_of(decision: Decision) -> int:
    return sum(reply.segments for reply in decision.replies)


def test_template_output_loses_control_characters_and_says_so(cost: RuleSet) -> None:
    decision = decide(cost, "largo\x0c de\x00 prueba\r\nfin")
    assert texts(decision) == ["largo de prueba\nfin"]
    assert decision.warnings == ("control character U+000C removed from the reply",)


def test_a_long_reply_is_cut_to_max_reply_sms(cost: RuleSet) -> None:
    message = "largo " + "palabra " * 180  # 1,446 characters: ten SMS as it stands
    decision = decide(cost, message)
    assert sms_of(decision) == 3
    assert decision.replies[-1].text.endswith("palabra...")
    assert " ".join(texts(decision)).startswith("largo palabra palabra")
    assert decision.warnings == ("reply of 1445 characters cut to 3 SMS (settings.max_reply_sms)",)


def test_max_reply_sms_is_a_setting(tmp_path: Path) -> None:
    ruleset = write(
        tmp_path,
        """\
        settings: {max_reply_sms: 1}
        rules:
          - {name: eco, fallback: true, reply: "{{ message.text }}"}
        """,
        {},
    )
    assert ruleset.settings.max_reply_sms == 1
    assert sms_of(decide(ruleset, "palabra " * 100)) == 1


def test_named_groups_and_the_message_text_reaching_templates_are_bounded(
    cost: RuleSet,
) -> None:
    assert texts(decide(cost, "eco " + "x" * 1000)) == ["x" * engine.MAX_GROUP_TEXT]
    assert texts(decide(cost, "cuenta " + "y" * 5000)) == [str(engine.MAX_MATCHED_TEXT)]


def test_only_the_beginning_of_a_long_message_is_matched(cost: RuleSet) -> None:
    filler = "bla " * 500  # 2,000 characters
    assert decide(cost, "horario " + filler).rule == "horario"
    assert decide(cost, filler + "horario").rule == "otro"


def replies_at(*costs: int) -> tuple[tuple[datetime, str], ...]:
    """Earlier auto-replies of the last minutes, one 160-character part per SMS."""
    earlier = NOW - timedelta(minutes=10)
    return tuple((earlier, "p" * 160) for cost in costs for _ in range(cost))


@pytest.mark.parametrize(
    ("text", "earlier", "answered"),
    [
        ("horario", replies_at(1, 1, 1, 1), True),  # 4 SMS + 1 = 5
        ("horario", replies_at(1, 1, 1, 1, 1), False),  # 5 SMS + 1
        ("dos", replies_at(2), True),  # 2 + 2
        ("dos", replies_at(2, 2), False),  # two replies so far, but 4 SMS + 2 > 5
        ("horario", replies_at(2, 2), True),  # 4 SMS + 1 = 5
    ],
    ids=["fifth-sms", "sixth-sms", "second-long", "third-long", "short-after-long"],
)
def test_the_reply_limit_counts_sms_not_replies(
    cost: RuleSet, text: str, earlier: tuple[tuple[datetime, str], ...], answered: bool
) -> None:
    decision = decide(cost, text, recent_replies=earlier)
    assert bool(decision.replies) is answered
    if not answered:
        assert decision.suppressed == "reply_limit"
        assert "reply limit reached (5 SMS per 1h" in decision.explanation


def test_a_reply_never_costs_more_than_the_reply_limit_allows(tmp_path: Path) -> None:
    ruleset = write(
        tmp_path,
        """\
        settings: {reply_limit: {count: 2, per: 1h}}
        rules:
          - {name: eco, fallback: true, reply: "{{ message.text }}"}
        """,
        {},
    )
    assert sms_of(decide(ruleset, "palabra " * 100)) == 2
