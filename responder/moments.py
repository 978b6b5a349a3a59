"""Dates and times people type (`send_at`, `--at`): ISO 8601, the business's local time unless
an offset is given, and within a horizon of now, so that no later date arithmetic (time zones,
windows, retries) can run off the calendar."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

# A message scheduled further ahead is a typo (or a year 9999 sent to break things).
SEND_HORIZON = timedelta(days=366)
# Trying the rules at another moment: any date that is not absurd.
SIMULATE_HORIZON = timedelta(days=100 * 365)
EXAMPLE = "2026-11-23T09:00"


class BadMoment(ValueError):
    """A date and time that cannot be used; the message says why, in our words."""


def parse_moment(value: str, timezone: tzinfo, now: datetime, horizon: timedelta) -> datetime:
    """`value` as an aware datetime (local to `timezone` without an offset), at most `horizon`
    away from `now`; BadMoment otherwise."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadMoment(f"{value!r} is not an ISO 8601 date and time (e.g. {EXAMPLE})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone)
    return within_horizon(moment, now, horizon)


def within_horizon(moment: datetime, now: datetime, horizon: timedelta) -> datetime:
    """`moment` itself when it is at most `horizon` from `now`, either way; BadMoment if not."""
    try:
        distance = abs(moment - now)
    except OverflowError:  # offsets at the edge of the calendar (year 1, year 9999)
        distance = horizon + horizon
    if distance > horizon:
        raise BadMoment(f"{moment.isoformat()} is more than {_words(horizon)} from now")
    return moment


def _words(horizon: timedelta) -> str:
    years = round(horizon.days / 365)
    return "a year" if years == 1 else f"{years} years"
