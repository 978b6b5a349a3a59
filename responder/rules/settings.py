"""`settings:` of rules.yaml: one table of every setting (name, reader, meaning), read into
RulesSettings with an error per bad value. Defaults are RulesSettings' own; docs/rules.md
documents every setting (tests/test_rules_settings.py checks it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from responder import text as sms_text
from responder.phone import validate_region
from responder.rules.conditions import BadValue, parse_days, parse_duration, parse_hours
from responder.rules.hours import (
    DAY_MINUTES,
    OpeningHours,
    Shift,
    parse_date,
    parse_shifts,
    week_text,
)
from responder.rules.model import KeywordReply, Limit, Retry, RulesSettings
from responder.rules.reader import PROVIDERS, Reader, keywords_of
from responder.rules.yamlpos import PosDict, PosList

DELIVERY_MODES = ("at_least_once", "at_most_once")
MAX_REPLY_SMS = 10  # ten SMS: what the API and the admin allow staff to write at once
DEFAULT_OPT_OUT = (
    ("baja", "stop", "cancelar", "alto", "unsubscribe", "parar", "salir"),
    "No recibirá más mensajes. Envíe ALTA para volver.",
)
DEFAULT_OPT_IN = (("alta", "start", "unstop", "volver"), "Suscripción reactivada.")

# (reader, the settings mapping, the key, RulesSettings' default) -> the value
SettingReader = Callable[[Reader, PosDict, str, Any], Any]


@dataclass(frozen=True)
class Setting:
    name: str
    read: SettingReader
    doc: str  # one line; docs/rules.md has the full text


def _timezone(r: Reader, s: PosDict, key: str, default: ZoneInfo) -> ZoneInfo:
    if key not in s:
        return default
    try:
        return ZoneInfo(str(s[key]))
    except (ZoneInfoNotFoundError, ValueError):
        r.error(
            s.line_of(key),
            f"unknown timezone {s[key]!r}",
            code="unknown_timezone",
            value=str(s[key]),
        )
        return default


def _country(r: Reader, s: PosDict, key: str, default: str) -> str:
    if key not in s:
        return default
    try:
        return validate_region(str(s[key]))
    except ValueError as err:  # responder.phone's words
        r.error(s.line_of(key), str(err), code="unknown_country", value=str(s[key]))
        return default


def _duration(r: Reader, s: PosDict, key: str, default: float | None) -> float | None:
    if s.get(key) is None:
        return default
    try:
        return parse_duration(s[key])
    except BadValue as err:
        r.error(s.line_of(key), f"{key}: {err}", code=err.code, setting=key, **err.params)
        return default


def _positive_duration(r: Reader, s: PosDict, key: str, default: float) -> float:
    """A duration where 0 means the default (`reply_max_age: 0` would expire every reply)."""
    return _duration(r, s, key, default) or default


def _zero_or_duration(r: Reader, s: PosDict, key: str, default: float) -> float:
    return _duration(r, s, key, default) or 0.0


def _flag(r: Reader, s: PosDict, key: str, default: bool) -> bool:
    value = s.get(key, default)
    if not isinstance(value, bool):
        r.error(s.line_of(key), f"{key} must be true or false", code="not_boolean", key=key)
        return default
    return value


def _limit(r: Reader, s: PosDict, key: str, default: Limit) -> Limit:
    value = s.get(key)
    if value is None:
        return default
    if not isinstance(value, dict) or set(value) != {"count", "per"}:
        r.error(
            s.line_of(key), f"{key} must be {{count: N, per: DURATION}}", code="bad_limit", key=key
        )
        return default
    try:
        count = int(value["count"])
        if count < 1:
            raise ValueError
        return Limit(count, parse_duration(value["per"]))
    except (TypeError, ValueError):
        r.error(
            s.line_of(key),
            f"{key}: count must be a positive number and per a duration",
            code="bad_limit_values",
            key=key,
        )
        return default


def _max_reply_sms(r: Reader, s: PosDict, key: str, default: int) -> int:
    value = s.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPLY_SMS:
        r.error(
            s.line_of(key),
            f"max_reply_sms must be a number from 1 to {MAX_REPLY_SMS}",
            code="bad_max_reply_sms",
            most=MAX_REPLY_SMS,
        )
        return default
    return value


def _keyword_reply(
    defaults: tuple[tuple[str, ...], str],
) -> Callable[[Reader, PosDict, str, Any], KeywordReply | None]:
    def read(r: Reader, s: PosDict, key: str, _: Any) -> KeywordReply | None:
        value = s.get(key)
        if value is False:
            return None
        if value is None:
            value = PosDict()
            value.line, value.key_lines = s.line, {}
        if not isinstance(value, PosDict):
            r.error(
                s.line_of(key),
                f"{key} must be a mapping with keywords and reply",
                code="bad_keyword_reply",
                key=key,
            )
            value = PosDict()
            value.line, value.key_lines = s.line_of(key), {}
        r.check_keys(value, ("keywords", "reply"), key)
        keywords = tuple(
            sms_text.normalize(k) for k in keywords_of(value.get("keywords", defaults[0]))
        )
        source = str(value.get("reply", defaults[1]))
        template = r.template(source, value.line_of("reply"), None)
        if template is None:
            return None
        return KeywordReply(
            tuple(k for k in keywords if k), template, source, value.line_of("reply")
        )

    return read


def _retry(r: Reader, s: PosDict, key: str, default: Retry) -> Retry:
    value = s.get(key)
    if value is None:
        return default
    if not isinstance(value, dict) or not set(value) <= {"attempts", "max_age"}:
        r.error(s.line_of(key), "retry must be {attempts: N, max_age: DURATION}", code="bad_retry")
        return default
    try:
        attempts = value.get("attempts", default.attempts)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise BadValue("attempts must be a number, 1 or more", code="bad_attempts")
        max_age = value.get("max_age")
        return Retry(attempts, default.max_age if max_age is None else parse_duration(max_age))
    except BadValue as err:
        r.error(
            s.line_of(key), f"retry: {err}", code=err.code, setting="retry.max_age", **err.params
        )
        return default


def _delivery(r: Reader, s: PosDict, key: str, default: str) -> str:
    delivery = str(s.get(key, default))
    if delivery not in DELIVERY_MODES:
        r.error(
            s.line_of(key),
            f"delivery must be {' or '.join(DELIVERY_MODES)}",
            code="bad_delivery",
            value=delivery,
        )
        return default
    return delivery


def _send_rate(r: Reader, s: PosDict, key: str, _: Any) -> dict[str, float]:
    value = s.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        r.error(
            s.line_of(key),
            "send_rate must be {provider: messages per second}",
            code="bad_send_rate",
        )
        return {}
    rates = {}
    for provider, rate in value.items():
        if provider not in PROVIDERS:
            r.error(
                s.line_of(key),
                f"send_rate: unknown provider '{provider}'",
                code="unknown_provider",
                provider=str(provider),
            )
        elif isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            r.error(
                s.line_of(key),
                f"send_rate: {provider} needs a positive number",
                code="bad_rate",
                provider=provider,
            )
        else:
            rates[provider] = float(rate)
    return rates


def _low_credit(r: Reader, s: PosDict, key: str, _: Any) -> float | None:
    value = s.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        r.error(s.line_of(key), "low_credit must be a number of credits", code="bad_low_credit")
        return None
    return float(value)


def _retention(r: Reader, s: PosDict, key: str, _: Any) -> float | None:
    """`{messages: DURATION}`: how long message texts are kept (None: for ever)."""
    value = s.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"messages"}:
        r.error(s.line_of(key), "retention must be {messages: DURATION}", code="bad_retention")
        return None
    try:
        kept = parse_duration(value["messages"])
    except BadValue as err:
        r.error(s.line_of(key), f"retention: {err}", code=err.code, setting=key, **err.params)
        return None
    if kept < 86400:
        r.error(
            s.line_of(key), "retention: {messages: ...} must be 1d or more", code="short_retention"
        )
        return None
    return kept


HOURS_WORDS = ("closed", "quiet")


def _hours(r: Reader, s: PosDict, key: str, _: Any) -> OpeningHours | None:
    """`hours: {mon-fri: "08:00-17:00", sat: ..., closed: [dates], quiet: "21:00-08:00"}`."""
    value = s.get(key)
    if value is None:
        return None
    if not isinstance(value, PosDict):
        r.error(
            s.line_of(key),
            'hours must be a mapping such as {mon-fri: "08:00-17:00"}',
            code="bad_hours",
            key=key,
        )
        return None
    week: list[tuple[Shift, ...]] = [()] * 7
    named_at: dict[int, int] = {}  # weekday → the line that gave its hours
    closed: set[date] = set()
    quiet = None
    for day_key, item in value.items():
        at = value.line_of(day_key)
        try:
            if day_key == "closed":
                closed |= _closed_dates(r, item, at)
            elif day_key == "quiet":
                start, end = parse_hours(item)
                quiet = Shift(start % DAY_MINUTES, end)
            else:
                days = parse_days(day_key)
                shifts = parse_shifts(item)
                for day in sorted(days):
                    if day in named_at:
                        raise BadValue(
                            f"hours: {day_key} gives a day that line {named_at[day]} gives too",
                            code="day_twice",
                            first_line=named_at[day],
                        )
                    named_at[day] = at
                    week[day] = shifts
        except BadValue as err:
            message = str(err) if str(err).startswith(("hours", "closed")) else f"hours: {err}"
            r.error(at, message, code=err.code, key=str(day_key), **err.params)
    frozen_week = tuple(week)
    return OpeningHours(frozen_week, frozenset(closed), quiet, week_text(frozen_week))


def _closed_dates(r: Reader, item: Any, line: int) -> set[date]:
    if not isinstance(item, list):
        raise BadValue(
            'closed: expects a list of dates, e.g. ["2026-12-25"]', code="closed_not_list"
        )
    lines = item.item_lines if isinstance(item, PosList) else [line] * len(item)
    found: set[date] = set()
    for date_value, at in zip(item, lines):
        try:
            found.add(parse_date(date_value))
        except BadValue as err:
            r.error(at, f"hours: {err}", code=err.code, key="closed", **err.params)
    return found


SETTINGS: tuple[Setting, ...] = (
    Setting("timezone", _timezone, "time zone of conditions, hours and `now`"),
    Setting("country", _country, "region of numbers written without a country code"),
    Setting("hours", _hours, "opening hours per weekday, closed dates, quiet window"),
    Setting("reply_limit", _limit, "most auto-reply SMS per number in a window"),
    Setting("max_reply_sms", _max_reply_sms, "most SMS one auto-reply may cost"),
    Setting("loop_guard", _limit, "most times the same text goes to a number in a window"),
    Setting("dedupe_window", _zero_or_duration, "a repeated message within it is answered once"),
    Setting("smart_encoding", _flag, "replace characters outside GSM-7"),
    Setting("handoff_timeout", _duration, "idle time after which the bot takes over again"),
    Setting("opt_out", _keyword_reply(DEFAULT_OPT_OUT), "opt-out keywords and reply"),
    Setting("opt_in", _keyword_reply(DEFAULT_OPT_IN), "opt-in keywords and reply"),
    Setting("reply_max_age", _positive_duration, "an auto-reply older than this is not sent"),
    Setting("agent_reply_max_age", _positive_duration, "the same for staff messages"),
    Setting("retry", _retry, "how transient send failures are retried"),
    Setting("delivery", _delivery, "at_least_once or at_most_once after a crash"),
    Setting("failover", _flag, "send through the other provider when one cannot"),
    Setting("send_rate", _send_rate, "messages per second per provider"),
    Setting("low_credit", _low_credit, "warn below this many credits"),
    Setting("retention", _retention, "message texts older than this are erased"),
)
SETTINGS_KEYS = tuple(setting.name for setting in SETTINGS)


def read_settings(r: Reader, s: Any) -> RulesSettings:
    if s is None:
        s = PosDict()
        s.line, s.key_lines = 1, {}
    if not isinstance(s, PosDict):
        r.error(getattr(s, "line", 1), "settings must be a mapping", code="settings_not_mapping")
        return RulesSettings()
    r.check_keys(s, SETTINGS_KEYS, "settings")
    defaults = RulesSettings()
    values = {x.name: x.read(r, s, x.name, getattr(defaults, x.name)) for x in SETTINGS}
    return RulesSettings(**values)
