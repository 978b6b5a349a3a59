"""The opening-hours form: `settings.hours` shown per weekday, and the form turned back into
the mapping DESIGN §10 describes (`mon-fri: "08:00-17:00"`, `closed: [...]`, `quiet: ...`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from responder.rules.conditions import parse_days
from responder.rules.edit import EditError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_LABELS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
_TIME = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")
_RANGE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")
_HOLIDAY_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")


@dataclass(frozen=True)
class HoursForm:
    """Per weekday (Monday first) its (from, to), or None when closed; whole days off; the
    broadcast quiet window. `partial` says the mapping had what one range per day cannot show."""

    days: tuple[tuple[str, str] | None, ...] = (None,) * 7
    holidays: tuple[str, ...] = ()
    quiet: tuple[str, str] | None = None
    partial: bool = False


def _range(value: Any) -> tuple[str, str] | None:
    found = _RANGE.match(str(value))
    return (found.group(1).zfill(5), found.group(2).zfill(5)) if found else None


def read_hours(hours: Mapping[str, Any]) -> HoursForm:
    """The form's view of `settings.hours`."""
    days: list[tuple[str, str] | None] = [None] * 7
    partial = False
    holidays: tuple[str, ...] = ()
    quiet = None
    for key, value in hours.items():
        if key == "closed":
            items = value if isinstance(value, list) else [value]
            holidays = tuple(str(v) for v in items)
        elif key == "quiet":
            quiet = _range(value)
            partial = partial or quiet is None
        else:
            try:
                numbers = parse_days(key)
            except ValueError:
                partial = True
                continue
            shift = _range(value)
            if shift is None and str(value).strip().lower() not in ("closed", "cerrado"):
                partial = True
            for day in numbers:
                days[day] = shift
    return HoursForm(tuple(days), holidays, quiet, partial)


def _time(value: str, what: str) -> str:
    found = _TIME.match(value.strip())
    if not found or (found.group(1) == "24" and found.group(2) != "00"):
        raise EditError(f"La hora {what} no es válida: escríbala como 08:00.")
    return f"{int(found.group(1)):02d}:{found.group(2)}"


def day_range(start: str, end: str, label: str) -> tuple[str, str]:
    """One day's opening range from the form; both times, not equal."""
    if not start.strip() or not end.strip():
        raise EditError(
            f"Escriba la hora de apertura y la de cierre del {label} (o márquelo cerrado)."
        )
    opening, closing = (
        _time(start, f"de apertura del {label}"),
        _time(end, f"de cierre del {label}"),
    )
    if opening == closing:
        raise EditError(f"El {label} abre y cierra a la misma hora.")
    return opening, closing


def parse_holidays(text: str) -> tuple[str, ...]:
    """Whole days off, one per line or separated by commas: `2026-12-25` or `25/12/2026`."""
    found: set[date] = set()
    for item in re.split(r"[\s,;]+", text.strip()):
        if not item:
            continue
        for pattern in _HOLIDAY_FORMATS:
            try:
                found.add(datetime.strptime(item, pattern).date())
                break
            except ValueError:
                continue
        else:
            raise EditError(f"«{item}» no es una fecha: escríbala como 2026-12-25 o 25/12/2026.")
    return tuple(d.isoformat() for d in sorted(found))


def hours_mapping(form: HoursForm) -> dict[str, Any]:
    """The `settings.hours` mapping: runs of consecutive days with the same hours named
    together (`mon-fri`), closed days left out, then `closed` and `quiet`."""
    mapping: dict[str, Any] = {}
    day = 0
    while day < 7:
        shift = form.days[day]
        last = day
        while last + 1 < 7 and form.days[last + 1] == shift:
            last += 1
        if shift is not None:
            key = DAYS[day] if day == last else f"{DAYS[day]}-{DAYS[last]}"
            mapping[key] = f"{shift[0]}-{shift[1]}"
        day = last + 1
    if form.holidays:
        mapping["closed"] = list(form.holidays)
    if form.quiet is not None:
        mapping["quiet"] = f"{form.quiet[0]}-{form.quiet[1]}"
    return mapping
