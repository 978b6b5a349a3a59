"""Reads rules.yaml into a RuleSet, collecting every problem with its line at once."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from responder import text as sms_text
from responder.phone import validate_region
from responder.rules import conditions as cond
from responder.rules.matcher import Matcher
from responder.rules.model import (
    MATCH_MODES,
    KeywordReply,
    Limit,
    Problem,
    Rule,
    RulesSettings,
    Version,
)
from responder.rules.yamlpos import PosDict, PosList, YAMLSyntaxError, load
from responder.templating import Template, make_environment

PROVIDERS = ("massiva", "massms", "sandbox")
TOP_KEYS = ("settings", "rules")
SETTINGS_KEYS = (
    "timezone",
    "country",
    "reply_limit",
    "loop_guard",
    "dedupe_window",
    "smart_encoding",
    "handoff_timeout",
    "opt_out",
    "opt_in",
)
RULE_KEYS = (
    "name",
    "keywords",
    "pattern",
    "match",
    "fuzzy",
    "when",
    "reply",
    "template",
    "via",
    "handoff",
    "fallback",
    "description",
)
WHEN_KEYS = ("days", "hours", "first_contact", "field", "not", "all", "any")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
DEFAULT_OPT_OUT = (
    ("baja", "stop", "cancelar", "alto", "unsubscribe", "parar", "salir"),
    "No recibirá más mensajes. Envíe ALTA para volver.",
)
DEFAULT_OPT_IN = (("alta", "start", "unstop", "volver"), "Suscripción reactivada.")


@dataclass
class RuleSet:
    """Everything needed to answer a message: settings, rules in file order, the matcher."""

    settings: RulesSettings
    rules: tuple[Rule, ...]
    matcher: Matcher
    version: Version
    problems: tuple[Problem, ...] = ()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


@dataclass
class _Reader:
    env: ImmutableSandboxedEnvironment
    problems: list[Problem] = field(default_factory=list)

    def error(self, line: int, message: str, rule: str | None = None) -> None:
        self.problems.append(Problem(line, message, rule))

    def warn(self, line: int, message: str, rule: str | None = None) -> None:
        self.problems.append(Problem(line, message, rule, "warning"))

    def check_keys(
        self, mapping: PosDict, allowed: tuple[str, ...], what: str, rule: str | None = None
    ) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.error(mapping.line_of(key), f"unknown key '{key}' in {what}{hint}", rule)

    def template(
        self, source: str, line: int, rule: str | None, is_file: bool = False
    ) -> Template | None:
        try:
            if is_file:
                return self.env.get_template(source)
            return self.env.from_string(source)
        except TemplateNotFound:
            self.error(line, f"template '{source}' not found in the templates folder", rule)
        except TemplateSyntaxError as err:
            where = f"{source}:{err.lineno}: " if is_file else ""
            self.error(line, f"template syntax error: {where}{err.message}", rule)
        return None


def parse_duration(value: Any) -> float:
    """`10s`, `5m`, `1h`, `2d` or a number of seconds."""
    found = DURATION_RE.match(str(value))
    if isinstance(value, bool) or not found:
        raise ValueError(f"expected a duration like 10s, 5m or 1h, got {value!r}")
    return float(found.group(1)) * UNITS[found.group(2)]


def _keywords(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return [str(k) for k in items if k is not None]


def _read_limit(r: _Reader, s: PosDict, key: str, default: Limit) -> Limit:
    value = s.get(key)
    if value is None:
        return default
    if not isinstance(value, dict) or set(value) != {"count", "per"}:
        r.error(s.line_of(key), f"{key} must be {{count: N, per: DURATION}}")
        return default
    try:
        count = int(value["count"])
        if count < 1:
            raise ValueError
        return Limit(count, parse_duration(value["per"]))
    except (TypeError, ValueError):
        r.error(s.line_of(key), f"{key}: count must be a positive number and per a duration")
        return default


def _read_keyword_reply(
    r: _Reader, s: PosDict, key: str, default: tuple[tuple[str, ...], str]
) -> KeywordReply | None:
    value = s.get(key)
    if value is False:
        return None
    if value is None:
        value = PosDict()
        value.line, value.key_lines = s.line, {}
    if not isinstance(value, PosDict):
        r.error(s.line_of(key), f"{key} must be a mapping with keywords and reply")
        value = PosDict()
        value.line, value.key_lines = s.line_of(key), {}
    r.check_keys(value, ("keywords", "reply"), key)
    keywords = tuple(sms_text.normalize(k) for k in _keywords(value.get("keywords", default[0])))
    source = str(value.get("reply", default[1]))
    template = r.template(source, value.line_of("reply"), None)
    if template is None:
        return None
    return KeywordReply(tuple(k for k in keywords if k), template, source)


def _read_settings(r: _Reader, s: Any) -> RulesSettings:
    if s is None:
        s = PosDict()
        s.line, s.key_lines = 1, {}
    if not isinstance(s, PosDict):
        r.error(getattr(s, "line", 1), "settings must be a mapping")
        return RulesSettings()
    r.check_keys(s, SETTINGS_KEYS, "settings")
    defaults = RulesSettings()
    timezone = defaults.timezone
    if "timezone" in s:
        try:
            timezone = ZoneInfo(str(s["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            r.error(s.line_of("timezone"), f"unknown timezone {s['timezone']!r}")
    country = defaults.country
    if "country" in s:
        try:
            country = validate_region(str(s["country"]))
        except ValueError as err:
            r.error(s.line_of("country"), str(err))

    def duration(key: str, default: float | None) -> float | None:
        if s.get(key) is None:
            return default
        try:
            return parse_duration(s[key])
        except ValueError as err:
            r.error(s.line_of(key), f"{key}: {err}")
            return default

    smart = s.get("smart_encoding", True)
    if not isinstance(smart, bool):
        r.error(s.line_of("smart_encoding"), "smart_encoding must be true or false")
        smart = True
    return RulesSettings(
        timezone=timezone,
        country=country,
        reply_limit=_read_limit(r, s, "reply_limit", defaults.reply_limit),
        loop_guard=_read_limit(r, s, "loop_guard", defaults.loop_guard),
        dedupe_window=duration("dedupe_window", defaults.dedupe_window) or 0.0,
        smart_encoding=smart,
        handoff_timeout=duration("handoff_timeout", None),
        opt_out=_read_keyword_reply(r, s, "opt_out", DEFAULT_OPT_OUT),
        opt_in=_read_keyword_reply(r, s, "opt_in", DEFAULT_OPT_IN),
    )


def _read_condition(r: _Reader, value: Any, line: int, rule: str) -> cond.Condition | None:
    if not isinstance(value, PosDict) or not value:
        r.error(line, "when: expects a mapping such as {days: mon-fri, hours: 08:00-17:00}", rule)
        return None
    r.check_keys(value, WHEN_KEYS, "when", rule)
    parts: list[cond.Condition] = []
    for key, item in value.items():
        at = value.line_of(key)
        try:
            if key == "days":
                parts.append(cond.Days(cond.parse_days(item), str(item)))
            elif key == "hours":
                start, end = cond.parse_hours(item)
                parts.append(cond.Hours(start, end, str(item)))
            elif key == "first_contact":
                if not isinstance(item, bool):
                    raise ValueError("first_contact must be true or false")
                parts.append(cond.FirstContact(item))
            elif key == "field":
                if not isinstance(item, dict) or "name" not in item:
                    raise ValueError("field expects {name: FIELD, equals: VALUE}")
                extra = set(item) - {"name", "equals"}
                if extra:
                    raise ValueError(f"field: unknown key '{sorted(extra)[0]}'")
                equals = item.get("equals")
                parts.append(cond.Field(str(item["name"]), None if equals is None else str(equals)))
            elif key == "not":
                inner = _read_condition(r, item, at, rule)
                if inner is not None:
                    parts.append(cond.Not(inner))
            elif key in ("all", "any"):
                if not isinstance(item, list) or not item:
                    raise ValueError(f"{key} expects a list of conditions")
                lines = getattr(item, "item_lines", [at] * len(item))
                inner_parts = [_read_condition(r, c, ln, rule) for c, ln in zip(item, lines)]
                found = tuple(p for p in inner_parts if p is not None)
                parts.append(cond.All(found) if key == "all" else cond.AnyOf(found))
        except ValueError as err:
            r.error(at, str(err), rule)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else cond.All(tuple(parts))


def _read_rule(r: _Reader, raw: Any, line: int, position: int) -> Rule | None:
    if not isinstance(raw, PosDict):
        r.error(line, "each rule must be a mapping with at least name and reply")
        return None
    name = str(raw.get("name") or f"#{position + 1}")
    if "name" not in raw:
        r.error(raw.line, "rule has no name", name)
    r.check_keys(raw, RULE_KEYS, "rule", name)

    keywords = tuple(sms_text.normalize(k) for k in _keywords(raw.get("keywords", [])))
    if "keywords" in raw and (not keywords or not all(keywords)):
        r.error(raw.line_of("keywords"), "keywords must be non-empty words or phrases", name)
    mode = str(raw.get("match", "word"))
    if mode not in MATCH_MODES:
        r.error(raw.line_of("match"), f"match must be one of {', '.join(MATCH_MODES)}", name)
        mode = "word"
    fuzzy = raw.get("fuzzy", 0)
    if isinstance(fuzzy, bool) or not isinstance(fuzzy, int) or not 0 <= fuzzy <= 3:
        r.error(raw.line_of("fuzzy"), "fuzzy must be a number of typos from 0 to 3", name)
        fuzzy = 0
    if fuzzy and mode == "contains":
        r.error(raw.line_of("fuzzy"), "fuzzy cannot be combined with match: contains", name)

    pattern = None
    if "pattern" in raw:
        try:
            pattern = re.compile(str(raw["pattern"]))
        except re.error as err:
            r.error(raw.line_of("pattern"), f"bad regular expression: {err}", name)
        if keywords:
            r.error(raw.line_of("pattern"), "use either keywords or pattern, not both", name)

    when = None
    if "when" in raw:
        when = _read_condition(r, raw["when"], raw.line_of("when"), name)

    fallback = raw.get("fallback", False) is True
    if not keywords and "pattern" not in raw and "when" not in raw and not fallback:
        r.error(raw.line, "rule needs keywords, pattern, when or fallback: true", name)

    reply: Template | None = None
    source = ""
    if "reply" in raw and "template" in raw:
        r.error(raw.line_of("template"), "use either reply or template, not both", name)
    elif "template" in raw:
        source = str(raw["template"])
        reply = r.template(source, raw.line_of("template"), name, is_file=True)
    elif "reply" in raw:
        source = str(raw["reply"])
        reply = r.template(source, raw.line_of("reply"), name)
        _check_length(r, raw, source, name)
    elif not raw.get("handoff"):
        r.error(raw.line, "rule needs a reply or a template", name)

    via = raw.get("via")
    if via is not None and via not in PROVIDERS:
        r.error(raw.line_of("via"), f"unknown via '{via}'; use {', '.join(PROVIDERS)}", name)
        via = None
    return Rule(
        name=name,
        position=position,
        line=raw.line,
        keywords=keywords,
        mode=mode,
        fuzzy=fuzzy,
        pattern=pattern,
        when=when,
        reply=reply,
        reply_source=source,
        template=source if "template" in raw and "reply" not in raw else None,
        via=via,
        handoff=raw.get("handoff", False) is True,
        fallback=fallback,
    )


def _check_length(r: _Reader, raw: PosDict, source: str, name: str) -> None:
    if "{" in source:
        return  # dynamic: its length is only known when rendered
    encoded = sms_text.smart_encode(source)
    parts = sms_text.segments(encoded)
    if parts > 1:
        r.warn(raw.line_of("reply"), f"reply costs {parts} SMS ({len(encoded)} characters)", name)


def _check_shadowing(r: _Reader, rules: list[Rule]) -> None:
    seen: dict[tuple[str, str], str] = {}
    names: dict[str, int] = {}
    for rule in rules:
        if rule.name in names:
            r.error(rule.line, f"duplicate rule name (first at line {names[rule.name]})", rule.name)
        names.setdefault(rule.name, rule.line)
        if rule.when is not None or rule.fallback:
            continue
        shadowed = [k for k in rule.keywords if (rule.mode, k) in seen]
        if rule.keywords and len(shadowed) == len(rule.keywords):
            earlier = seen[(rule.mode, shadowed[0])]
            r.warn(
                rule.line,
                f"unreachable: rule '{earlier}' already answers these keywords",
                rule.name,
            )
        for k in rule.keywords:
            seen.setdefault((rule.mode, k), rule.name)


def load_rules(
    path: Path,
    templates: Path,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RuleSet:
    """Loads and compiles a rules file; problems are collected in `RuleSet.problems`."""
    raw_bytes = path.read_bytes()
    version = Version(hashlib.sha256(raw_bytes).hexdigest(), clock(), str(path))
    reader = _Reader(make_environment(templates))
    try:
        doc = load(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        doc, reader.problems = None, [Problem(1, "the file is not UTF-8 text")]
    except YAMLSyntaxError as err:
        doc, reader.problems = None, [Problem(err.line, f"YAML syntax: {err.message}")]
    rules: list[Rule] = []
    settings = RulesSettings()
    if doc is not None and not isinstance(doc, PosDict):
        reader.error(1, "the file must be a mapping with settings: and rules:")
    elif isinstance(doc, PosDict):
        reader.check_keys(doc, TOP_KEYS, "the file")
        settings = _read_settings(reader, doc.get("settings"))
        raw_rules = doc.get("rules")
        if not isinstance(raw_rules, PosList):
            reader.error(doc.line_of("rules"), "rules: must be a list of rules")
        else:
            for position, (raw, line) in enumerate(zip(raw_rules, raw_rules.item_lines)):
                rule = _read_rule(reader, raw, line, position)
                if rule is not None:
                    rules.append(rule)
            _check_shadowing(reader, rules)
    problems = sorted(reader.problems, key=lambda p: p.line)
    return RuleSet(settings, tuple(rules), Matcher(rules), version, tuple(problems))
