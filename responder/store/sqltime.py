"""How the SQLite backend keeps moments: fixed-width UTC ISO 8601 text, which sorts as time.
Nothing outside the SQLite backend sees these strings; records carry `datetime`s."""

from __future__ import annotations

from datetime import UTC, datetime


def stored(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)  # 3.11 reads the trailing Z as UTC


def maybe_moment(value: str | None) -> datetime | None:
    return moment(value) if value else None
