"""What a long-running responder keeps in memory for the numbers it meets stays bounded in
bytes, whatever the numbers and texts (issue 16): the SQLite backend's copy of each number's
recent messages (RecentRows), the caches of short strings, the sandbox's record of sends. Each
is fed far more numbers, and longer texts, than its bound allows, and the bytes it holds are
measured: by its own account and by tracemalloc."""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from responder import engine
from responder.caches import short_lru
from responder.phone import normalize_phone
from responder.providers.base import OutboundSMS
from responder.providers.sandbox import KEEP, SandboxProvider
from responder.rules.conditions import Facts
from responder.rules.matcher import NEAR_CACHE_WORDS
from responder.rules.schema import load_rules
from responder.store.models import InboundJob
from responder.store.recent import (
    INBOUND_BYTES,
    REPLY_BYTES,
    Activity,
    Known,
    RecentRows,
)
from responder.store.sqlite import SQLiteStore
from responder.text import normalize_cached, segments
from tests.conftest import MONDAY_10AM, ROOT, Clock

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
MIB = 1024 * 1024


def retained(build: Callable[[], Any]) -> tuple[Any, int]:
    """What `build` returns, and the bytes still allocated after it (and a full collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return result, after - before


def known_with(count: int, text_length: int, seed: str) -> Known:
    activity = Activity()
    for n in range(count):
        # Built as the store builds them: a new string per row, as sqlite3 returns it.
        text = f"{seed}-{n}-" + "x" * text_length
        activity.inbound.append((T0 + timedelta(seconds=n), f"5841410{n:05d}", text, n))
        activity.replies.append((T0 + timedelta(seconds=n), f"{seed}-{n}: " + "y" * 50))
    return Known(T0, T0, activity)


def test_the_kept_bytes_are_what_the_numbers_cost() -> None:
    # RecentRows' own account against what tracemalloc sees it keep: within a quarter.
    recent = RecentRows()
    knowns = [known_with(3, 100, str(n)) for n in range(2_000)]

    def keep() -> None:
        for n, known in enumerate(knowns):
            recent.put(f"58412{n:07d}", known)

    knowns_cost = retained(lambda: None)[1]  # nothing: the baseline of the measure itself
    _, cost = retained(keep)
    cost -= knowns_cost
    # The entries' own objects (times, strings) are shared with `knowns` here; in the store
    # only RecentRows keeps them: count them as the estimate does.
    shared = sum(
        sum(sys.getsizeof(x) for x in (e[0], e[1], e[2], e[3]))
        for k in knowns
        for e in k.activity.inbound
    ) + sum(sum(sys.getsizeof(x) for x in (e, *e)) for k in knowns for e in k.activity.replies)
    assert 0.75 * (cost + shared) <= recent.bytes <= 1.25 * (cost + shared), (
        recent.bytes,
        cost + shared,
    )
    entry = knowns[0].activity.inbound[0]
    assert sum(sys.getsizeof(x) for x in (entry, entry[0], entry[1], entry[3])) <= INBOUND_BYTES
    reply = knowns[0].activity.replies[0]
    assert sys.getsizeof(reply) + sys.getsizeof(reply[0]) <= REPLY_BYTES


def test_kept_numbers_are_not_walked_by_the_garbage_collector() -> None:
    # What a full collection walks grows with what is tracked: 5,000 numbers kept add a
    # handful of tracked objects, not tens of thousands (lists, objects) as they did.
    # Counted within what `recent` holds, not over the whole process: other tests' threads
    # and tasks in the same worker come and go meanwhile.
    recent = RecentRows()
    for n in range(5_000):
        recent.put(f"58412{n:07d}", known_with(2, 20, str(n)))
    for _ in range(4):  # a tuple is untracked when a collection finds only untracked items
        gc.collect()  # in it: nested ones take a collection per level
    assert tracked_within(recent) < 500  # kept as lists and objects, they were over 10,000
    assert recent.get("584120004999", T0, T0) is not None


def held_by(root: object) -> Iterator[tuple[object, list[object]]]:
    """Each object `root` holds, once, with what it refers to (classes, functions and modules
    left out: they are the program, not what it keeps)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(item))
        referents = gc.get_referents(item)
        yield item, referents
        stack.extend(referents)


def tracked_within(root: object) -> int:
    """How many objects the garbage collector tracks among those `root` holds."""
    return sum(gc.is_tracked(item) for item, _ in held_by(root))


def test_recent_rows_keep_to_their_bytes_whatever_the_numbers() -> None:
    limit = 2 * MIB
    recent = RecentRows(size=1_000_000, max_bytes=limit)

    def feed() -> RecentRows:
        for n in range(5_000):  # some long texts among many short ones
            length = 5_000 if n % 10 == 0 else 40
            recent.put(f"58412{n:07d}", known_with(3, length, str(n)))
            assert recent.bytes <= limit
        return recent

    _, cost = retained(feed)
    assert len(recent) < 5_000  # the oldest went
    assert cost <= 1.25 * limit, cost
    assert recent.get("584120004999", T0, T0) is not None  # the newest are kept


def test_a_number_bigger_than_the_bound_is_not_kept() -> None:
    recent = RecentRows(max_bytes=MIB)
    recent.put("584120000001", known_with(3, 100, "small"))
    recent.put("584120000002", known_with(50, 30_000, "huge"))  # 1.5 MB of texts
    assert recent.get("584120000002", T0, T0) is None
    assert recent.bytes <= MIB


def test_what_catching_up_adds_counts_and_goes_at_the_next_settle() -> None:
    recent = RecentRows(max_bytes=64 * 1024)
    recent.put("584120000001", known_with(1, 10, "a"))
    recent.put("584120000002", known_with(1, 10, "b"))
    before = recent.bytes
    row = (9, "584120000001", "in", "584141000001", "z" * 100_000, None, None, T0.isoformat())
    recent.add(row)
    assert recent.bytes >= before + 100_000
    recent.settle({})
    assert recent.bytes <= 64 * 1024
    assert recent.get("584120000001", T0, T0) is None  # too big: read afresh next time


def test_the_sqlite_store_keeps_its_recent_rows_to_their_bytes(tmp_path, clock: Clock) -> None:
    # Through the store's own path: webhooks from 3,000 numbers with 2 KB texts, grouped as
    # concurrent webhooks are, against a bound of 256 KiB.
    limit = 256 * 1024

    def decide(contact: Any) -> engine.Decision:
        reply = engine.Reply("gracias", 1)
        return engine.Decision("eco", (reply,), "test")

    async def run() -> SQLiteStore:
        store = SQLiteStore(tmp_path / "responder.db", clock)
        await store.open()
        store._recent.max_bytes = limit
        try:
            for start in range(0, 3_000, 100):
                jobs = []
                for n in range(start, start + 100):
                    text = f"mensaje {n} " + "ñ" * 2_000
                    message = engine.InboundMessage(f"58412{n:07d}", text, clock(), None)
                    jobs.append(store.receive_inbound(InboundJob(message, decide, 10.0, 3600.0)))
                await asyncio.gather(*jobs)
                assert store._recent.bytes <= limit
        finally:
            await store.close()
        return store

    store = asyncio.run(run())
    assert 0 < len(store._recent) < 3_000


def test_string_caches_keep_only_short_strings() -> None:
    calls: list[str] = []

    @short_lru(maxsize=100, max_chars=10)
    def upper(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert upper("hola") == upper("hola") == "HOLA"
    assert calls == ["hola"]  # kept
    assert upper("x" * 11) == upper("x" * 11) == "X" * 11
    assert calls == ["hola", "x" * 11, "x" * 11]  # computed each time, not kept
    assert upper.cache_info().currsize == 1


def test_the_text_caches_stay_bounded_with_long_unique_texts() -> None:
    # 4,000 unique webhook texts of 5,000 characters: without the bound, about 100 MB.
    normalize_cached.cache_clear()
    segments.cache_clear()
    engine.prepare.cache_clear()

    def feed() -> None:
        for n in range(4_000):
            text = f"Quiero información {n} " + ("á" * 5_000 if n % 2 else "")
            normalize_cached(text)
            segments(text[:1_000])
            engine.prepare(text[:1_000], True, 3)

    _, cost = retained(feed)
    assert cost < 8 * MIB, cost


def test_the_phone_cache_keeps_no_long_fields() -> None:
    normalize_phone.cache_clear()
    padded = "+58 412 123 4567" + " " * 60_000
    assert normalize_phone(padded, "VE") == "584121234567"
    assert normalize_phone.cache_info().currsize == 0
    assert normalize_phone("04121234567", "VE") == "584121234567"
    assert normalize_phone.cache_info().currsize == 1


def test_the_sandbox_remembers_only_its_latest_sends() -> None:
    sandbox = SandboxProvider()
    for start in range(0, 3 * KEEP, 100):
        batch = [OutboundSMS(n, f"58412{n:07d}", "hola") for n in range(start, start + 100)]
        asyncio.run(sandbox.send(batch))
    assert len(sandbox.sent) == KEEP
    assert sandbox.sent[-1].id == 3 * KEEP - 1


def test_the_matchers_memory_of_words_stays_bounded() -> None:
    # Far more distinct words than it keeps, each of a length a keyword's typo could have:
    # the matcher remembers at most NEAR_CACHE_WORDS of them (the latest half at least), in a
    # few MiB.
    ruleset = load_rules(ROOT / "rules.yaml", ROOT / "templates", MONDAY_10AM)
    matcher = ruleset.matcher
    at = Facts(T0, False, {})

    def feed() -> None:
        for n in range(3 * NEAR_CACHE_WORDS):
            matcher.match(f"hola w{n:07d}", at)

    _, kept = retained(feed)
    assert NEAR_CACHE_WORDS // 2 <= matcher._near_cached.cache_info().currsize <= NEAR_CACHE_WORDS
    assert kept < 8 * MIB, kept
    before = matcher._near_cached.cache_info().currsize
    matcher._near_cached.cache_clear()
    matcher.match("x" * 500, at)  # no keyword is near a word this long: not kept
    assert matcher._near_cached.cache_info().currsize == 0 < before


def test_recent_rows_leave_nothing_for_full_collections() -> None:
    """What RecentRows keeps is untracked by the collector the first time it looks at it (an
    object may reach the oldest generation after one look): a full collection never walks the
    thousands of numbers it keeps. Kept nested, most stayed tracked."""
    recent = RecentRows()
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    stamp = "2026-11-30T12:00:01.000000Z"
    gc.disable()
    try:
        for n in range(2000):
            activity = Activity()
            activity.inbound.append((now, "", f"hola {n}", n))
            activity.replies.append((now, "Abrimos a las 8"))
            recent.put(f"58416{n:07d}", Known(now, now, activity))
            recent.add((10_000 + n, f"58416{n:07d}", "in", None, "otra", "massiva", None, stamp))
        gc.collect(0)
    finally:
        gc.enable()
    kept = list(recent._known.values())
    assert len(kept) == 2000
    assert [k for k in kept if gc.is_tracked(k)] == []
