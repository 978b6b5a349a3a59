"""Which rule answers a message: modes, typos, conditions, file order, and the token index."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responder import engine
from responder.rules.conditions import Facts
from responder.rules.matcher import Match, Matcher, rule_match
from responder.rules.schema import RuleSet, load_rules
from responder.text import normalize
from tests.conftest import MONDAY_10AM

ROOT = Path(__file__).resolve().parent.parent
CARACAS = "America/Caracas"
MONDAY_10 = "2026-11-23 10:00"  # a Monday, inside business hours
PHONE = "584121234567"

# Any str, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters(exclude_categories=()))


def load(folder: Path, rules: str, templates: dict[str, str] | None = None) -> RuleSet:
    """A rules file made of `rules` (the items under `rules:`), loaded without problems."""
    (folder / "templates").mkdir(exist_ok=True)
    for name, body in (templates or {}).items():
        (folder / "templates" / name).write_text(body, encoding="utf-8")
    path = folder / "rules.yaml"
    body = textwrap.indent(textwrap.dedent(rules), "  ")
    path.write_text(f"settings:\n  timezone: {CARACAS}\nrules:\n{body}", encoding="utf-8")
    ruleset = load_rules(path, folder / "templates", MONDAY_10AM)
    assert ruleset.errors == (), [p.format("rules.yaml") for p in ruleset.errors]
    return ruleset


def local(at: str, ruleset: RuleSet) -> datetime:
    return datetime.fromisoformat(at).replace(tzinfo=ruleset.settings.timezone)


def answer(
    ruleset: RuleSet, text: str, at: str = MONDAY_10, **contact: Any
) -> tuple[str | None, str | None]:
    """(rule name, whole reply text) that the engine decides for `text` at local time `at`."""
    now = local(at, ruleset)
    person = engine.Contact(PHONE, **{"first_contact": False, **contact})
    decision = engine.decide(ruleset, engine.InboundMessage(PHONE, text, now), person, now)
    assert decision.error is None, decision.error
    reply = " ".join(r.text for r in decision.replies) if decision.replies else None
    return decision.rule, reply


def facts(ruleset: RuleSet, at: str = MONDAY_10, **fields: Any) -> Facts:
    return Facts(local(at, ruleset), False, fields)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rules")


# --- modes ---------------------------------------------------------------------------------

MODES = r"""
- name: horario
  keywords: [horario, "a que hora"]
  reply: "Abrimos a las 8."
- name: precio
  keywords: [precio]
  match: first
  reply: "Escriba PRECIO y el producto."
- name: saludo
  keywords: [hola, buenos dias]
  match: exact
  reply: "¡Hola!"
- name: gracias
  keywords: [graci]
  match: contains
  reply: "De nada."
- name: pedido
  pattern: 'quiero (?P<cantidad>\d+) (?P<producto>\w+)'
  reply: "{{ match.cantidad }} x {{ match.producto }}"
- name: like
  keywords: ["👍"]
  reply: "😊"
"""


@pytest.mark.parametrize(
    ("text", "rule", "reply"),
    [
        ("¿A QUÉ HORA abren?", "horario", "Abrimos a las 8."),
        ("Quisiera saber el HORARIO, por favor", "horario", "Abrimos a las 8."),
        ("a  que\thora", "horario", "Abrimos a las 8."),
        ("horarios", None, None),
        ("ahorario", None, None),
        ("precio café", "precio", "Escriba PRECIO y el producto."),
        ("¿Precio?", "precio", "Escriba PRECIO y el producto."),
        ("cual es el precio", None, None),
        ("Hola!!", "saludo", "¡Hola!"),
        ("BUENOS DÍAS.", "saludo", "¡Hola!"),
        ("hola, buenos dias", None, None),
        ("Muchas gracias", "gracias", "De nada."),
        ("agraciado", "gracias", "De nada."),
        ("Quiero 3 tortas", "pedido", "3 x tortas"),
        ("QUIERO 2 CAFÉS!", "pedido", "2 x cafes"),
        ("quiero tortas", None, None),
        ("👍", "like", "😊"),
        ("ok👍", None, None),
        ("ok 👍", "like", "😊"),
        ("", None, None),
    ],
    ids=[
        "word-phrase-accents-case-punctuation",
        "word-inside-sentence",
        "word-repeated-spaces",
        "word-not-inside-longer-word",
        "word-not-a-suffix",
        "first-starts-with",
        "first-with-punctuation",
        "first-not-at-start",
        "exact-whole-message",
        "exact-phrase",
        "exact-not-with-more-words",
        "contains-inside-word",
        "contains-anywhere",
        "pattern-groups-into-reply",
        "pattern-sees-normalised-text",
        "pattern-no-match",
        "emoji-keyword",
        "emoji-glued-to-word-is-not-a-word",
        "emoji-as-word",
        "empty-message",
    ],
)
def test_modes(folder: Path, text: str, rule: str | None, reply: str | None) -> None:
    assert answer(load(folder, MODES), text) == (rule, reply)


# --- typos -----------------------------------------------------------------------------------

FUZZY = """
- name: horario
  keywords: [horario]
  fuzzy: 1
  reply: "8 a 5"
- name: direccion
  keywords: [direccion, "como llego"]
  fuzzy: 2
  reply: "Av. Principal"
- name: si
  keywords: [si, sol]
  fuzzy: 1
  reply: "Confirmado"
- name: bueno
  keywords: [bueno]
  match: exact
  fuzzy: 1
  reply: "exact"
- name: menu
  keywords: [menu]
  match: first
  fuzzy: 1
  reply: "first"
"""


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("horaro", "horario"),
        ("hoario", "horario"),
        ("cual es el horarios?", "horario"),
        ("HORÁRIO", "horario"),
        ("hroario", None),
        ("hrari", None),
        ("direcsion", "direccion"),
        ("la dirrecsion por favor", "direccion"),
        ("como yego", "direccion"),
        ("si", "si"),
        ("Sí", "si"),
        ("no", None),
        ("sii", None),
        ("sal", None),
        ("buenoo", "bueno"),
        ("bueno gracias", None),
        ("menus por favor", "menu"),
        ("ver el menu", None),
    ],
    ids=[
        "missing-letter",
        "missing-letter-2",
        "extra-letter-in-sentence",
        "accent-is-not-a-typo",
        "swap-is-two-typos",
        "two-typos-over-fuzzy-1",
        "one-of-two",
        "two-of-two",
        "phrase-two-typos",
        "short-exact",
        "short-accent",
        "short-never-fuzzy-si-no",
        "short-never-fuzzy-extra",
        "three-letters-never-fuzzy",
        "exact-with-typo",
        "exact-typo-still-whole-message",
        "first-with-typo",
        "first-not-at-start",
    ],
)
def test_fuzzy(folder: Path, text: str, rule: str | None) -> None:
    assert answer(load(folder, FUZZY), text)[0] == rule


@pytest.mark.parametrize(
    ("text", "how"),
    [
        ("horaro", "word 'horario' ~ 'horaro' (fuzzy distance 1)"),
        ("horario", "word 'horario'"),
        ("buenoo", "exact 'bueno' ~ 'buenoo' (fuzzy distance 1)"),
        ("menu", "first 'menu'"),
    ],
    ids=["fuzzy", "literal", "exact-fuzzy", "first"],
)
def test_the_explanation_says_how_it_matched(folder: Path, text: str, how: str) -> None:
    ruleset = load(folder, FUZZY)
    found = ruleset.matcher.match(normalize(text), facts(ruleset))
    assert found is not None and found.how == how


# --- conditions ---------------------------------------------------------------------------

CONDITIONS = """
- name: semana
  keywords: [semana]
  when: {days: mon-fri}
  reply: "entre semana"
- name: finde
  keywords: [finde]
  when: {days: "sáb,dom"}
  reply: "fin de semana"
- name: oficina
  keywords: [oficina]
  when: {days: lun-vie, hours: "08:00-17:00"}
  reply: "abierta"
- name: noche
  keywords: [noche]
  when: {hours: "22:00-06:00"}
  reply: "de noche"
- name: nuevo
  keywords: [info]
  when: {first_contact: true}
  reply: "bienvenido"
- name: conocido
  keywords: [info]
  reply: "otra vez por aqui"
- name: vip
  keywords: [pedido]
  when: {field: {name: cliente, equals: VIP}}
  reply: "atencion preferente"
- name: con_nombre
  keywords: [pedido]
  when: {field: {name: nombre}}
  reply: "hola {{ contact.nombre }}"
- name: cualquiera
  keywords: [pedido]
  reply: "pedido recibido"
- name: raro
  keywords: [raro]
  when: {any: [{days: sun}, {all: [{days: mon}, {hours: "09:00-10:00"}]}]}
  reply: "raro"
- name: cerrado
  when: {not: {days: mon-fri, hours: "08:00-17:00"}}
  reply: "cerrado"
- name: otro
  fallback: true
  reply: "no entendi"
"""
SATURDAY_10 = "2026-11-28 10:00"
SUNDAY_10 = "2026-11-29 10:00"


@pytest.mark.parametrize(
    ("text", "at", "contact", "rule", "reply"),
    [
        ("semana", MONDAY_10, {}, "semana", "entre semana"),
        ("semana", "2026-11-27 23:59", {}, "semana", "entre semana"),
        ("semana", SATURDAY_10, {}, "cerrado", "cerrado"),
        ("finde", SUNDAY_10, {}, "finde", "fin de semana"),
        ("finde", SATURDAY_10, {}, "finde", "fin de semana"),
        ("finde", MONDAY_10, {}, "otro", "no entendi"),
        ("oficina", "2026-11-23 08:00", {}, "oficina", "abierta"),
        ("oficina", "2026-11-23 16:59", {}, "oficina", "abierta"),
        ("oficina", "2026-11-23 17:00", {}, "cerrado", "cerrado"),
        ("oficina", SATURDAY_10, {}, "cerrado", "cerrado"),
        ("noche", "2026-11-23 23:30", {}, "noche", "de noche"),
        ("noche", "2026-11-24 05:59", {}, "noche", "de noche"),
        ("noche", "2026-11-24 06:00", {}, "cerrado", "cerrado"),
        ("noche", "2026-11-23 22:00", {}, "noche", "de noche"),
        ("noche", "2026-11-23 12:00", {}, "otro", "no entendi"),
        ("info", MONDAY_10, {"first_contact": True}, "nuevo", "bienvenido"),
        ("info", MONDAY_10, {}, "conocido", "otra vez por aqui"),
        ("pedido", MONDAY_10, {"fields": {"cliente": "vip "}}, "vip", "atencion preferente"),
        (
            "pedido",
            MONDAY_10,
            {"fields": {"cliente": "normal", "nombre": "Ana"}},
            "con_nombre",
            "hola Ana",
        ),
        ("pedido", MONDAY_10, {"fields": {"nombre": ""}}, "cualquiera", "pedido recibido"),
        ("raro", SUNDAY_10, {}, "raro", "raro"),
        ("raro", "2026-11-23 09:30", {}, "raro", "raro"),
        ("raro", MONDAY_10, {}, "otro", "no entendi"),
        ("hola", "2026-11-23 20:00", {}, "cerrado", "cerrado"),
        ("hola", MONDAY_10, {}, "otro", "no entendi"),
    ],
    ids=[
        "days-weekday",
        "days-friday-night",
        "days-saturday",
        "spanish-days-sunday",
        "spanish-days-saturday",
        "spanish-days-not-monday",
        "hours-start-included",
        "hours-last-minute",
        "hours-end-excluded",
        "hours-but-not-days",
        "overnight-before-midnight",
        "overnight-after-midnight",
        "overnight-end-excluded",
        "overnight-start",
        "overnight-not-at-noon",
        "first-contact",
        "not-first-contact-next-rule",
        "field-equals-ignores-case-and-spaces",
        "field-is-set",
        "field-empty-is-not-set",
        "any-sunday",
        "any-all-monday-9",
        "any-none",
        "not-condition-only-rule-out-of-hours",
        "not-condition-in-hours-falls-back",
    ],
)
def test_conditions(
    folder: Path, text: str, at: str, contact: dict[str, Any], rule: str, reply: str
) -> None:
    assert answer(load(folder, CONDITIONS), text, at, **contact) == (rule, reply)


def test_conditions_use_the_rules_timezone(folder: Path) -> None:
    """10:00 UTC on a Monday is 06:00 in Caracas: the office is closed."""
    ruleset = load(folder, CONDITIONS)
    now = datetime.fromisoformat("2026-11-23 10:00+00:00")
    msg = engine.InboundMessage(PHONE, "oficina", now)
    assert engine.decide(ruleset, msg, engine.Contact(PHONE), now).rule == "cerrado"


def test_the_explanation_names_the_condition(folder: Path) -> None:
    ruleset = load(folder, CONDITIONS)
    found = ruleset.matcher.match("hola", facts(ruleset, "2026-11-23 20:00"))
    assert found is not None
    assert found.how == ("matches every message, when not (days mon-fri and hours 08:00-17:00)")


# --- order and fallback ----------------------------------------------------------------------

ORDER = """
- name: otro
  fallback: true
  reply: "no entendi"
- name: precio
  keywords: [precio]
  reply: "precios"
- name: horario
  keywords: [horario, abren]
  reply: "horario"
- name: tarde
  fallback: true
  when: {hours: "12:00-18:00"}
  reply: "tarde"
- name: horario_tarde
  keywords: [horario]
  when: {hours: "12:00-18:00"}
  reply: "nunca"
- name: catalogo
  keywords: [catalogo]
  match: contains
  reply: "catalogo"
"""


@pytest.mark.parametrize(
    ("text", "at", "rule"),
    [
        ("horario y precio", MONDAY_10, "precio"),
        ("abren? y el precio", MONDAY_10, "precio"),
        ("horario", "2026-11-23 13:00", "horario"),
        ("nada que ver", MONDAY_10, "otro"),
        ("nada que ver", "2026-11-23 13:00", "otro"),
        ("el catalogo y el horario", MONDAY_10, "horario"),
        ("el catalogo", MONDAY_10, "catalogo"),
    ],
    ids=[
        "first-in-file-wins",
        "file-order-not-message-order",
        "earlier-rule-beats-later-condition",
        "fallback-first-in-file-answers-last",
        "first-fallback-in-file-wins",
        "contains-rule-later-in-file",
        "contains-rule-alone",
    ],
)
def test_order_and_fallback(folder: Path, text: str, at: str, rule: str) -> None:
    assert answer(load(folder, ORDER), text, at)[0] == rule


def test_a_condition_only_rule_placed_first_answers_everything_while_it_holds(
    folder: Path,
) -> None:
    ruleset = load(
        folder,
        """
        - {name: cerrado, when: {hours: "17:00-08:00"}, reply: "cerrado"}
        - {name: horario, keywords: [horario], reply: "8 a 5"}
        """,
    )
    assert answer(ruleset, "horario", "2026-11-23 20:00")[0] == "cerrado"
    assert answer(ruleset, "horario", MONDAY_10)[0] == "horario"
    assert answer(ruleset, "otra cosa", MONDAY_10)[0] is None


# --- the index agrees with reading every rule in order -----------------------------------


def scan(ruleset: RuleSet, text: str, at: Facts) -> Match | None:
    """The definition of matching, without the index: every rule in file order."""
    tokens = text.split()
    ordinary = [r for r in ruleset.rules if not r.fallback]
    fallbacks = [r for r in ruleset.rules if r.fallback]
    for rule in [*ordinary, *fallbacks]:
        if found := rule_match(rule, text, tokens, at):
            return found
    return None


INDEXED = """
- {name: horario, keywords: [horario, "a que hora"], fuzzy: 1, reply: a}
- {name: direccion, keywords: [direccion, "como llego"], fuzzy: 2, reply: b}
- {name: menu, keywords: [menu, carta], match: first, fuzzy: 1, reply: c}
- {name: saludo, keywords: [hola, "buenos dias"], match: exact, fuzzy: 1, reply: d}
- {name: si, keywords: [si, no], reply: e}
- {name: precio, keywords: [precio], fuzzy: 3, reply: f}
- {name: pedido, pattern: 'quiero (?P<n>\\d+)', reply: g}
- {name: gracia, keywords: [graci], match: contains, reply: h}
- {name: tarde, when: {hours: "12:00-18:00"}, reply: i}
- {name: otro, fallback: true, reply: j}
"""
VOCABULARY = [
    "horario", "a", "que", "hora", "direccion", "como", "llego", "menu", "carta", "hola",
    "buenos", "dias", "si", "no", "precio", "quiero", "3", "gracias", "el", "de",
]  # fmt: skip


@st.composite
def near_messages(draw: st.DrawFn) -> str:
    """Messages of keyword-ish words, some with typos (deleted, changed, added letters)."""
    words = draw(st.lists(st.sampled_from(VOCABULARY), max_size=6))
    result = []
    for word in words:
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(word)))
            letter = draw(st.sampled_from("aeiorsx"))
            word = draw(
                st.sampled_from([word[:i] + word[i + 1 :], word[:i] + letter + word[i + 1 :]])
                | st.just(word[:i] + letter + word[i:])
            )
        result.append(word)
    return " ".join(result)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    return load(tmp_path_factory.mktemp("indexed"), INDEXED)


@settings(max_examples=300, deadline=None)
@given(text=near_messages(), hour=st.integers(0, 23))
def test_the_index_finds_what_reading_every_rule_finds(
    indexed: RuleSet, text: str, hour: int
) -> None:
    ruleset = indexed
    at = facts(ruleset, f"2026-11-23 {hour:02d}:00")
    text = normalize(text)
    expected = scan(ruleset, text, at)
    found = ruleset.matcher.match(text, at)
    assert (found and found.rule.name) == (expected and expected.rule.name)
    assert (found and found.how) == (expected and expected.how)


def test_candidates_come_back_in_file_order(folder: Path) -> None:
    ruleset = load(folder, ORDER)
    matcher: Matcher = ruleset.matcher
    positions = matcher.candidates(["catalogo", "abren", "precio", "horario"])
    assert positions == sorted(positions)
    assert [matcher.rules[p].name for p in positions] == [
        "precio",
        "horario",
        "horario_tarde",
        "catalogo",
    ]


# --- properties on the bundled rules --------------------------------------------------------


@pytest.fixture(scope="module")
def bundled() -> RuleSet:
    ruleset = load_rules(ROOT / "rules.yaml", ROOT / "templates", MONDAY_10AM)
    assert ruleset.errors == ()
    return ruleset


@given(any_text)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=300, deadline=None)
@given(text=any_text, minutes=st.integers(0, 7 * 24 * 60 - 1))
def test_matching_never_raises(bundled: RuleSet, text: str, minutes: int) -> None:
    at = Facts(local("2026-11-23 00:00", bundled) + timedelta(minutes=minutes), False, {})
    bundled.matcher.match(text, at)
    found = bundled.matcher.match(normalize(text), at)
    assert found is not None  # the bundled rules end with a fallback


@settings(max_examples=300, deadline=None)
@given(
    text=any_text,
    first_contact=st.booleans(),
    mode=st.sampled_from(["bot", "human"]),
    opted_out=st.booleans(),
    name=any_text,
)
def test_decide_never_raises(
    bundled: RuleSet, text: str, first_contact: bool, mode: str, opted_out: bool, name: str
) -> None:
    now = local(MONDAY_10, bundled)
    contact = engine.Contact(PHONE, mode, opted_out, {"nombre": name}, first_contact)
    decision = engine.decide(bundled, engine.InboundMessage(PHONE, text, now), contact, now)
    assert decision.error is None
    assert all(len(reply.text) <= engine.SMS_LIMIT for reply in decision.replies)
