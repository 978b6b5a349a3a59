"""What both backends share about the dashboard's counts (migrations 0022 / pg 0010): the
table keeps messages per UTC hour of creation × direction × provider × status × rule, kept up to
date by triggers in the writer's transactions. A period is read in whole hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CountKey = tuple[datetime, str, str, str, str]  # hour, direction, provider, status, rule


def hour_key(at: datetime) -> str:
    """The hour column's text for the hour that holds `at`: 'YYYY-MM-DDTHH' (UTC)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H")


def end_key(until: datetime | None) -> str:
    """The first hour past a period that ends (exclusively) at `until`; a period ending
    inside an hour includes that whole hour. None: no end."""
    if until is None:
        return "9999"
    utc = until.astimezone(UTC)
    whole = utc.replace(minute=0, second=0, microsecond=0)
    return hour_key(whole if whole == utc else whole + timedelta(hours=1))


def hour_moment(key: str) -> datetime:
    # By hand: strptime costs ten times as much, and 90 days are 4,320 of these.
    return datetime(int(key[:4]), int(key[5:7]), int(key[8:10]), int(key[11:13]), tzinfo=UTC)


@dataclass(frozen=True)
class Split:
    """A period in hours as the tables hold it: whole UTC days in `days` (read from the daily
    counts), the hours before and after them in `head` and `tail` (from the hourly ones).
    Every range is [start, end) of the tables' key texts."""

    head: tuple[str, str]
    days: tuple[str, str]
    tail: tuple[str, str]

    @property
    def params(self) -> tuple[str, ...]:
        return (*self.head, *self.days, *self.tail)


def split(since: datetime, until: datetime | None) -> Split:
    start, end = hour_key(since), end_key(until)
    first_day = start[:10] if start.endswith("T00") else _next_day(start[:10])
    last_day = end[:10] if end != "9999" else "9999"
    if first_day >= last_day:  # no whole day inside: hours only
        return Split((start, end), ("", ""), ("", ""))
    return Split((start, f"{first_day}T00"), (first_day, last_day), (f"{last_day}T00", end))


def period_params(since: datetime, until: datetime | None) -> tuple[str, ...]:
    """The parameters of both stores' PERIOD, in order: Split.params, then the whole period in
    hours (for the changes not folded yet)."""
    return (*split(since, until).params, hour_key(since), end_key(until))


def _next_day(day: str) -> str:
    return (datetime.strptime(day, "%Y-%m-%d") + timedelta(days=1)).strftime("%Y-%m-%d")
