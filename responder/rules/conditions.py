"""`when:` conditions of a rule: time of week, first contact, saved contact fields, logic."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Spanish names too: rule authors write Spanish.
DAY_ALIASES = {
    **{d: i for i, d in enumerate(DAY_NAMES)},
    **{d: i for i, d in enumerate(("lun", "mar", "mie", "jue", "vie", "sab", "dom"))},
    **{
        d: i
        for names in (
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
            ("lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo"),
        )
        for i, d in enumerate(names)
    },
}
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class BadValue(ValueError):
    """A value in rules.yaml that cannot be read: the English message, and a code and params
    that name the problem for translation (responder.rules.messages_es)."""

    def __init__(self, message: str, *, code: str, **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class Facts:
    """What a condition may look at: local time and the contact."""

    now: datetime  # in settings.timezone
    first_contact: bool
    fields: dict[str, Any]


class Condition(Protocol):
    def holds(self, facts: Facts) -> bool: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Days:
    days: frozenset[int]
    source: str

    def holds(self, facts: Facts) -> bool:
        return facts.now.weekday() in self.days

    def describe(self) -> str:
        return f"days {self.source}"


@dataclass(frozen=True)
class Hours:
    start: int  # minutes after midnight
    end: int
    source: str

    def holds(self, facts: Facts) -> bool:
        minute = facts.now.hour * 60 + facts.now.minute
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end  # overnight, e.g. 22:00-06:00

    def describe(self) -> str:
        return f"hours {self.source}"


@dataclass(frozen=True)
class FirstContact:
    expected: bool

    def holds(self, facts: Facts) -> bool:
        return facts.first_contact == self.expected

    def describe(self) -> str:
        return f"first_contact {str(self.expected).lower()}"


@dataclass(frozen=True)
class Field:
    name: str
    equals: str | None  # None: the field is set at all

    def holds(self, facts: Facts) -> bool:
        value = facts.fields.get(self.name)
        if self.equals is None:
            return value not in (None, "")
        return str(value).strip().casefold() == self.equals.casefold()

    def describe(self) -> str:
        if self.equals is None:
            return f"field {self.name} is set"
        return f"field {self.name} = {self.equals}"


@dataclass(frozen=True)
class Not:
    inner: Condition

    def holds(self, facts: Facts) -> bool:
        return not self.inner.holds(facts)

    def describe(self) -> str:
        return f"not ({self.inner.describe()})"


@dataclass(frozen=True)
class All:
    parts: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return all(p.holds(facts) for p in self.parts)

    def describe(self) -> str:
        return " and ".join(p.describe() for p in self.parts)


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def holds(self, facts: Facts) -> bool:
        return any(p.holds(facts) for p in self.parts)

    def describe(self) -> str:
        return "(" + " or ".join(p.describe() for p in self.parts) + ")"


def describe_days(value: Any) -> str:
    """The days as the author wrote them: `mon-fri`, `sat,sun` (a YAML list joined by commas)."""
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def parse_days(value: Any) -> frozenset[int]:
    """`mon-fri`, `sat,sun`, `[lun, mar]` → weekday numbers (Monday 0); ValueError if unknown."""
    items = value if isinstance(value, list) else str(value).split(",")
    days: set[int] = set()
    for item in items:
        # Accents and case do not matter: `sáb`, `Miércoles`, `LUN-VIE`.
        part = strip_accents(str(item).strip().lower())
        if "-" in part:
            first, last = (DAY_ALIASES.get(p.strip()) for p in part.split("-", 1))
            if first is None or last is None:
                raise BadValue(
                    f"unknown day range {part!r} (use mon..sun or lun..dom, e.g. mon-fri)",
                    code="unknown_day_range",
                    value=part,
                )
            days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            day = DAY_ALIASES.get(part)
            if day is None:
                raise BadValue(
                    f"unknown day {part!r} (use mon..sun or lun..dom, e.g. sat,sun)",
                    code="unknown_day",
                    value=part,
                )
            days.add(day)
    return frozenset(days)


def parse_hours(value: Any) -> tuple[int, int]:
    """`08:00-17:00` (or overnight `22:00-06:00`) → minutes after midnight."""
    found = HOURS_RE.match(str(value))
    if not found:
        raise BadValue(
            f"hours must look like 08:00-17:00, got {value!r}",
            code="bad_time_range",
            value=str(value),
        )
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if any(h > 24 or m > 59 or (h == 24 and m) for h, m in ((h1, m1), (h2, m2))):
        raise BadValue(
            f"hours out of range in {value!r}", code="time_out_of_range", value=str(value)
        )
    return h1 * 60 + m1, h2 * 60 + m2


def parse_duration(value: Any) -> float:
    """`10s`, `5m`, `1h`, `2d` or a number of seconds."""
    found = DURATION_RE.match(str(value))
    if isinstance(value, bool) or not found:
        raise BadValue(
            f"expected a duration like 10s, 5m or 1h, got {value!r}",
            code="bad_duration",
            value=str(value),
        )
    return float(found.group(1)) * UNITS[found.group(2)]
