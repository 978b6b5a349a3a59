"""Reads the rules of rules.yaml (`rules:` and flow triggers), collecting errors with their line.
Warnings that look across rules are responder.rules.checks'; settings are
responder.rules.settings'."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateNotFound, TemplateSyntaxError

from responder import text as sms_text
from responder.budget import Owner
from responder.rules import conditions as cond
from responder.rules.backtracking import backtracking_risk
from responder.rules.conditions import BadValue
from responder.rules.hours import Closed, Open, OpeningHours
from responder.rules.model import MATCH_MODES, Problem, Rule
from responder.rules.patterns import BadPattern, Pattern
from responder.rules.yamlpos import PosDict
from responder.templating import BudgetedEnvironment, BudgetTemplate, Template

PROVIDERS = ("massiva", "massms", "sandbox")
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
    "attention",
    "label",
    "unlabel",
    "description",
)
# A contact label (DESIGN §12): what `label:`/`unlabel:` and the API accept.
LABEL = re.compile(r"[A-Za-z0-9_-]{1,40}")
WHEN_KEYS = ("days", "hours", "first_contact", "field", "not", "all", "any")
# `when: open` / `when: closed` (Spanish too: rule authors write Spanish).
WHEN_WORDS = {"open": "open", "abierto": "open", "closed": "closed", "cerrado": "closed"}
JINJA_MARKS = ("{{", "{%", "{#")
_PLAIN_NAME = "responder_plain_reply"


@dataclass
class Reader:
    """Collects problems while reading; compiles templates and patterns."""

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

    def error(
        self,
        line: int,
        message: str,
        rule: str | None = None,
        kind: str = "schema",
        *,
        code: str,
        **params: Any,
    ) -> None:
        """An error; its `code` (and `params`) has a Spanish text in messages_es.MESSAGES."""
        self.problems.append(Problem(line, message, rule, "error", kind, code, params))

    def warn(
        self, line: int, message: str, rule: str | None, kind: str, code: str = "", **params: Any
    ) -> None:
        self.problems.append(Problem(line, message, rule, "warning", kind, code, params))

    def check_keys(
        self, mapping: PosDict, allowed: tuple[str, ...], what: str, rule: str | None = None
    ) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                self.error(
                    mapping.line_of(key),
                    f"unknown key '{key}' in {what}{hint}",
                    rule,
                    code="unknown_key",
                    key=key,
                    where=what,
                    suggestion=close[0] if close else "",
                )

    def regex(self, source: str, line: int, rule: str) -> Pattern | None:
        """A rule's `pattern:` or a flow step's `accept:`, warning when it can backtrack."""
        try:
            found = Pattern(source, Owner(rule, line, source))
        except BadPattern as err:
            self.error(line, str(err), rule, "regex", code=err.code, **err.params)
            return None
        if why := backtracking_risk(source):
            self.warn(line, f"pattern {why}", rule, "backtracking", why=why)
        return found

    def template(
        self, source: str, line: int, rule: str | None, is_file: bool = False
    ) -> Template | None:
        try:
            if is_file:
                found = self.env.get_template(source)
            elif not any(mark in source for mark in JINJA_MARKS):
                return self.plain(source)
            else:
                found = self.env.from_string(source)
            if isinstance(found, BudgetTemplate):
                # A file used by several rules is one template: it is named after the first.
                found.owner = found.owner or Owner(rule or "settings", line, source)
            return found
        except TemplateNotFound:
            # An error, not an `unknown_template` warning: the rule would answer with nothing.
            self.error(
                line,
                f"template '{source}' not found in the templates folder",
                rule,
                "template",
                code="template_not_found",
                name=source,
            )
        except TemplateSyntaxError as err:
            where = f"{source}:{err.lineno}: " if is_file else ""
            self.error(
                line,
                f"template syntax error: {where}{err.message}",
                rule,
                "template",
                code="syntax",
                file=source if is_file else "",
                template_line=err.lineno,
                unclosed=unclosed_mark(err.source or ("" if is_file else source)),
            )
        return None


def unclosed_mark(source: str) -> str:
    """The first of `{{`, `{%`, `{#` that the template opens more often than it closes: what
    to tell its author to close (Jinja's own words about it are not ours to match)."""
    for opening, closing in (("{{", "}}"), ("{%", "%}"), ("{#", "#}")):
        if source.count(opening) > source.count(closing):
            return opening
    return ""


def keywords_of(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else [value]
    return [str(k) for k in items if k is not None]


def read_condition(
    r: Reader, value: Any, line: int, rule: str, hours: OpeningHours | None
) -> cond.Condition | None:
    """A `when:`: a mapping of conditions (all must hold), or the word `open` or `closed`."""
    if isinstance(value, str) and value.strip().lower() in WHEN_WORDS:
        if hours is None:
            r.error(
                line,
                f"when: {value.strip()} needs the opening hours in settings.hours",
                rule,
                code="no_hours",
            )
            return None
        return Open(hours) if WHEN_WORDS[value.strip().lower()] == "open" else Closed(hours)
    if not isinstance(value, PosDict) or not value:
        r.error(
            line,
            "when: expects open, closed or a mapping such as {days: mon-fri, hours: 08:00-17:00}",
            rule,
            code="bad_when",
        )
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
                    raise BadValue(
                        "first_contact must be true or false", code="not_boolean", key=key
                    )
                parts.append(cond.FirstContact(item))
            elif key == "field":
                if not isinstance(item, dict) or "name" not in item:
                    raise BadValue("field expects {name: FIELD, equals: VALUE}", code="bad_field")
                extra = set(item) - {"name", "equals"}
                if extra:
                    unknown = str(sorted(extra)[0])
                    raise BadValue(
                        f"field: unknown key '{unknown}'",
                        code="unknown_key",
                        key=unknown,
                        where="field",
                        suggestion="",
                    )
                equals = item.get("equals")
                parts.append(cond.Field(str(item["name"]), None if equals is None else str(equals)))
            elif key == "not":
                inner = read_condition(r, item, at, rule, hours)
                if inner is not None:
                    parts.append(cond.Not(inner))
            elif key in ("all", "any"):
                if not isinstance(item, list) or not item:
                    raise BadValue(
                        f"{key} expects a list of conditions", code="needs_conditions", key=key
                    )
                lines = getattr(item, "item_lines", [at] * len(item))
                inner_parts = [read_condition(r, c, ln, rule, hours) for c, ln in zip(item, lines)]
                found = tuple(p for p in inner_parts if p is not None)
                parts.append(cond.All(found) if key == "all" else cond.AnyOf(found))
        except BadValue as err:
            r.error(at, str(err), rule, code=err.code, **err.params)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else cond.All(tuple(parts))


def read_match(r: Reader, raw: PosDict, name: str) -> tuple[str, int]:
    """A rule's (or a flow trigger's) `match:` mode and `fuzzy:` typos."""
    mode = str(raw.get("match", "word"))
    if mode not in MATCH_MODES:
        r.error(
            raw.line_of("match"),
            f"match must be one of {', '.join(MATCH_MODES)}",
            name,
            code="bad_match",
            value=mode,
        )
        mode = "word"
    fuzzy = raw.get("fuzzy", 0)
    if isinstance(fuzzy, bool) or not isinstance(fuzzy, int) or not 0 <= fuzzy <= 3:
        r.error(
            raw.line_of("fuzzy"),
            "fuzzy must be a number of typos from 0 to 3",
            name,
            code="bad_fuzzy",
            value=str(fuzzy),
        )
        fuzzy = 0
    return mode, fuzzy


def read_rule(
    r: Reader, raw: Any, line: int, position: int, hours: OpeningHours | None = None
) -> Rule | None:
    """One entry of `rules:`."""
    if not isinstance(raw, PosDict):
        r.error(
            line,
            "each rule must be a mapping with at least name and reply",
            code="rule_not_mapping",
        )
        return None
    name = str(raw.get("name") or f"#{position + 1}")
    if "name" not in raw:
        r.error(raw.line, "rule has no name", name, code="no_name")
    r.check_keys(raw, RULE_KEYS, "rule", name)

    keywords = tuple(sms_text.normalize(k) for k in keywords_of(raw.get("keywords", [])))
    if "keywords" in raw and (not keywords or not all(keywords)):
        r.error(
            raw.line_of("keywords"),
            "keywords must be non-empty words or phrases",
            name,
            code="empty_keyword",
        )
    mode, fuzzy = read_match(r, raw, name)
    if fuzzy and mode == "contains":
        r.error(
            raw.line_of("fuzzy"),
            "fuzzy cannot be combined with match: contains",
            name,
            code="fuzzy_contains",
        )

    pattern = None
    if "pattern" in raw:
        pattern = r.regex(str(raw["pattern"]), raw.line_of("pattern"), name)
        if keywords:
            r.error(
                raw.line_of("pattern"),
                "use either keywords or pattern, not both",
                name,
                code="keywords_and_pattern",
            )

    when = None
    if "when" in raw:
        when = read_condition(r, raw["when"], raw.line_of("when"), name, hours)

    flags = {}
    for flag in ("handoff", "fallback", "attention"):
        value = raw.get(flag, False)
        if not isinstance(value, bool):
            # `handoff: si` must not silently leave the conversation with the bot.
            r.error(
                raw.line_of(flag),
                f"{flag} must be true or false",
                name,
                code="not_boolean",
                key=flag,
            )
        flags[flag] = value is True
    fallback = flags["fallback"]
    if not keywords and "pattern" not in raw and "when" not in raw and not fallback:
        r.error(
            raw.line,
            "rule needs keywords, pattern, when or fallback: true",
            name,
            code="answers_nothing",
        )

    reply: Template | None = None
    source = ""
    reply_line = raw.line
    if "reply" in raw and "template" in raw:
        r.error(
            raw.line_of("template"),
            "use either reply or template, not both",
            name,
            code="reply_and_template",
        )
    elif raw.get("template", "") is None or raw.get("reply", "") is None:
        # `reply:` left empty is YAML null: without this check customers would get "None".
        key = "template" if "template" in raw else "reply"
        r.error(
            raw.line_of(key),
            f"{key} is empty; write the text in quotes after {key}:",
            name,
            code="empty_reply",
            key=key,
        )
    elif "template" in raw:
        source = str(raw["template"])
        reply_line = raw.line_of("template")
        reply = r.template(source, reply_line, name, is_file=True)
    elif "reply" in raw:
        source = str(raw["reply"])
        reply_line = raw.line_of("reply")
        reply = r.template(source, reply_line, name)
    elif not flags["handoff"] and "label" not in raw and "unlabel" not in raw:
        r.error(raw.line, "rule needs a reply or a template", name, code="no_reply")

    label = read_labels(r, raw, "label", name)
    unlabel = read_labels(r, raw, "unlabel", name)
    via = raw.get("via")
    if via is not None and via not in PROVIDERS:
        r.error(
            raw.line_of("via"),
            f"unknown via '{via}'; use {', '.join(PROVIDERS)}",
            name,
            code="unknown_via",
            value=str(via),
        )
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
        plain_text=plain_text(source) if "reply" in raw and "template" not in raw else None,
        via=via,
        handoff=flags["handoff"],
        fallback=fallback,
        attention=flags["attention"]
        if "attention" in raw
        else fallback or isinstance(when, Closed),
        reply_line=reply_line,
        label=label,
        unlabel=unlabel,
    )


def read_labels(r: Reader, raw: PosDict, key: str, rule: str) -> tuple[str, ...]:
    """`label: promo` or `label: [promo, vip]`: the labels a rule adds (or removes)."""
    if key not in raw:
        return ()
    value = raw[key]
    names = value if isinstance(value, list) else [value]
    good = []
    for item in names:
        if isinstance(item, str) and LABEL.fullmatch(item):
            good.append(item)
        else:
            r.error(
                raw.line_of(key),
                f"{key}: '{item}' is not a label (letters, digits, _ or -, at most 40)",
                rule,
                code="bad_label",
                key=key,
                value=str(item),
            )
    return tuple(dict.fromkeys(good))


def plain_text(source: str) -> str | None:
    """What a reply without Jinja syntax renders to, known without rendering it."""
    if any(mark in source for mark in JINJA_MARKS):
        return None
    return source.replace("\r\n", "\n").replace("\r", "\n").strip()


def trigger_rule(r: Reader, raw: PosDict, name: str, position: int) -> Rule:
    """A flow's trigger as a rule named after the flow, matched like any rule's keywords."""
    keywords = tuple(k for k in (sms_text.normalize(k) for k in keywords_of(raw["keywords"])) if k)
    mode, fuzzy = read_match(r, raw, name)
    return Rule(
        name=name, position=position, line=raw.line, keywords=keywords, mode=mode, fuzzy=fuzzy
    )
