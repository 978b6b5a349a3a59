"""How a typed search becomes words and queries (store/search.py), and how the inbox marks the
words a message holds (text.find_words, views.match_excerpt): pure functions, tables of cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responder.store.search import fold_fields, fts5_query, search_words, tsquery
from responder.text import find_words
from responder.web.views import match_excerpt


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("CAFÉ", ["cafe"]),
        ("¿Café, con leche?", ["cafe", "con", "leche"]),
        ('"cafe" NEAR(leche) -azul *', ["cafe", "near", "leche", "azul"]),
        ("e-mail juan@x.com 1.5", ["e", "mail", "juan", "x", "com", "1", "5"]),
        ("cafe cafe CAFÉ", ["cafe"]),
        ("zz_top", ["zz", "top"]),
        ("¿?!*()", []),
        ("Straße", ["strasse"]),
        (" ".join(f"w{n}" for n in range(20)), [f"w{n}" for n in range(8)]),
        ("a" * 100, ["a" * 40]),
    ],
)
def test_search_words(typed: str, words: list[str]) -> None:
    assert search_words(typed) == words


def test_queries_quote_every_word_and_mark_prefixes() -> None:
    assert fts5_query(["cafe", "la", "near"]) == '"cafe"* AND "la" AND "near"*'
    assert tsquery(["cafe", "la"]) == "'cafe':* & 'la'"


@given(st.text(max_size=300))
def test_words_hold_only_letters_and_digits(typed: str) -> None:
    for word in search_words(typed):
        assert word and all(c.isalnum() for c in word)
        assert '"' not in fts5_query([word]).strip('"*') and "'" not in word


def test_fields_are_folded_by_their_values() -> None:
    assert fold_fields({"nombre": "José Pérez", "edad": 30, "x": None}) == "jose perez 30"
    assert fold_fields({}) == ""


@pytest.mark.parametrize(
    ("text", "words", "marked"),
    [
        ("Un CAFÉ con leche", ["cafe"], ["CAFÉ"]),
        ("Un CAFÉ con leche", ["leche", "cafe"], ["CAFÉ", "leche"]),
        ("¿Hay promoción?", ["promo"], ["promoción"]),
        ("la promo", ["pro"], ["promo"]),
        ("PROMO-2x1", ["promo"], ["PROMO"]),
        ("repromo", ["promo"], []),  # only where a word begins
        ("la lana", ["la"], ["la"]),  # a short word: whole words only
        ("Straße 5", ["strasse"], ["Straße"]),
        ("hola", ["adios"], []),
    ],
)
def test_find_words_marks_where_words_begin(text: str, words: list[str], marked: list[str]) -> None:
    assert [text[a:b] for a, b in find_words(text, words)] == marked


def test_the_excerpt_marks_every_word_near_the_first() -> None:
    text = "x " * 60 + "Un café con leche y más café" + " y" * 60
    parts = match_excerpt(text, ["cafe", "leche"], around=10)
    assert parts is not None
    assert [p for p, found in parts if found] == ["café", "leche", "café"]
    assert parts[0] == ("…", False) and parts[-1] == ("…", False)
    assert match_excerpt("hola", ["cafe"]) is None
    assert match_excerpt("café", ["cafe"]) == [("café", True)]
