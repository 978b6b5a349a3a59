"""The inbox search, the same on both stores: words through the full-text index (accents, case
and punctuation folded as the matcher folds them, prefixes, every word), whole numbers by the
contacts' key, contact fields folded, newest first, capped counts, hostile input, erasure."""

from __future__ import annotations

import random
import sqlite3
from datetime import timedelta
from typing import Any

import pytest

from responder.search_query import search_query
from responder.store import Store, pg_search, sqlite_search
from responder.store.models import ImportRow
from responder.store.search import SearchCounts, SearchQuery, holds
from responder.store.sqlite import SQLiteStore
from responder.text import normalize
from tests.conftest import Clock
from tests.test_store_contract import (
    ANA,
    EVA,
    LUIS,
    admin_inbound,
    backend,
    database,
    filled,
    open_store,
    store,
)

__all__ = ["backend", "database", "filled", "open_store", "store"]  # fixtures used here


async def phones(store: Store, text: str, *args: int, **filters: Any) -> list[str]:
    """The numbers a search for `text` finds (typed numbers read as in Venezuela)."""
    page = await store.search(search_query(text, "VE"), *args, **filters)
    return [c.phone for c in page.conversations]


async def matched_texts(store: Store, text: str) -> dict[str, str]:
    page = await store.search(search_query(text, "VE"))
    found = {m.id: m.text for m in await store.messages_by_id(list(page.matched.values()))}
    return {phone: found[i] for phone, i in page.matched.items()}


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("algodón", [ANA]),
        ("ASESOR", [LUIS]),
        ("re: quiero", [LUIS]),  # replies are messages too
        ("Ana María", [ANA]),  # contact fields
        ("ANA MARIA", [ANA]),  # contact fields, folded like messages
        ("100%", [ANA]),
        ("%", []),  # punctuation alone looks for nothing
        ("_", []),
        ("0424", [LUIS]),  # a part of a number
        ("1112233", [EVA]),
        ("+58 416-111.22.33", [EVA]),  # a whole number, in any form
        ("0416 111 2233", [EVA]),
        ("nada de esto", []),
    ],
)
async def test_search_by_words_fields_or_number(filled: Store, text: str, found: list[str]) -> None:
    assert await phones(filled, text) == found


@pytest.mark.parametrize("text", ["CAFÉ", "cafe", "Café!", "café", "¿CAFE?", "Cafe con leche"])
async def test_accents_case_and_punctuation_are_ignored_as_the_matcher_ignores_them(
    filled: Store, clock: Clock, text: str
) -> None:
    await admin_inbound(filled, clock, EVA, "Un CAFÉ, con leche", None)
    clock.advance(60)
    await admin_inbound(filled, clock, LUIS, "¿Tienen café?", None)
    assert await phones(filled, "CAFÉ") == [LUIS, EVA]
    found = await phones(filled, text)
    assert found == ([EVA] if "leche" in text else [LUIS, EVA])
    assert (await matched_texts(filled, text))[EVA] == "Un CAFÉ, con leche"


async def test_words_find_longer_words_and_every_word_must_be_in_one_message(
    filled: Store, clock: Clock
) -> None:
    await admin_inbound(filled, clock, EVA, "¿Hay promoción de café?", None)
    clock.advance(60)
    await admin_inbound(filled, clock, LUIS, "la leche por favor", None)
    assert await phones(filled, "promo") == [EVA]  # typing "promo" finds "promoción"
    assert await phones(filled, "PROMOCIONES") == []
    assert await phones(filled, "cafe promo") == [EVA]  # in any order
    assert await phones(filled, "promo leche") == []  # not in one message
    assert await phones(filled, "pr") == []  # two letters: a whole word only
    assert await phones(filled, "la") == [LUIS]


HOSTILE = [
    '"',
    '""',
    "cafe\"'",
    "*",
    "caf*",
    "NEAR",
    "cafe NEAR leche",
    "NEAR(cafe leche, 2)",
    "-cafe",
    "cafe -leche",
    "(cafe",
    "cafe)",
    "((()))",
    "AND",
    "cafe OR",
    "NOT cafe",
    "cafe AND NOT",
    "^cafe",
    "folded:cafe",
    "{folded}: cafe",
    "cafe:*",
    "'cafe':* & !",
    "a & b | !c <-> d",
    "\\",
    "100%_",
    "caf\x00e",
    "\ufffd",
    "😀 café",
    "ß" * 50,
    "x" * 5000,
    " ".join(["cafe"] * 500),
    "9" * 400,
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_input_never_breaks_the_search(filled: Store, text: str) -> None:
    page = await filled.search(search_query(text, "VE"), 10)
    assert all(c.phone in (ANA, LUIS, EVA) for c in page.conversations)
    counts = await filled.search_counts("ana", search_query(text, "VE"))
    assert counts.counts["all"] == len(await phones(filled, text))


async def test_hostile_words_are_looked_for_as_words(filled: Store, clock: Clock) -> None:
    await admin_inbound(filled, clock, EVA, "cerca: near the door (NOT here)", None)
    assert await phones(filled, "NEAR") == [EVA]
    assert await phones(filled, '"not" -here*') == [EVA]
    assert await phones(filled, "(door") == [EVA]


async def test_newest_match_first_with_filters_and_pages(filled: Store, clock: Clock) -> None:
    for phone in (EVA, ANA, LUIS):
        clock.advance(60)
        await admin_inbound(filled, clock, phone, f"pedido {phone}", None)
    clock.advance(60)
    await admin_inbound(filled, clock, EVA, "otro pedido", None)
    assert await phones(filled, "pedido") == [EVA, LUIS, ANA]
    assert await phones(filled, "pedido", 1, 1) == [LUIS]
    assert await phones(filled, "pedido", 5, 2) == [ANA]
    assert await phones(filled, "pedido", mode="human") == [LUIS]
    assert await phones(filled, "pedido", needs_attention=True, opted_out=False) == [EVA, LUIS, ANA]
    assert await phones(filled, "pedido", opted_out=True) == []
    assert (await matched_texts(filled, "pedido"))[EVA] == "otro pedido"  # its newest match


async def test_a_whole_number_comes_first_by_its_key(filled: Store, clock: Clock) -> None:
    await admin_inbound(filled, clock, LUIS, "mi otro número es +58 416 111 2233", None)
    assert await phones(filled, "+58 416 111 2233") == [EVA, LUIS]  # the number, then words
    assert await phones(filled, "+58 416 111 2233", mode="human") == [LUIS]  # filters hold
    query = search_query("(0416) 111-2233", "VE")
    assert (query.phones, query.fragments) == ((EVA, "04161112233"), ())
    assert search_query("2233", "VE").fragments == ("2233",)
    assert await phones(filled, "+58 412 999 9999") == []  # a valid number nobody has


async def test_short_codes_are_found_as_they_were_stored(store: Store, clock: Clock) -> None:
    await admin_inbound(store, clock, "2020", "hola", None)
    assert await phones(store, "2020") == ["2020"]


async def test_contact_fields_are_folded_whoever_writes_them(store: Store, clock: Clock) -> None:
    await admin_inbound(store, clock, ANA, "hola", None, fields={"ciudad": "Mérida"})
    assert await phones(store, "MERIDA") == [ANA]
    await store.update_fields(ANA, {"ciudad": None, "nombre": "Ñandú Pérez"})
    assert await phones(store, "merida") == []
    assert await phones(store, "nandu PEREZ") == [ANA]
    assert await phones(store, "nombre") == []  # the names of fields are not searched


async def test_counts_follow_the_search_and_stop_at_the_limit(
    filled: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await filled.assign(LUIS, "ana")
    counts = await filled.search_counts("ana", SearchQuery("QUIERO"))
    assert counts.complete
    assert counts.counts == {
        "all": 1,
        "human": 1,
        "needs_attention": 0,
        "opted_out": 0,
        "unread": 1,
        "unassigned": 0,
        "resolved": 0,
        "mine": 1,
    }
    assert (await filled.search_counts(None, search_query("1112233", "VE"))).counts["all"] == 1
    nothing = await filled.search_counts("ana", SearchQuery("nada de esto"))
    assert set(nothing.counts.values()) == {0}
    assert await filled.search_counts(None, SearchQuery("re")) == await filled.search_counts(
        None, SearchQuery("RE")
    )
    for module in (sqlite_search, pg_search):
        monkeypatch.setattr(module, "COUNT_LIMIT", 1)
    capped = await filled.search_counts(None, SearchQuery("re"))  # LUIS and ANA have it
    assert (capped.counts["all"], capped.complete) == (1, False)
    assert len(await phones(filled, "re")) == 2  # the list is not capped


@pytest.mark.parametrize("text", ["QUIERO", "re", "0424", "+58 416-111.22.33", "Ana María", "nada"])
async def test_a_whole_result_counts_the_same_from_its_records(filled: Store, text: str) -> None:
    """The inbox counts a search that fit on its page from the conversations it shows."""
    await filled.assign(LUIS, "ana")
    await filled.set_status(ANA, "resolved")
    query = search_query(text, "VE")
    found = (await filled.search(query, 100)).conversations
    assert len(found) < 100
    for me in ("ana", None):
        assert SearchCounts.of(found, me) == await filled.search_counts(me, query)


async def test_erased_texts_leave_the_index(store: Store, clock: Clock) -> None:
    await admin_inbound(store, clock, ANA, "mi clave es zarzaparrilla", None)
    await admin_inbound(store, clock, LUIS, "zarzaparrilla también", None)
    clock.advance(3600)
    await admin_inbound(store, clock, EVA, "zarzaparrilla nueva", None)
    assert await phones(store, "zarza") == [EVA, LUIS, ANA]
    after: int | None = 0
    while after is not None:
        after = await store.clear_old_texts(clock() - timedelta(minutes=30), after, 100)
    assert await phones(store, "zarza") == [EVA]  # the retention sweep
    assert await store.forget_contact(EVA) is not None
    assert await phones(store, "zarza") == []  # `responder forget`
    await admin_inbound(store, clock, EVA, "zarzaparrilla otra vez", None)
    assert await phones(store, "zarza") == [EVA]
    if isinstance(store, SQLiteStore):  # the index agrees with the table, row by row
        while await store.checkpointer.index_new_messages():  # new messages: indexed later
            pass
        with sqlite3.connect(store.path) as db:
            db.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)"
            )


@pytest.mark.parametrize("backend", ["postgres"])  # PostgreSQL's choice: its index or a walk
@pytest.mark.parametrize("estimate", [0.0, 1.0, 0.5])  # the index; a walk; a walk cut short
async def test_postgres_finds_the_same_by_either_way(
    filled: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch, estimate: float
) -> None:
    assert isinstance(filled, pg_search.PgSearch)
    for n, phone in enumerate((EVA, ANA, LUIS, EVA, ANA)):
        clock.advance(60)
        await admin_inbound(filled, clock, phone, f"pedido {n}", None)

    async def estimated(conn: object, words: list[str]) -> float:
        return estimate

    monkeypatch.setattr(pg_search, "_estimated_share", estimated)
    monkeypatch.setattr(pg_search, "PAGE_ROWS", 1)  # a walk of one row at a time
    if estimate == 0.5:
        monkeypatch.setattr(pg_search, "WALK_MARGIN", 0)  # budget: one page, then the index
    assert await phones(filled, "pedido") == [ANA, EVA, LUIS]
    assert await phones(filled, "pedido", 1, 1) == [EVA]
    assert await phones(filled, "pedido", mode="human") == [LUIS]
    assert (await matched_texts(filled, "pedido"))[EVA] == "pedido 3"
    counts = await filled.search_counts(None, SearchQuery("pedido"))
    assert (counts.counts["all"], counts.complete) == (3, True)


ORACLE_WORDS = ["cafe", "cafetería", "promo", "promoción", "pro", "la", "lana", "leche", "con"]


@pytest.mark.parametrize("window", [0, 5000])  # SQLite: no whole-words window; the window
# SQLite: the first `indexed` messages at least are in the full-text index when the search
# runs (migration 0028: the checkpointer's step indexes them, every 0.1 s); the others, the
# step may have reached or not, and a search reads them from the table. (PostgreSQL's index is
# kept by the server, in the transaction: for it the three are the same test.)
@pytest.mark.parametrize("indexed", [0, 75, 150])
async def test_every_way_finds_what_a_plain_reading_finds(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch, window: int, indexed: int
) -> None:
    monkeypatch.setattr(sqlite_search, "WINDOW_ROWS", window)
    rng = random.Random(16)
    written: list[tuple[str, str]] = []  # (phone, text), oldest first
    for n in range(150):
        phone = f"5841200000{rng.randrange(25):02d}"
        text = " ".join(rng.choices(ORACLE_WORDS, k=rng.randint(1, 4)))
        clock.advance(1)
        await admin_inbound(store, clock, phone, text, None)
        written.append((phone, text))
        if n + 1 == indexed and isinstance(store, SQLiteStore):
            while await store.checkpointer.index_new_messages():
                pass
    for typed in ["cafe", "CAFÉ con", "promo", "pro la", "la", "lana leche", "cafeteria"]:
        words = SearchQuery(typed).words
        expected: list[str] = []
        for phone, text in reversed(written):  # newest first, each conversation once
            if phone not in expected and holds(normalize(text), words):
                expected.append(phone)
        for limit in (1, 3, 10, 30):
            assert await phones(store, typed, limit) == expected[:limit], (typed, limit)
        for module in (sqlite_search, pg_search):
            monkeypatch.setattr(module, "COUNT_LIMIT", 5)
        counts = await store.search_counts(None, SearchQuery(typed))
        assert (counts.counts["all"], counts.complete) == (
            min(5, len(expected)),
            len(expected) <= 5,
        ), typed
        for module in (sqlite_search, pg_search):
            monkeypatch.setattr(module, "COUNT_LIMIT", 500)


async def test_imported_fields_are_folded_and_imported_contacts_are_not_conversations(
    store: Store, clock: Clock
) -> None:
    await admin_inbound(store, clock, ANA, "hola", None)
    await store.import_contacts(
        [
            ImportRow(ANA, {"ciudad": "Mérida"}, ()),  # a conversation: its fields change
            ImportRow(LUIS, {"ciudad": "Mérida"}, ()),  # only imported: not a conversation
        ]
    )
    assert await phones(store, "MERIDA") == [ANA]
    counts = await store.search_counts(None, SearchQuery("merida"))
    assert counts.counts["all"] == 1
    clock.advance(60)
    await admin_inbound(store, clock, LUIS, "buenas", None)  # now it is one
    assert await phones(store, "merida") == [LUIS, ANA]
