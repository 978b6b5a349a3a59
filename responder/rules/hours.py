"""Opening hours (`settings.hours`): when the business is open, and the hours in Spanish words.

Times are local to `settings.timezone`: callers pass the message's time already converted.
A shift belongs to the day it starts: `fri: "22:00-02:00"` is open until 2:00 on Saturday,
and a closed date cancels the shifts that start on it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from responder.rules.conditions import BadValue, Facts, parse_hours

DAY_WORDS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
CLOSED_WORDS = ("closed", "cerrado")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class Shift:
    start: int  # minutes after midnight
    end: int  # after `start`, or before it when the shift runs past midnight

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def describe(self) -> str:
        if (self.start, self.end) == (0, DAY_MINUTES):
            return "todo el día"
        return f"de {_clock(self.start)} a {_clock(self.end)}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


@dataclass(frozen=True)
class OpeningHours:
    """Shifts per weekday (Monday first), whole days off, and the broadcast quiet window."""

    week: tuple[tuple[Shift, ...], ...] = ((),) * 7
    closed: frozenset[date] = frozenset()
    quiet: Shift | None = None  # quiet hours: broadcasts wait inside them (responder.broadcasts)
    week_text: str = field(default="", compare=False)

    def shifts_on(self, day: date) -> tuple[Shift, ...]:
        return () if day in self.closed else self.week[day.weekday()]

    def is_open(self, now: datetime) -> bool:
        """Whether `now` (local time) falls in a shift that started today or yesterday."""
        minute = now.hour * 60 + now.minute
        today = now.date()
        for shift in self.shifts_on(today):
            if shift.start <= minute < (DAY_MINUTES if shift.overnight else shift.end):
                return True
        return any(
            s.overnight and minute < s.end for s in self.shifts_on(today - timedelta(days=1))
        )

    def today_texts(self) -> set[str]:
        """Every text `hours.today` can show, to measure replies that show it."""
        return {_today(shifts) for shifts in self.week} | {_today(())}

    def today_text(self, now: datetime) -> str:
        """`hoy de 8:00 a 17:00`, `hoy de 8:00 a 12:00 y de 14:00 a 18:00`, `hoy cerrado`."""
        return _today(self.shifts_on(now.date()))


def _today(shifts: tuple[Shift, ...]) -> str:
    return "hoy " + _shifts_text(shifts) if shifts else "hoy cerrado"


def _shifts_text(shifts: tuple[Shift, ...]) -> str:
    return " y ".join(s.describe() for s in shifts)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " y " + words[-1]


def week_text(week: tuple[tuple[Shift, ...], ...]) -> str:
    """`lunes a viernes de 8:00 a 17:00, sábado de 9:00 a 13:00`: runs of days with the same
    shifts, and runs with equal shifts named together (`lunes, miércoles y viernes de ...`)."""
    runs: list[tuple[int, int]] = []  # (first day, last day) with equal shifts
    for day, shifts in enumerate(week):
        if runs and week[runs[-1][1]] == shifts and runs[-1][1] == day - 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    by_shifts: dict[tuple[Shift, ...], list[str]] = {}
    for first, last in runs:
        if not week[first]:
            continue
        if first == last:
            label = DAY_WORDS[first]
        else:
            joiner = " y " if last == first + 1 else " a "
            label = DAY_WORDS[first] + joiner + DAY_WORDS[last]
        by_shifts.setdefault(week[first], []).append(label)
    if not by_shifts:
        return "cerrado todos los días"
    return ", ".join(f"{_join(days)} {_shifts_text(s)}" for s, days in by_shifts.items())


def parse_shifts(value: Any) -> tuple[Shift, ...]:
    """`"08:00-17:00"`, `"08:00-12:00, 14:00-18:00"`, a list of those, or `closed`."""
    if value is False or (isinstance(value, str) and value.strip().lower() in CLOSED_WORDS):
        return ()
    items = value if isinstance(value, list) else str(value).split(",")
    shifts = []
    for item in items:
        start, end = parse_hours(item)
        if start == end:
            raise BadValue(
                f"{str(item).strip()!r} is empty; a whole day is 00:00-24:00",
                code="empty_shift",
                value=str(item).strip(),
            )
        if start == DAY_MINUTES:
            raise BadValue(
                f"{str(item).strip()!r} starts at 24:00; write 00:00",
                code="starts_at_24",
                value=str(item).strip(),
            )
        shifts.append(Shift(start, end))
    shifts.sort(key=lambda s: s.start)
    for before, after in itertools.pairwise(shifts):
        if before.overnight or after.start < before.end:
            raise BadValue(
                f"{value!r}: the ranges overlap", code="shifts_overlap", value=_shown(value)
            )
    return tuple(shifts)


def _shown(value: Any) -> str:
    """A value as its author wrote it, for a message: a list joined by commas."""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def parse_date(value: Any) -> date:
    """A closed day, `2026-12-25`."""
    text = value.isoformat() if isinstance(value, date) else str(value).strip()
    try:
        if not _DATE_RE.match(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise BadValue(
            f"closed: {value!r} is not a date like 2026-12-25", code="bad_date", value=str(value)
        ) from None


@dataclass(frozen=True)
class Open:
    """`when: open`: inside the opening hours."""

    hours: OpeningHours

    def holds(self, facts: Facts) -> bool:
        return self.hours.is_open(facts.now)

    def describe(self) -> str:
        return "open"


@dataclass(frozen=True)
class Closed:
    """`when: closed`: outside the opening hours, closed dates included."""

    hours: OpeningHours

    def holds(self, facts: Facts) -> bool:
        return not self.hours.is_open(facts.now)

    def describe(self) -> str:
        return "closed"


class HoursValue(Mapping[str, str]):
    """What `{{ hours.today }}` and `{{ hours.week }}` show: worked out only when a template
    shows it (most replies do not; the context is built for every message)."""

    def __init__(self, hours: OpeningHours, now: datetime) -> None:
        self._hours = hours
        self._now = now

    @property
    def today(self) -> str:
        return self._hours.today_text(self._now)

    @property
    def week(self) -> str:
        return self._hours.week_text

    def __getitem__(self, key: str) -> str:
        if key == "today":
            return self.today
        if key == "week":
            return self.week
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("today", "week"))

    def __len__(self) -> int:
        return 2


def template_value(hours: OpeningHours | None, now: datetime) -> Mapping[str, str]:
    """What `{{ hours.today }}` and `{{ hours.week }}` show; nothing without settings.hours."""
    if hours is None:
        return {}
    return HoursValue(hours, now)
