"""Time limits for the work rules do while a message is answered: pattern searches and
template renders.

A webhook's rules run on the event loop, inside the store's single writer: while they run,
no other request is served. So each message gets an allowance of time, and the loop as a
whole may spend only a share of its time that way: a pattern that backtracks or a template
that loops for long is stopped, counts as not matching (a pattern) or as a render error (a
template), is logged by rule name and is remembered for `/api/rules` and `responder check`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from responder.clock import pause_seconds

log = logging.getLogger("responder.budget")

# Budgets are CPU time of the thread answering the message: a machine busy with other work
# slows the loop down but never makes an ordinary rule look over budget. (The `regex` module
# measures its timeout in CPU time too.)
#
# What one message's patterns and templates may take together.
MESSAGE_SECONDS = 0.010
# The most the loop spends on that work in one go (many messages written in one batch), and
# the share of the time passing that it may spend on it: the rest serves other requests.
BURST_SECONDS = 0.040
SHARE = 0.5
# Even with the allowance used up, a search or render gets this long: an ordinary pattern or
# template finishes in a few microseconds, so only a runaway one is stopped.
FLOOR_SECONDS = 0.0005


@dataclass(frozen=True)
class Owner:
    """Whose pattern or template it is: a rule's (or a flow's) name, the line, the source."""

    rule: str
    line: int
    source: str  # the pattern, or the template's text or file name


@dataclass(frozen=True)
class Overrun:
    kind: str  # "pattern" or "template"
    owner: Owner
    why: str  # what was exceeded: "out of time", "more than 10000 loop passes"...


@dataclass(frozen=True)
class OverrunRecord:
    """Overruns of one pattern or template, as the store remembers them."""

    kind: str
    rule: str
    line: int
    source: str
    why: str  # what was exceeded the last time
    count: int
    first_at: datetime
    last_at: datetime


class Allowance:
    """The CPU time one message's rules have; overruns are noted in `overruns`.

    A thread's CPU time never runs ahead of the time passing (`elapsed`, a real interval
    counter), so while little time has passed the CPU clock need not be read to know that
    little was spent: reading it is a system call (2.6 µs here, and a point where the kernel
    may switch threads), where the interval counter is read in user space (0.07 µs)."""

    def __init__(
        self, cpu: Callable[[], float], seconds: float, elapsed: Callable[[], float]
    ) -> None:
        self._cpu = cpu
        self._elapsed = elapsed
        self.started = cpu()
        self._since = elapsed()
        self.seconds = seconds
        self.deadline = self.started + seconds
        self.overruns: list[Overrun] = []

    def limit(self) -> float:
        """Seconds the next search or render may take: what is left of the allowance, or
        less (never under the floor) while at least half of it is surely left."""
        surely_left = self.seconds - (self._elapsed() - self._since)
        if surely_left >= self.seconds / 2:
            return max(surely_left, FLOOR_SECONDS)
        return max(self.deadline - self._cpu(), FLOOR_SECONDS)

    def past(self, deadline: float) -> bool:
        """Whether the CPU clock is past `deadline` (a reading of it), read only when the time
        passed says it may be."""
        if self.started + (self._elapsed() - self._since) <= deadline:
            return False
        return self._cpu() > deadline

    def used(self) -> float:
        """CPU seconds spent since the message started."""
        return self._cpu() - self.started

    def cpu(self) -> float:
        """The CPU clock the allowance is measured on (`deadline` is a reading of it)."""
        return self._cpu()

    def overran(self, overrun: Overrun) -> None:
        # The rule's name, never the message: the text may be private, and it is the attack.
        log.warning(
            "rule %s (line %d): %s over budget (%s); %s",
            overrun.owner.rule,
            overrun.owner.line,
            overrun.kind,
            overrun.why,
            "counted as not matching" if overrun.kind == "pattern" else "not sent",
        )
        self.overruns.append(overrun)


# The allowance of the message being answered. Outside Budget.message() (the pure engine in
# tests, `responder check`) there is none: searches are not timed, templates keep their step
# and size limits.
_active: ContextVar[Allowance | None] = ContextVar("responder_allowance", default=None)


def current() -> Allowance | None:
    return _active.get()


class Budget:
    """The loop's meter: a bucket of `burst` CPU seconds, refilled at `share` of the wall time
    that passes, drawn down by what messages' rules spend. Process-local on purpose: it
    protects this process's event loop, whatever other instances do."""

    def __init__(
        self,
        wall: Callable[[], float],
        cpu: Callable[[], float],
        *,
        per_message: float,
        burst: float,
        share: float,
        elapsed: Callable[[], float] = pause_seconds,
    ) -> None:
        self._wall = wall
        self._cpu = cpu
        self._elapsed = elapsed  # a real interval counter, for Allowance's bound
        self.per_message = per_message
        self.burst = burst
        self.share = share
        self._tokens = burst
        self._at = wall()
        self.pending: list[Overrun] = []  # noted, not yet saved by the service

    def message(self) -> MessageScope:
        """The allowance for answering one message: `with budget.message() as allowance:`,
        active while the block runs."""
        return MessageScope(self)

    def take_pending(self) -> list[Overrun]:
        taken, self.pending = self.pending, []
        return taken


class MessageScope:
    """One message's turn on the meter (Budget.message). A class rather than @contextmanager:
    it runs for every webhook, and a generator's context manager costs about a microsecond
    more."""

    __slots__ = ("_allowance", "_budget", "_token")

    def __init__(self, budget: Budget) -> None:
        self._budget = budget

    def __enter__(self) -> Allowance:
        meter = self._budget
        now = meter._wall()
        meter._tokens = min(meter.burst, meter._tokens + (now - meter._at) * meter.share)
        meter._at = now
        allowance = Allowance(
            meter._cpu, min(meter.per_message, max(meter._tokens, 0.0)), meter._elapsed
        )
        self._allowance = allowance
        self._token = _active.set(allowance)
        return allowance

    def __exit__(self, *exc: object) -> None:
        _active.reset(self._token)
        allowance = self._allowance
        self._budget._tokens -= allowance.used()
        if allowance.overruns:
            self._budget.pending.extend(allowance.overruns)
