"""What both backends share about the dashboard's counts (migrations 0022 / pg 0010): the
table keeps messages per UTC hour of creation × direction × provider × status × rule, kept up to
date by triggers in the writer's transactions. A period is read in whole hours."""

from __future__ import annotations

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
    return datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)
