"""Dates and times people type: ISO 8601, local unless an offset is given, within a horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from responder.moments import SEND_HORIZON, SIMULATE_HORIZON, BadMoment, parse_moment

CARACAS = ZoneInfo("America/Caracas")
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24 09:00", datetime(2026, 11, 24, 9, 0, tzinfo=CARACAS)),
        ("2026-11-24T09:00-04:00", datetime(2026, 11, 24, 13, 0, tzinfo=UTC)),
        ("2026-11-24T13:00Z", datetime(2026, 11, 24, 13, 0, tzinfo=UTC)),
        ("2025-11-23T14:00Z", datetime(2025, 11, 23, 14, 0, tzinfo=UTC)),  # a year ago, in the past
    ],
)
def test_parse_moment(value: str, expected: datetime) -> None:
    assert parse_moment(value, CARACAS, NOW, SEND_HORIZON) == expected


@pytest.mark.parametrize(
    ("value", "horizon", "message"),
    [
        ("mañana", SEND_HORIZON, "'mañana' is not an ISO 8601 date and time"),
        ("2026-13-01 09:00", SEND_HORIZON, "is not an ISO 8601 date and time"),
        ("9999-12-31 23:59", SEND_HORIZON, "is more than a year from now"),
        ("9999-12-31T23:59:59-23:59", SIMULATE_HORIZON, "is more than 100 years from now"),
        ("0001-01-01T00:00+14:00", SIMULATE_HORIZON, "is more than 100 years from now"),
        ("2027-11-25 09:00", SEND_HORIZON, "is more than a year from now"),
    ],
)
def test_parse_moment_refuses(value: str, horizon: timedelta, message: str) -> None:
    with pytest.raises(BadMoment, match=message):
        parse_moment(value, CARACAS, NOW, horizon)
