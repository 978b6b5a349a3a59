"""Reads rules.yaml into a RuleSet, collecting every problem with its line at once."""

from __future__ import annotations

import difflib
import gc
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import TemplateNotFound, TemplateSyntaxError

from responder import text as sms_text
from responder.budget import OverrunRecord, Owner
from responder.phone import validate_region
from responder.rules import conditions as cond
from responder.rules.backtracking import backtracking_risk
from responder.rules.conditions import parse_duration
from responder.rules.flows import Flow, read_flows
from responder.rules.matcher import FUZZY_MIN_LENGTH, Matcher
from responder.rules.model import (
    MATCH_MODES,
    KeywordReply,
    Limit,
    Problem,
    Retry,
    Rule,
    RulesSettings,
    Version,
)
from responder.rules.patterns import BadPattern, Pattern
from responder.rules.yamlerrors import YAMLSyntaxError
from responder.rules.yamlpos import PosDict, PosList, load
from responder.templating import BudgetedEnvironment, BudgetTemplate, Template, make_environment

PROVIDERS = ("massiva", "massms", "sandbox")
TOP_KEYS = ("settings", "rules", "flows")
SETTINGS_KEYS = (
    "timezone",
    "country",
    "reply_limit",
    "max_reply_sms",
    "loop_guard",
    "dedupe_window",
    "smart_encoding",
    "handoff_timeout",
    "opt_out",
    "opt_in",
    "reply_max_age",
    "agent_reply_max_age",
    "retry",
    "delivery",
    "failover",
    "send_rate",
    "low_credit",
)
DELIVERY_MODES = ("at_least_once", "at_most_once")
MAX_REPLY_SMS = 10  # ten SMS: what the API and the admin allow staff to write at once
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
DEFAULT_OPT_OUT = (
    ("baja", "stop", "cancelar", "alto", "unsubscribe", "parar", "salir"),
    "No recibirá más mensajes. Envíe ALTA para volver.",
)
DEFAULT_OPT_IN = (("alta", "start", "unstop", "volver"), "Suscripción reactivada.")
_JINJA_MARKS = ("{{", "{%", "{#")
_PLAIN_NAME = "responder_plain_reply"


@dataclass
class RuleSet:
    """Everything needed to answer a message: settings, rules in file order, the matcher."""

    settings: RulesSettings
    rules: tuple[Rule, ...]
    matcher: Matcher
    version: Version
    problems: tuple[Problem, ...] = ()
    flows: dict[str, Flow] = field(default_factory=dict)
    flow_triggers: Matcher = field(default_factory=lambda: Matcher(()))  # rules named by flow

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    def own_overruns(self, recorded: Iterable[OverrunRecord]) -> list[OverrunRecord]:
        """The recorded overruns of these rules: the same rule, the same pattern or template
        source (an edited rule starts afresh)."""
        owners: set[tuple[str, Owner]] = set()
        templates: list[Template | None] = []
        for rule in self.rules:
            if rule.pattern is not None:
                owners.add(("pattern", rule.pattern.owner))
            templates.append(rule.reply)
        for flow in self.flows.values():
            templates.append(flow.timeout_reply)
            for step in flow.steps:
                templates += [step.text, step.retry]
                if step.accept is not None:
                    owners.add(("pattern", step.accept.owner))
        for keyword_reply in (self.settings.opt_out, self.settings.opt_in):
            templates.append(keyword_reply.reply if keyword_reply else None)
        for template in templates:
            if (owner := getattr(template, "owner", None)) is not None:
                owners.add(("template", owner))
        known = {(kind, o.rule, o.source) for kind, o in owners}
        return [r for r in recorded if (r.kind, r.rule, r.source) in known]


@dataclass
class _Reader:
    env: BudgetedEnvironment
    problems: list[Problem] = field(default_factory=list)
    _plain_code: Any = None  # `{{ responder_plain_reply }}`, compiled once per load

    def plain(self, source: str) -> Template:
        """A reply without Jinja syntax, without compiling it: loading 100,000 rules takes
        seconds instead of a minute. It renders exactly like the compiled text would."""
        if self._plain_code is None:
            self._plain_code = self.env.compile("{{ " + _PLAIN_NAME + " }}")
        text = source.replace("\r\n", "\n").replace("\r", "\n")
        namespace = self.env.make_globals({_PLAIN_NAME: text})
        return self.env.template_class.from_code(self.env, self._plain_code, namespace)

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

    def regex(self, source: str, line: int, rule: str) -> Pattern | None:
        """A rule's `pattern:` or a flow step's `accept:`, warning when it can backtrack."""
        try:
            found = Pattern(source, Owner(rule, line, source))
        except BadPattern as err:
            self.error(line, str(err), rule)
            return None
        if why := backtracking_risk(source):
            self.problems.append(Problem(line, f"pattern {why}", rule, "warning", "backtracking"))
        return found

    def template(
        self, source: str, line: int, rule: str | None, is_file: bool = False
    ) -> Template | None:
        try:
            if is_file:
                found = self.env.get_template(source)
            elif not any(mark in source for mark in _JINJA_MARKS):
                return self.plain(source)
            else:
                found = self.env.from_string(source)
            if isinstance(found, BudgetTemplate):
                # A file used by several rules is one template: it is named after the first.
                found.owner = found.owner or Owner(rule or "settings", line, source)
            return found
        except TemplateNotFound:
            self.error(line, f"template '{source}' not found in the templates folder", rule)
        except TemplateSyntaxError as err:
            where = f"{source}:{err.lineno}: " if is_file else ""
            self.error(line, f"template syntax error: {where}{err.message}", rule)
        return None


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

    def flag(key: str, default: bool) -> bool:
        value = s.get(key, default)
        if not isinstance(value, bool):
            r.error(s.line_of(key), f"{key} must be true or false")
            return default
        return value

    smart = flag("smart_encoding", True)
    delivery = str(s.get("delivery", defaults.delivery))
    if delivery not in DELIVERY_MODES:
        r.error(s.line_of("delivery"), f"delivery must be {' or '.join(DELIVERY_MODES)}")
        delivery = defaults.delivery
    low_credit = s.get("low_credit")
    if low_credit is not None and (
        isinstance(low_credit, bool) or not isinstance(low_credit, int | float) or low_credit < 0
    ):
        r.error(s.line_of("low_credit"), "low_credit must be a number of credits")
        low_credit = None
    return RulesSettings(
        timezone=timezone,
        country=country,
        reply_limit=_read_limit(r, s, "reply_limit", defaults.reply_limit),
        max_reply_sms=_read_max_reply_sms(r, s, defaults.max_reply_sms),
        loop_guard=_read_limit(r, s, "loop_guard", defaults.loop_guard),
        dedupe_window=duration("dedupe_window", defaults.dedupe_window) or 0.0,
        smart_encoding=smart,
        handoff_timeout=duration("handoff_timeout", None),
        opt_out=_read_keyword_reply(r, s, "opt_out", DEFAULT_OPT_OUT),
        opt_in=_read_keyword_reply(r, s, "opt_in", DEFAULT_OPT_IN),
        reply_max_age=duration("reply_max_age", defaults.reply_max_age) or defaults.reply_max_age,
        agent_reply_max_age=duration("agent_reply_max_age", defaults.agent_reply_max_age)
        or defaults.agent_reply_max_age,
        retry=_read_retry(r, s, defaults.retry),
        delivery=delivery,
        failover=flag("failover", False),
        send_rate=_read_send_rate(r, s),
        low_credit=None if low_credit is None else float(low_credit),
    )


def _read_max_reply_sms(r: _Reader, s: PosDict, default: int) -> int:
    value = s.get("max_reply_sms")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPLY_SMS:
        r.error(
            s.line_of("max_reply_sms"), f"max_reply_sms must be a number from 1 to {MAX_REPLY_SMS}"
        )
        return default
    return value


def _read_retry(r: _Reader, s: PosDict, default: Retry) -> Retry:
    value = s.get("retry")
    if value is None:
        return default
    if not isinstance(value, dict) or not set(value) <= {"attempts", "max_age"}:
        r.error(s.line_of("retry"), "retry must be {attempts: N, max_age: DURATION}")
        return default
    try:
        attempts = value.get("attempts", default.attempts)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError("attempts must be a number, 1 or more")
        max_age = value.get("max_age")
        return Retry(attempts, default.max_age if max_age is None else parse_duration(max_age))
    except ValueError as err:
        r.error(s.line_of("retry"), f"retry: {err}")
        return default


def _read_send_rate(r: _Reader, s: PosDict) -> dict[str, float]:
    value = s.get("send_rate")
    if value is None:
        return {}
    if not isinstance(value, dict):
        r.error(s.line_of("send_rate"), "send_rate must be {provider: messages per second}")
        return {}
    rates = {}
    for provider, rate in value.items():
        if provider not in PROVIDERS:
            r.error(s.line_of("send_rate"), f"send_rate: unknown provider '{provider}'")
        elif isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            r.error(s.line_of("send_rate"), f"send_rate: {provider} needs a positive number")
        else:
            rates[provider] = float(rate)
    return rates


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
                parts.append(cond.Days(cond.parse_days(item), cond.describe_days(item)))
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


def _read_rule(
    r: _Reader,
    raw: Any,
    line: int,
    position: int,
    smart_encoding: bool = True,
    max_sms: int = RulesSettings.max_reply_sms,
) -> Rule | None:
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
    mode, fuzzy = _read_match(r, raw, name)
    if fuzzy and mode == "contains":
        r.error(raw.line_of("fuzzy"), "fuzzy cannot be combined with match: contains", name)

    pattern = None
    if "pattern" in raw:
        pattern = r.regex(str(raw["pattern"]), raw.line_of("pattern"), name)
        if pattern is not None and (char := _never_in_normalised(pattern.pattern)):
            r.warn(
                raw.line_of("pattern"),
                "patterns see the message in lowercase, without accents or ¿¡?!.,;: "
                f"so '{char}' never matches",
                name,
            )
        if keywords:
            r.error(raw.line_of("pattern"), "use either keywords or pattern, not both", name)

    when = None
    if "when" in raw:
        when = _read_condition(r, raw["when"], raw.line_of("when"), name)

    flags = {}
    for flag in ("handoff", "fallback"):
        value = raw.get(flag, False)
        if not isinstance(value, bool):
            # `handoff: si` must not silently leave the conversation with the bot.
            r.error(raw.line_of(flag), f"{flag} must be true or false", name)
        flags[flag] = value is True
    fallback = flags["fallback"]
    if not keywords and "pattern" not in raw and "when" not in raw and not fallback:
        r.error(raw.line, "rule needs keywords, pattern, when or fallback: true", name)

    reply: Template | None = None
    source = ""
    if "reply" in raw and "template" in raw:
        r.error(raw.line_of("template"), "use either reply or template, not both", name)
    elif raw.get("template", "") is None or raw.get("reply", "") is None:
        # `reply:` left empty is YAML null: without this check customers would get "None".
        key = "template" if "template" in raw else "reply"
        r.error(raw.line_of(key), f"{key} is empty; write the text in quotes after {key}:", name)
    elif "template" in raw:
        source = str(raw["template"])
        reply = r.template(source, raw.line_of("template"), name, is_file=True)
    elif "reply" in raw:
        source = str(raw["reply"])
        reply = r.template(source, raw.line_of("reply"), name)
        _check_length(r, raw, source, name, smart_encoding, max_sms)
    elif not flags["handoff"]:
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
        plain_text=_plain_text(source) if "reply" in raw and "template" not in raw else None,
        via=via,
        handoff=flags["handoff"],
        fallback=fallback,
    )


_ESCAPE_OR_GROUP_NAME = re.compile(r"\\(.)|\(\?P<\w+>|\(\?P=\w+\)")


def _never_in_normalised(pattern: str) -> str | None:
    """A character the pattern needs that normalised text never has (`¿`, `Á`, `\\?`)."""
    for found in _ESCAPE_OR_GROUP_NAME.finditer(pattern):
        escaped = found.group(1)
        # `\W`, `\d`... are classes; an escaped sign such as `\?` or `\.` is a literal.
        literal = escaped and not escaped.isalnum() and not escaped.isspace()
        if literal and sms_text.normalize(escaped) != escaped:
            return "\\" + escaped
    for char in _ESCAPE_OR_GROUP_NAME.sub("", pattern):
        if char in "¿¡" or char.isupper() or cond.strip_accents(char) != char:
            return char
    return None


def _plain_text(source: str) -> str | None:
    """What a reply without Jinja syntax renders to, known without rendering it."""
    if any(mark in source for mark in _JINJA_MARKS):
        return None
    return source.replace("\r\n", "\n").replace("\r", "\n").strip()


def _check_length(
    r: _Reader, raw: PosDict, source: str, name: str, smart_encoding: bool, max_sms: int
) -> None:
    if "{" in source:
        return  # dynamic: its length is only known when rendered
    encoded = sms_text.smart_encode(source) if smart_encoding else source
    parts = sms_text.sms_cost(encoded.strip())  # as sent: split into SMS-sized parts
    if parts > max_sms:
        r.warn(
            raw.line_of("reply"),
            f"reply costs {parts} SMS ({len(encoded)} characters): only {max_sms} are sent "
            "(max_reply_sms), the rest is cut",
            name,
        )
    elif parts > 1:
        r.warn(raw.line_of("reply"), f"reply costs {parts} SMS ({len(encoded)} characters)", name)


# Modes whose earlier keyword answers every message a later rule's same keyword would:
# `word` answers whatever `first` or `exact` would, `contains` answers everything.
_SUBSUMES = {
    "word": ("word", "first", "exact"),
    "first": ("first", "exact"),
    "exact": ("exact",),
    "contains": MATCH_MODES,
}


def _shadowed_by(rule: Rule, keyword: str, seen: dict[tuple[str, str], Rule]) -> Rule | None:
    """The earlier unconditional rule that answers every message `keyword` of `rule` would."""
    for mode, later_modes in _SUBSUMES.items():
        earlier = seen.get((mode, keyword))
        if earlier is None or rule.mode not in later_modes:
            continue
        # A later rule that tolerates more typos still answers the typos the earlier misses.
        typos = rule.fuzzy if len(keyword) >= FUZZY_MIN_LENGTH else 0
        if typos == 0 or (mode == rule.mode and earlier.fuzzy >= typos):
            return earlier
    return None


def _check_shadowing(r: _Reader, rules: list[Rule]) -> None:
    seen: dict[tuple[str, str], Rule] = {}
    names: dict[str, int] = {}
    for rule in rules:
        if rule.name in names:
            r.error(rule.line, f"duplicate rule name (first at line {names[rule.name]})", rule.name)
        names.setdefault(rule.name, rule.line)
        if rule.when is not None or rule.fallback:
            continue
        shadowers = [_shadowed_by(rule, k, seen) for k in rule.keywords]
        earlier = shadowers[0] if shadowers and all(shadowers) else None
        if earlier is not None:
            r.warn(
                rule.line,
                f"unreachable: rule '{earlier.name}' (line {earlier.line}) already answers "
                "these keywords",
                rule.name,
            )
        for k in rule.keywords:
            seen.setdefault((rule.mode, k), rule)


def load_rules(
    path: Path,
    templates: Path,
    loaded_at: datetime,
) -> RuleSet:
    """Loads and compiles a rules file; problems are collected in `RuleSet.problems`.
    `loaded_at` (the caller's clock) stamps the version."""
    return compile_rules(path.read_bytes(), templates, loaded_at, str(path))


def compile_rules(
    raw_bytes: bytes,
    templates: Path | Mapping[str, str],
    loaded_at: datetime,
    source: str,
    number: int | None = None,
) -> RuleSet:
    """Compiles a rules text with its templates (a folder, or texts by name from a stored
    version); `source` names where it came from, `number` the stored version it is."""
    version = Version(hashlib.sha256(raw_bytes).hexdigest(), loaded_at, source, number)
    reader = _Reader(make_environment(templates))
    with _collector_paused():
        return _compile(reader, raw_bytes, version)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A big file builds millions of objects; the cyclic collector would rescan them again and
    again (a 100,000-rule file loads twice as fast without it); it resumes right after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compile(reader: _Reader, raw_bytes: bytes, version: Version) -> RuleSet:
    try:
        # utf-8-sig: Windows Notepad starts the files it saves with a byte-order mark.
        doc = load(raw_bytes.decode("utf-8-sig"))
    except UnicodeDecodeError:
        doc, reader.problems = None, [Problem(1, "the file is not UTF-8 text")]
    except YAMLSyntaxError as err:
        doc, reader.problems = None, [Problem(err.line, f"YAML syntax: {err.message}")]
    rules: list[Rule] = []
    flows: dict[str, Flow] = {}
    settings = RulesSettings()
    if doc is None and not reader.problems:
        # Also what a poll sees in the middle of an editor's save: never take it as "no rules".
        reader.error(1, "the file is empty; it needs settings: and rules:")
    elif doc is not None and not isinstance(doc, PosDict):
        reader.error(1, "the file must be a mapping with settings: and rules:")
    elif isinstance(doc, PosDict):
        reader.check_keys(doc, TOP_KEYS, "the file")
        settings = _read_settings(reader, doc.get("settings"))
        raw_rules = doc.get("rules")
        if raw_rules is None and doc.get("flows"):
            pass  # a file of flows alone is fine
        elif not isinstance(raw_rules, PosList):
            reader.error(doc.line_of("rules"), "rules: must be a list of rules")
        else:
            for position, (raw, line) in enumerate(zip(raw_rules, raw_rules.item_lines)):
                rule = _read_rule(
                    reader, raw, line, position, settings.smart_encoding, settings.reply_cap
                )
                if rule is not None:
                    rules.append(rule)
            _check_shadowing(reader, rules)
        flows = read_flows(
            reader,
            doc.get("flows"),
            doc.line_of("flows"),
            lambda raw, name, position: _trigger_rule(reader, raw, name, position),
        )
    problems = sorted(reader.problems, key=lambda p: p.line)
    triggers = Matcher([flow.trigger for flow in flows.values()])
    return RuleSet(
        settings, tuple(rules), Matcher(rules), version, tuple(problems), flows, triggers
    )


def _read_match(r: _Reader, raw: PosDict, name: str) -> tuple[str, int]:
    """A rule's (or a flow trigger's) `match:` mode and `fuzzy:` typos."""
    mode = str(raw.get("match", "word"))
    if mode not in MATCH_MODES:
        r.error(raw.line_of("match"), f"match must be one of {', '.join(MATCH_MODES)}", name)
        mode = "word"
    fuzzy = raw.get("fuzzy", 0)
    if isinstance(fuzzy, bool) or not isinstance(fuzzy, int) or not 0 <= fuzzy <= 3:
        r.error(raw.line_of("fuzzy"), "fuzzy must be a number of typos from 0 to 3", name)
        fuzzy = 0
    return mode, fuzzy


def _trigger_rule(r: _Reader, raw: PosDict, name: str, position: int) -> Rule:
    """A flow's trigger as a rule named after the flow, matched like any rule's keywords."""
    keywords = tuple(k for k in (sms_text.normalize(k) for k in _keywords(raw["keywords"])) if k)
    mode, fuzzy = _read_match(r, raw, name)
    return Rule(
        name=name, position=position, line=raw.line, keywords=keywords, mode=mode, fuzzy=fuzzy
    )
