"""How the admin pages show things: Spanish labels, local times, phone numbers, rule summaries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers

from responder.caches import short_lru
from responder.rules.model import Rule
from responder.text import find_words

STATUS_LABELS = {
    "received": "recibido",
    "queued": "en cola",
    "sending": "enviando",
    "sent": "enviado",
    "delivered": "entregado",
    "failed": "falló",
    "scheduled": "programado",
    # The provider's answer could not be read: it may have gone out; it is not sent again.
    "unconfirmed": "sin confirmar",
}
ORIGIN_LABELS = {"auto": "bot", "agent": "agente", "cli": "consola", "broadcast": "difusión"}
MATCH_LABELS = {
    "word": "palabra completa",
    "first": "al inicio del mensaje",
    "exact": "mensaje exacto",
    "contains": "en cualquier parte",
}
RULE_LABELS = {"opt_out": "baja (BAJA)", "opt_in": "alta (ALTA)"}
NAME_FIELDS = ("nombre", "name")


def local_time(value: datetime | None, tz: ZoneInfo, now: datetime) -> str:
    """`14:05` today, `23/11 14:05` this year, `23/11/2025` before."""
    if value is None:
        return ""
    moment = value.astimezone(tz)
    today = now.astimezone(tz)
    if moment.date() == today.date():
        return moment.strftime("%H:%M")
    if moment.year == today.year:
        return moment.strftime("%d/%m %H:%M")
    return moment.strftime("%d/%m/%Y")


# The inbox shows 50 numbers on every poll; phonenumbers takes ~0.1 ms to parse and format each
# (half a poll's rendering). A pure function of its argument: a process-local cache is safe.
@short_lru(maxsize=4096, max_chars=32)
def show_phone(digits: str) -> str:
    """`584121234567` → `+58 412-1234567`, as the country writes it internationally."""
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return "+" + digits
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def contact_name(fields: dict[str, object]) -> str:
    for key in NAME_FIELDS:
        value = fields.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def origin_label(origin: str, rule: str | None) -> str:
    """Who wrote an outbound message: the bot (and its rule), an agent or the console."""
    who = ORIGIN_LABELS.get(origin, origin)
    if rule:
        return f"{who} · regla {RULE_LABELS.get(rule, rule)}"
    return who


def rule_matching(rule: Rule) -> str:
    """How a rule picks its messages, in words."""
    if rule.fallback:
        return "si ninguna otra regla coincide"
    if rule.pattern is not None:
        return f"expresión regular: {rule.pattern.pattern}"
    if rule.keywords:
        words = ", ".join(f"«{k}»" for k in rule.keywords)
        how = MATCH_LABELS.get(rule.mode, rule.mode)
        typos = ""
        if rule.fuzzy:
            typos = f", admite {rule.fuzzy} error{'es' if rule.fuzzy > 1 else ''} de tipeo"
        return f"{words} ({how}{typos})"
    if rule.when is not None:
        return "cualquier mensaje mientras se cumpla la condición"
    return "cualquier mensaje"


def duration(seconds: float) -> str:
    """`45 s`, `30 min`, `1 h`, `1 h 30 min`, `2 d`."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole % 86400 == 0:
        return f"{whole // 86400} d"
    hours, minutes = divmod(whole // 60, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def reply_preview(rule: Rule, width: int = 120) -> str:
    if rule.template:
        return f"plantilla {rule.template}"
    text = " ".join(rule.reply_source.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def local_days(today: date, count: int) -> list[date]:
    return [today - timedelta(days=n) for n in range(count - 1, -1, -1)]


def daily_counts(
    hourly: Iterable[tuple[datetime, str, int]], tz: ZoneInfo, days: list[date]
) -> list[tuple[str, int, int]]:
    """Hourly (hour, direction, count) rows → (`dd/mm`, in, out) per local day."""
    totals = {day: [0, 0] for day in days}
    for hour, direction, count in hourly:
        moment = hour.astimezone(tz)
        slot = totals.get(moment.date())
        if slot is not None:
            slot[0 if direction == "in" else 1] += count
    return [(day.strftime("%d/%m"), totals[day][0], totals[day][1]) for day in days]


def match_excerpt(text: str, words: list[str], around: int = 40) -> list[tuple[str, bool]] | None:
    """The part of a message that a search found, as (text, found) parts: about `around`
    characters before the first word found and twice that after, every word found in it
    marked; None when no word occurs (the page escapes each part)."""
    spans = find_words(text, words)
    if not spans:
        return None
    first, last = spans[0][0], spans[0][1]
    start, end = max(0, first - around), min(len(text), last + 2 * around)
    parts: list[tuple[str, bool]] = [("…" if start else "", False)]
    at = start
    for span_start, span_end in spans:
        if span_start >= end:
            break
        if span_start > at:
            parts.append((text[at:span_start], False))
        parts.append((text[span_start : min(span_end, max(end, span_end))], True))
        at = span_end
    if at < end:
        parts.append((text[at:end], False))
    if end < len(text):
        parts.append(("…", False))
    return [(part, found) for part, found in parts if part]
