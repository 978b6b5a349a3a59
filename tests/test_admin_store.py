"""The store's reads for the admin: inbox search, read marks and dashboard aggregates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from responder.engine import Decision, InboundMessage, Reply
from responder.store.models import InboundJob, SendOutcome, StatusUpdate
from responder.store.sqlite import SQLiteStore
from tests.conftest import Clock

ANA, LUIS, EVA = "584121234567", "584241234567", "584161112233"


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "admin.db", clock)
    await store.open()
    yield store
    await store.close()


async def inbound(
    store: SQLiteStore, clock: Clock, phone: str, text: str, rule: str | None = "r", **kw: object
) -> None:
    replies = (Reply(f"re: {text}", 1, "sandbox"),) if rule else ()
    decision = Decision(rule, replies, "test", needs_attention=rule is None, **kw)  # type: ignore[arg-type]
    await store.receive_inbound(
        InboundJob(InboundMessage(phone, text, clock()), lambda c: decision)
    )


@pytest.fixture
async def filled(store: SQLiteStore, clock: Clock) -> SQLiteStore:
    await inbound(store, clock, ANA, "precio del 100% algodón", "precio")
    clock.advance(60)
    await inbound(store, clock, LUIS, "quiero un asesor", "asesor", mode="human")
    clock.advance(60)
    await inbound(store, clock, EVA, "zzz_qq", None)
    await store.update_fields(ANA, {"nombre": "Ana María"})
    return store


@pytest.mark.parametrize(
    ("text", "phones", "found"),
    [
        ("algodón", [], [ANA]),
        ("ASESOR", [], [LUIS]),  # ASCII letters: any case
        ("re: quiero", [], [LUIS]),  # replies are messages too
        ("Ana María", [], [ANA]),  # contact fields
        ("100%", [], [ANA]),
        ("%", [], [ANA]),  # a literal percent, not a wildcard
        ("_", [], [EVA]),  # a literal underscore
        ("0424", ["0424", "424"], [LUIS]),
        ("1112233", ["1112233"], [EVA]),
        ("nada de esto", [], []),
    ],
)
async def test_search_by_text_fields_or_number(
    filled: SQLiteStore, text: str, phones: list[str], found: list[str]
) -> None:
    assert [c.phone for c in await filled.search_conversations(text, phones)] == found


async def test_search_keeps_filters_and_order(filled: SQLiteStore) -> None:
    everyone = await filled.search_conversations("re", [])
    assert [c.phone for c in everyone] == [LUIS, ANA]  # newest first; EVA got no reply
    assert [c.phone for c in await filled.search_conversations("re", [], mode="human")] == [LUIS]
    attention = await filled.search_conversations("zzz", [], needs_attention=True)
    assert [c.phone for c in attention] == [EVA]
    assert await filled.search_conversations("zzz", [], opted_out=True) == []
    assert [c.phone for c in await filled.search_conversations("re", [], 1, 1)] == [ANA]


async def test_mark_read_and_counts(filled: SQLiteStore) -> None:
    assert await filled.conversation_counts() == {
        "all": 3,
        "human": 1,
        "needs_attention": 1,
        "opted_out": 0,
        "unread": 3,
    }
    await filled.mark_read(ANA)
    assert (await filled.conversation(ANA)).unread == 0
    assert (await filled.conversation_counts())["unread"] == 2
    before = await filled.conversation_counts()
    await filled.mark_read("580000000000")  # unknown: nothing happens, no contact appears
    assert await filled.conversation_counts() == before
    assert [c.phone for c in await filled.conversations()] == [EVA, LUIS, ANA]


async def test_counts_are_empty_on_a_new_database(store: SQLiteStore, clock: Clock) -> None:
    assert set((await store.conversation_counts()).values()) == {0}
    assert await store.message_counts_by_hour(clock()) == []
    assert await store.outbound_status_counts(clock()) == {}
    assert await store.top_rules(clock()) == []


async def test_dashboard_aggregates(store: SQLiteStore, clock: Clock) -> None:
    start = clock()
    await inbound(store, clock, ANA, "horario", "horario")
    await inbound(store, clock, LUIS, "horario?", "horario")
    clock.advance(3600)
    await inbound(store, clock, ANA, "precio", "precio")
    await inbound(store, clock, EVA, "???", None)
    queued = await store.queue_outbound(ANA, [Reply("hola", 1, "sandbox")], "agent")
    out = [m for m in await store.all_messages() if m.direction == "out" and m.id != queued[0].id]
    sent = [SendOutcome(m.id, "sandbox", "sent", provider_id=f"p{m.id}") for m in out]
    await store.record_outcomes(sent)
    await store.apply_status(StatusUpdate("sandbox", f"p{out[0].id}", "delivered", None, clock()))
    await store.apply_status(StatusUpdate("sandbox", f"p{out[1].id}", "failed", "x", clock()))

    hours = await store.message_counts_by_hour(start)
    two, three = start, start + timedelta(hours=1)  # 14:00 and 15:00 UTC
    assert hours == [(two, "in", 2), (two, "out", 2), (three, "in", 2), (three, "out", 2)]
    assert await store.message_counts_by_hour(start + timedelta(hours=1)) == hours[2:]
    assert await store.outbound_status_counts(start) == {
        "delivered": 1,
        "failed": 1,
        "sent": 1,
        "queued": 1,
    }
    assert await store.top_rules(start) == [("horario", 2), ("precio", 1)]
    assert await store.top_rules(start, limit=1) == [("horario", 2)]
