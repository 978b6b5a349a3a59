"""The one clock: every part of responder that reads the time takes a `Clock`.

Built once, in `Service` (or by a test, which passes its own), and handed down explicitly:
no constructor falls back to the wall clock, so a component a caller forgot to give the
clock fails loudly instead of quietly reading another time than the rest.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """`clock()` is now (aware, UTC); `monotonic()` measures intervals (rates, caches, limits);
    `random` is the source of retry jitter, so a test can seed it."""

    random: random.Random

    def __call__(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The machine's clock."""

    def __init__(self, seed: int | None = None) -> None:
        self.random = random.Random(seed)

    def __call__(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def thread_cpu_time() -> float:
    """CPU seconds used by the calling thread: what the rules' budget (responder.budget)
    measures, so that other load on the machine never counts against a rule."""
    return time.thread_time()


def pause_seconds() -> float:
    """A high-resolution counter for timing the process's own pauses (garbage collections,
    responder.metrics): an interval of this process, never a moment of the day."""
    return time.perf_counter()
