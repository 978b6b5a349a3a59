"""The caches of short strings (responder.caches): what they keep, what they drop, and that a
full one gives the garbage collector nothing to walk (issue 16)."""

from __future__ import annotations

import functools
import gc
import types
from collections.abc import Callable
from typing import Any, cast

import pytest

from responder.caches import ShortCache, short_lru
from responder.rules.conditions import Facts
from responder.rules.matcher import NEAR_CACHE_WORDS
from responder.rules.schema import load_rules
from tests.conftest import MONDAY_10AM, ROOT
from tests.test_bounded_memory import held_by


def counted(maxsize: int, max_chars: int = 32) -> tuple[ShortCache[str], list[tuple[str, ...]]]:
    """A cached function of one or two strings, and the calls it computed."""
    calls: list[tuple[str, ...]] = []

    @short_lru(maxsize=maxsize, max_chars=max_chars)
    def upper(text: str, region: str) -> str:
        calls.append((text, region))
        return f"{text.upper()}/{region}"

    return upper, calls


def test_a_hit_returns_the_kept_value_without_computing_it() -> None:
    cached, calls = counted(100)
    first = cached("04121234567", "VE")
    assert cached("04121234567", "VE") is first == "04121234567/VE"
    assert calls == [("04121234567", "VE")]
    assert cached("04121234567", "CO") == "04121234567/CO"  # another key: computed
    assert cached.cache_info().currsize == 2


def test_it_never_holds_more_than_maxsize_entries() -> None:
    cached, calls = counted(100)
    for n in range(1_000):
        cached(f"{n}", "VE")
        assert cached.cache_info().currsize <= 100
    assert cached.cache_info().currsize >= 50
    assert len(calls) == 1_000


def test_a_long_argument_is_computed_and_not_kept() -> None:
    cached, calls = counted(100, max_chars=10)
    for _ in range(2):
        assert cached("x" * 11, "VE") == "X" * 11 + "/VE"
        assert cached("04121234567"[:10], "y" * 11) == "0412123456/" + "y" * 11
    assert len(calls) == 4
    assert cached.cache_info().currsize == 0


def test_the_latest_half_used_are_always_kept() -> None:
    cached, calls = counted(10)
    cached("hola", "VE")
    for n in range(100):
        cached(f"{n}", "VE")
        cached("hola", "VE")  # used all along: never evicted, computed once
    assert calls.count(("hola", "VE")) == 1
    computed = len(calls)
    for n in range(96, 100):  # with "hola", the latest 5 used
        cached(f"{n}", "VE")
    assert len(calls) == computed
    cached("0", "VE")  # long unused: gone
    assert len(calls) == computed + 1


def test_joined_keys_never_confuse_two_calls() -> None:
    # Several strings are kept under one string joined by NUL: a NUL inside one of them
    # would make two calls look alike, so that call is computed and not kept.
    cached, calls = counted(100)
    assert cached("a", "b\x00c") == "A/b\x00c"
    assert cached("a\x00b", "c") == "A\x00B/c"
    assert cached("ab", "c") == "AB/c"
    assert cached("a", "bc") == "A/bc"
    assert cached.cache_info().currsize == 2
    assert cached("a", "b\x00c") == "A/b\x00c"
    assert calls.count(("a", "b\x00c")) == 2

    @short_lru(maxsize=100, max_chars=32)
    def joined(first: str, second: str = "") -> str:  # one or two arguments
        return f"{first}|{second}"

    assert joined("a\x00b") == "a\x00b|"
    assert joined("a", "b") == "a|b"
    assert joined("a\x00b") == "a\x00b|"


def test_exceptions_are_not_kept() -> None:
    calls: list[str] = []

    @short_lru(maxsize=10, max_chars=32)
    def parse(text: str) -> int:
        calls.append(text)
        return int(text)

    for _ in range(2):
        with pytest.raises(ValueError):
            parse("x")
    assert calls == ["x", "x"]
    assert parse.cache_info().currsize == 0


def test_cache_clear_forgets_everything() -> None:
    cached, calls = counted(100)
    cached("a", "VE")
    cached.cache_clear()
    assert cached.cache_info().currsize == 0
    cached("a", "VE")
    assert len(calls) == 2


def test_a_cache_keeps_at_least_two_entries() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        short_lru(maxsize=1, max_chars=10)


def entries_of(cache: ShortCache[object]) -> list[dict[object, object]]:
    """The dicts a cache keeps its entries in (`young` and `old`, in its functions' closure)."""
    cells = cast(types.FunctionType, cache.cache_info).__closure__ or ()
    found = [c.cell_contents for c in cells if type(c.cell_contents) is dict]
    assert len(found) == 2
    return found


def walked_within(root: object) -> int:
    """How many references a full collection follows among the objects `root` holds: those
    of each tracked one."""
    return sum(len(referents) for item, referents in held_by(root) if gc.is_tracked(item))


def normalize(raw: str, region: str) -> str:
    return raw.removeprefix("0") + region


def single(raw: str) -> str:
    return normalize(raw, "VE")


@pytest.mark.parametrize("function", [single, normalize])
def test_a_full_cache_adds_nothing_for_the_collector_to_walk(
    function: Callable[..., str],
) -> None:
    arguments = 1 if function is single else 2

    def walked_when_full(cache: Any) -> int:
        # What a short_lru holds is in its functions' closure.
        held = getattr(cache.cache_info, "__closure__", None) or cache
        empty = walked_within(held)
        for n in range(20_000):
            cache(*(f"58416{n:07d}", "VE")[:arguments])
        for _ in range(3):  # what a collection untracks (tuples of atoms, then dicts)
            gc.collect()
        return walked_within(held) - empty

    # The measure sees what functools.lru_cache costs: it is one tracked object, but a
    # collection follows its every entry (the key, the result, the entry's type).
    assert walked_when_full(functools.lru_cache(maxsize=20_000)(function)) >= 3 * 20_000
    cache = short_lru(maxsize=20_000, max_chars=32)(function)
    assert walked_when_full(cache) == 0
    assert cache.cache_info().currsize >= 10_000
    assert not any(gc.is_tracked(entries) for entries in entries_of(cache))


def test_the_matchers_cache_of_words_stays_untracked() -> None:
    # Its answers are tuples of keywords, which the collector tracks when made: the cache
    # keeps their positions instead, typos near a keyword ("horaro") as well as other words.
    matcher = load_rules(ROOT / "rules.yaml", ROOT / "templates", MONDAY_10AM).matcher
    at = Facts(MONDAY_10AM, False, {})
    gc.collect()
    for n in range(NEAR_CACHE_WORDS):
        matcher.match(f"horaro direcion hola{n}", at)
        cache = matcher._near_cached
        assert not any(gc.is_tracked(entries) for entries in entries_of(cache))
    rule = matcher.match("horaro", at)
    assert rule is not None and rule.rule.name == "horario"
    assert NEAR_CACHE_WORDS // 2 <= cache.cache_info().currsize <= NEAR_CACHE_WORDS
