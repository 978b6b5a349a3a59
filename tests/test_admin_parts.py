"""The admin's pure parts: sign-in limiter, token check, charts, labels, balances."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from responder.providers.base import OutboundSMS, Provider, ProviderError, SendResult
from responder.rules.conditions import Days, Hours, Not
from responder.rules.model import Rule
from responder.search_query import phone_fragments
from responder.web import charts, views
from responder.web.balances import ask_balances
from responder.web.sessions import token_matches

CARACAS = ZoneInfo("America/Caracas")


@pytest.mark.parametrize(
    ("submitted", "ok"), [("tok", True), (" tok\n", True), ("to", False), ("tök", False)]
)
def test_token_matches(submitted: str, ok: bool) -> None:
    assert token_matches(submitted, "tok") is ok
    assert not token_matches(submitted, "")


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (20, 20), (51, 100)]
)
def test_nice_ceiling(value: int, ceiling: int) -> None:
    assert charts.nice_ceiling(value) == ceiling


def test_daily_bars_geometry() -> None:
    days = [(f"{d:02d}/11", d, 2 * d) for d in range(10, 24)]
    chart = charts.daily_bars(days, width=640, height=200)
    assert len(chart.bars) == 28
    tallest = max(chart.bars, key=lambda b: b.value)
    assert tallest.value == 46 and tallest.title == "23/11: 46 enviados"
    plot_bottom = 200 - 22
    assert all(b.y + b.height == pytest.approx(plot_bottom, abs=0.2) for b in chart.bars)
    assert all(b.x >= 0 and b.x + b.width <= 640 for b in chart.bars)
    assert chart.labels[-1].text == "23/11"  # today is always labelled
    assert [g.text for g in chart.grid] == ["0", "25", "50"]
    empty = charts.daily_bars([("01/01", 0, 0)])
    assert empty.bars[0].height == 0


def test_horizontal_and_stacked_bars() -> None:
    rows = charts.horizontal_bars([("horario", 10), ("precio", 5)], width=640)
    assert rows.bars[0].width == pytest.approx(2 * rows.bars[1].width)
    assert [lb.text for lb in rows.labels] == ["horario", "10", "precio", "5"]
    stacked = charts.stacked_bar([("a", 3, "x"), ("b", 0, "y"), ("c", 1, "z")], width=400)
    assert [(b.series, b.width) for b in stacked.bars] == [("x", 300), ("z", 100)]
    assert stacked.bars[1].x == 300 and stacked.bars[1].title == "c: 1 (25 %)"


NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 10:00 in Caracas


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("2026-11-23T13:05:00.000000Z", "09:05"),
        ("2026-11-23T03:59:00.000000Z", "22/11 23:59"),  # still yesterday in Caracas
        ("2025-12-31T12:00:00.000000Z", "31/12/2025"),
        ("", ""),
    ],
)
def test_local_time(stored: str, shown: str) -> None:
    moment = datetime.fromisoformat(stored) if stored else None
    assert views.local_time(moment, CARACAS, NOW) == shown


@pytest.mark.parametrize(
    ("query", "fragments"),
    [
        ("0412 123 4567", ["04121234567", "4121234567", "584121234567"]),
        ("+58 412-123", ["58412123"]),
        ("0412", ["0412", "412"]),
        ("41", []),
        ("precio 100", []),
        ("hola", []),
    ],
)
def test_phone_fragments(query: str, fragments: list[str]) -> None:
    assert phone_fragments(query, "VE") == fragments


def test_daily_counts_use_the_shop_time_zone() -> None:
    days = views.local_days(date(2026, 11, 23), 2)
    assert days == [date(2026, 11, 22), date(2026, 11, 23)]
    hourly = [
        (datetime(2026, 11, 23, 3, tzinfo=UTC), "in", 2),  # 23:00 on the 22nd in Caracas
        (datetime(2026, 11, 23, 4, tzinfo=UTC), "in", 1),  # 00:00 on the 23rd
        (datetime(2026, 11, 23, 4, tzinfo=UTC), "out", 5),
        (datetime(2026, 11, 20, 12, tzinfo=UTC), "in", 9),  # outside the days asked for
    ]
    assert views.daily_counts(hourly, CARACAS, days) == [("22/11", 2, 0), ("23/11", 1, 5)]


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        (Rule("a", 0, 1, keywords=("horario", "a que hora"), fuzzy=1),
         "«horario», «a que hora» (palabra completa, admite 1 error de tipeo)"),
        (Rule("b", 0, 1, keywords=("hola",), mode="exact"), "«hola» (mensaje exacto)"),
        (Rule("c", 0, 1, fallback=True), "si ninguna otra regla coincide"),
        (Rule("d", 0, 1, when=Not(Days(frozenset({0}), "mon"))),
         "cualquier mensaje mientras se cumpla la condición"),
    ],
)  # fmt: skip
def test_rule_matching_in_words(rule: Rule, words: str) -> None:
    assert views.rule_matching(rule) == words


def test_rule_conditions_describe_themselves() -> None:
    when = Not(Hours(8 * 60, 17 * 60, "08:00-17:00"))
    assert when.describe() == "not (hours 08:00-17:00)"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(45, "45 s"), (1800, "30 min"), (3600, "1 h"), (5400, "1 h 30 min"), (172800, "2 d")],
)
def test_duration(seconds: float, words: str) -> None:
    assert views.duration(seconds) == words


def test_labels() -> None:
    assert views.show_phone("584121234567") == "+58 412-1234567"
    assert views.show_phone("999") == "+999"
    assert views.origin_label("auto", "horario") == "bot · regla horario"
    assert views.origin_label("auto", "opt_out") == "bot · regla baja (BAJA)"
    assert views.origin_label("agent", None) == "agente"
    assert views.contact_name({"nombre": "Ana"}) == "Ana"
    assert views.contact_name({"name": 5}) == "5"
    assert views.contact_name({}) == ""
    long = Rule("x", 0, 1, reply_source="palabra " * 40)
    assert len(views.reply_preview(long)) == 120 and views.reply_preview(long).endswith("…")
    assert views.reply_preview(Rule("y", 0, 1, template="precio.txt")) == "plantilla precio.txt"


class CountingProvider(Provider):
    name = "counting"

    def __init__(self, answer: float | Exception, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.calls = 0

    async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
        raise NotImplementedError

    async def balance(self) -> float:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_provider_answers_errors_and_silence_become_balances() -> None:
    providers: dict[str, Provider] = {
        "ok": CountingProvider(907.0),
        "bad": CountingProvider(ProviderError("Autenticación fallida")),
        "bug": CountingProvider(ValueError("boom")),
        "slow": CountingProvider(1.0, delay=5),
        "sandbox": CountingProvider(float("inf")),
    }
    found = await ask_balances(providers, timeout=0.2)
    assert [(b.provider, b.credits, b.error) for b in found[:4]] == [
        ("ok", 907.0, None),
        ("bad", None, "Autenticación fallida"),
        ("bug", None, "ValueError: boom"),
        ("slow", None, "sin respuesta en 0.2 s"),
    ]
    assert found[4].unlimited


def test_row_markup_keeps_the_most_recently_used() -> None:
    from markupsafe import Markup

    from responder.web.admin.core import RowMarkup

    kept = RowMarkup(size=2)
    kept.put(b"a", Markup("<li>a</li>"))
    kept.put(b"b", Markup("<li>b</li>"))
    assert kept.get(b"a") == "<li>a</li>"  # used: kept over b
    kept.put(b"c", Markup("<li>c</li>"))
    assert (kept.get(b"a"), kept.get(b"b"), kept.get(b"c")) == ("<li>a</li>", None, "<li>c</li>")
