"""The dashboard's periods: today, the last 7, 14, 30 or 90 days, or any range of days, in the
shop's time zone. Pure: the query parameters and today's date in, a Period or a reason out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DEFAULT = "14"
CHOICES = {"today": "Hoy", "7": "7 días", "14": "14 días", "30": "30 días", "90": "90 días"}
MAX_DAYS = 366  # a custom range: one bar per day on the chart


@dataclass(frozen=True)
class Period:
    choice: str  # a key of CHOICES, or "custom"
    first: date  # local days, both included
    last: date

    @property
    def days(self) -> list[date]:
        count = (self.last - self.first).days + 1
        return [self.first + timedelta(days=n) for n in range(count)]

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """From the first day's local midnight to the midnight after the last day."""
        start = datetime.combine(self.first, datetime.min.time(), tz)
        end = datetime.combine(self.last + timedelta(days=1), datetime.min.time(), tz)
        return start, end

    @property
    def label(self) -> str:
        if self.choice == "today":
            return "Hoy"
        if self.choice == "custom":
            return f"Del {self.first:%d/%m/%Y} al {self.last:%d/%m/%Y}"
        return f"Últimos {self.choice} días"


def chosen(params: dict[str, str], today: date) -> tuple[Period, str | None]:
    """The period the query asks for (`period`, and `from`/`to` as YYYY-MM-DD for a custom
    one), and an error in Spanish when it asks for one that cannot be (then the default)."""
    choice = params.get("period") or DEFAULT
    if choice in CHOICES:
        count = 1 if choice == "today" else int(choice)
        return Period(choice, today - timedelta(days=count - 1), today), None
    fallback = chosen({}, today)[0]
    if choice != "custom":
        return fallback, "Ese periodo no existe: se muestran los últimos 14 días."
    try:
        first = date.fromisoformat(params.get("from", ""))
        last = date.fromisoformat(params.get("to", ""))
    except ValueError:
        return fallback, "Indique las dos fechas del periodo (desde y hasta)."
    if last < first:
        return fallback, "La fecha «hasta» es anterior a la fecha «desde»."
    if (last - first).days + 1 > MAX_DAYS:
        return fallback, f"El periodo puede tener como mucho {MAX_DAYS} días."
    return Period("custom", first, last), None
