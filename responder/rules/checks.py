"""Checks across the rules once read: duplicate names (an error), and the warnings of DESIGN §10
(shadowed rules, shared keywords, SMS cost, UCS-2, unknown templates and variables). Each finding
carries its kind, and its parameters for translation (responder.rules.messages_es)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from jinja2 import TemplateError, meta, nodes

from responder import text as sms_text
from responder.rules import conditions as cond
from responder.rules.flows import Flow
from responder.rules.hours import Closed, Open
from responder.rules.matcher import FUZZY_MIN_LENGTH
from responder.rules.messages_es import describe_es
from responder.rules.model import MATCH_MODES, Rule, RulesSettings
from responder.rules.reader import JINJA_MARKS, Reader
from responder.templating import BudgetedEnvironment, render

# What a reply template sees (responder.engine builds it; tests/test_engine.py checks both agree).
CONTEXT_VARIABLES = ("message", "contact", "match", "rule", "now", "hours")
MESSAGE_FIELDS = ("text", "phone", "received_at")
HOURS_FIELDS = ("today", "week")
UCS2_PER_SMS = 70

# Modes whose earlier keyword answers every message a later rule's same keyword would:
# `word` answers whatever `first` or `exact` would, `contains` answers everything.
_SUBSUMES = {
    "word": ("word", "first", "exact"),
    "first": ("first", "exact"),
    "exact": ("exact",),
    "contains": MATCH_MODES,
}


@dataclass(frozen=True)
class Reply:
    """A text to check: where it is, whose it is, what it may use."""

    source: str
    line: int
    owner: str | None  # the rule or flow
    is_file: bool = False
    groups: tuple[str, ...] = ()  # the pattern's named groups: what `match` holds


def check(
    r: Reader,
    env: BudgetedEnvironment,
    settings: RulesSettings,
    rules: list[Rule],
    flows: dict[str, Flow],
) -> None:
    check_order(r, rules, [flow.trigger for flow in flows.values()])
    for rule in rules:
        if rule.pattern is not None and (char := never_in_normalised(rule.pattern.pattern)):
            r.warn(
                rule.pattern.owner.line,
                "patterns see the message in lowercase, without accents or ¿¡?!.,;: "
                f"so '{char}' never matches",
                rule.name,
                "regex",
                "never_matches",
                char=char,
            )
    replies = list(_replies(settings, rules, flows))
    for reply in replies:
        if not reply.is_file and not any(mark in reply.source for mark in JINJA_MARKS):
            check_cost(r, reply, settings)
    check_templates(r, env, settings, replies)


def _replies(settings: RulesSettings, rules: list[Rule], flows: dict[str, Flow]) -> Iterable[Reply]:
    for keyword_reply in (settings.opt_out, settings.opt_in):
        if keyword_reply is not None:
            yield Reply(keyword_reply.source, keyword_reply.line, None)
    for rule in rules:
        if rule.reply is not None:
            groups = rule.pattern.group_names if rule.pattern is not None else ()
            yield Reply(rule.reply_source, rule.reply_line, rule.name, bool(rule.template), groups)
    for flow in flows.values():
        for step in flow.steps:
            yield Reply(step.source, step.line, flow.name)


# --- order: what can never answer ----------------------------------------------------------


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


def disjoint(a: cond.Condition, b: cond.Condition) -> bool:
    """Whether two conditions can never hold together, as far as their form shows."""
    if {type(a), type(b)} == {Open, Closed}:
        return True
    for x, y in ((a, b), (b, a)):
        if isinstance(x, cond.Not) and x.inner == y:
            return True
        if isinstance(x, cond.All) and any(disjoint(part, y) for part in x.parts):
            return True
    if isinstance(a, cond.FirstContact) and isinstance(b, cond.FirstContact):
        return a.expected != b.expected
    if isinstance(a, cond.Days) and isinstance(b, cond.Days):
        return not a.days & b.days
    return False


def check_order(r: Reader, rules: list[Rule], triggers: list[Rule]) -> None:
    """Rules an earlier rule (or a flow's trigger) takes every message from, wholly or while
    a condition holds, and keywords two rules share."""
    seen: dict[tuple[str, str], Rule] = {}
    for trigger in triggers:  # flows start before any rule is tried
        for k in trigger.keywords:
            seen.setdefault((trigger.mode, k), trigger)
    flow_names = {t.name for t in triggers}
    names: dict[str, int] = {}
    catch_alls: list[Rule] = []  # earlier `when:`-only rules: they answer while it holds
    keyword_owner: dict[str, Rule] = {}
    fallback: Rule | None = None  # the first fallback without a condition
    for rule in rules:
        if rule.name in names:
            r.error(
                rule.line,
                f"duplicate rule name (first at line {names[rule.name]})",
                rule.name,
                code="duplicate_name",
                first_line=names[rule.name],
            )
        names.setdefault(rule.name, rule.line)
        if rule.fallback:
            if fallback is not None:
                _unreachable_fallback(r, rule, fallback)
            elif rule.when is None:
                fallback = rule
            continue
        wholly = _check_catch_alls(r, rule, catch_alls)
        if not wholly and rule.when is None:
            shadowers = [_shadowed_by(rule, k, seen) for k in rule.keywords]
            earlier = shadowers[0] if shadowers and all(shadowers) else None
            if earlier is not None:
                wholly = True
                is_flow = earlier.name in flow_names and earlier in triggers
                what = f"flow '{earlier.name}'" if is_flow else f"rule '{earlier.name}'"
                verb = "starts on" if is_flow else "already answers"
                r.warn(
                    rule.line,
                    f"unreachable: {what} (line {earlier.line}) {verb} these keywords",
                    rule.name,
                    "shadowed",
                    "flow_keywords" if is_flow else "keywords",
                    earlier=earlier.name,
                    earlier_line=earlier.line,
                )
        if not wholly:
            _check_shared_keywords(r, rule, keyword_owner)
        for k in rule.keywords:
            keyword_owner.setdefault(k, rule)
            if rule.when is None:
                seen.setdefault((rule.mode, k), rule)
        if rule.matches_everything and rule.when is not None:
            catch_alls.append(rule)


def _unreachable_fallback(r: Reader, rule: Rule, earlier: Rule) -> None:
    r.warn(
        rule.line,
        f"unreachable: fallback '{earlier.name}' (line {earlier.line}) already answers "
        "every message no other rule answers",
        rule.name,
        "shadowed",
        "fallback",
        earlier=earlier.name,
        earlier_line=earlier.line,
    )


def _check_catch_alls(r: Reader, rule: Rule, catch_alls: list[Rule]) -> bool:
    """Warns about the first earlier `when:`-only rule that takes this rule's messages while
    its condition holds; True when that is every message this rule could answer."""
    for earlier in catch_alls:
        assert earlier.when is not None
        if rule.when is not None and disjoint(earlier.when, rule.when):
            continue
        condition = earlier.when.describe()
        params = {
            "earlier": earlier.name,
            "earlier_line": earlier.line,
            "condition": condition,
            "condition_es": describe_es(earlier.when),
        }
        if rule.when is not None and rule.when == earlier.when:
            r.warn(
                rule.line,
                f"unreachable: rule '{earlier.name}' (line {earlier.line}) has no keywords or "
                f"pattern and answers every message while {condition}, the only time this "
                "rule could answer",
                rule.name,
                "shadowed",
                "catch_all_always",
                **params,
            )
            return True
        r.warn(
            rule.line,
            f"never answers while {condition}: rule '{earlier.name}' (line {earlier.line}) "
            "has no keywords or pattern and answers every message then; move this rule above "
            "it to answer then too",
            rule.name,
            "shadowed",
            "catch_all",
            **params,
        )
        return False
    return False


def _check_shared_keywords(r: Reader, rule: Rule, keyword_owner: dict[str, Rule]) -> None:
    by_owner: dict[str, list[str]] = {}
    owners: dict[str, Rule] = {}
    for k in rule.keywords:
        earlier = keyword_owner.get(k)
        if (
            earlier is not None
            and earlier.name != rule.name
            and k not in by_owner.get(earlier.name, [])
        ):
            by_owner.setdefault(earlier.name, []).append(k)
            owners[earlier.name] = earlier
    for name, shared in by_owner.items():
        earlier = owners[name]
        words = ", ".join(f"'{k}'" for k in shared)
        when = f" while {earlier.when.describe()}" if earlier.when is not None else ""
        r.warn(
            rule.line,
            f"keyword {words} also in rule '{name}' (line {earlier.line}), which comes first "
            f"and answers it{when}",
            rule.name,
            "duplicate_keyword",
            keywords=shared,
            earlier=name,
            earlier_line=earlier.line,
            condition=earlier.when.describe() if earlier.when is not None else "",
            condition_es=describe_es(earlier.when) if earlier.when is not None else "",
        )


# --- patterns ------------------------------------------------------------------------------

_ESCAPE_OR_GROUP_NAME = re.compile(r"\\(.)|\(\?P<\w+>|\(\?P=\w+\)")


def never_in_normalised(pattern: str) -> str | None:
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


# --- cost ----------------------------------------------------------------------------------


def check_cost(r: Reader, reply: Reply, settings: RulesSettings) -> None:
    """A fixed text over one SMS, over max_reply_sms, or forced to UCS-2 (70 per SMS)."""
    encoded = sms_text.smart_encode(reply.source) if settings.smart_encoding else reply.source
    encoded = encoded.strip()
    parts = sms_text.sms_cost(encoded)  # as sent: split into SMS-sized parts
    chars = len(encoded)
    cap = settings.reply_cap
    if not sms_text.is_gsm7(encoded):
        char = next(c for c in encoded if not sms_text.is_gsm7(c))
        after = " even after smart encoding" if settings.smart_encoding else ""
        r.warn(
            reply.line,
            f"reply is sent as UCS-2 ({UCS2_PER_SMS} characters per SMS) because of "
            f"'{char}'{after}: {parts} SMS ({chars} characters)",
            reply.owner,
            "ucs2",
            char=char,
            parts=parts,
            chars=chars,
        )
    if parts > cap:
        r.warn(
            reply.line,
            f"reply costs {parts} SMS ({chars} characters): only {cap} are sent "
            "(max_reply_sms), the rest is cut",
            reply.owner,
            "cost",
            "cut",
            parts=parts,
            chars=chars,
            cap=cap,
        )
    elif parts > 1:
        r.warn(
            reply.line,
            f"reply costs {parts} SMS ({chars} characters)",
            reply.owner,
            "cost",
            parts=parts,
            chars=chars,
        )


# --- templates: names that do not exist ----------------------------------------------------


def check_templates(
    r: Reader, env: BudgetedEnvironment, settings: RulesSettings, replies: list[Reply]
) -> None:
    parsed: dict[str, nodes.Template | None] = {}
    for reply in replies:
        if not reply.is_file and not any(mark in reply.source for mark in JINJA_MARKS):
            continue
        key = ("file:" if reply.is_file else "text:") + reply.source
        if key not in parsed:
            parsed[key] = _parse(env, reply)
        tree = parsed[key]
        if tree is not None:
            _check_tree(r, env, settings, reply, tree)
            if settings.hours is not None and meta.find_undeclared_variables(tree) == {"hours"}:
                _check_hours_cost(r, env, settings, reply)


def _check_hours_cost(
    r: Reader, env: BudgetedEnvironment, settings: RulesSettings, reply: Reply
) -> None:
    """A reply that shows only the hours is measured with its longest `hours.today`: a longer
    week in settings.hours can take it past one SMS."""
    assert settings.hours is not None
    try:
        template = (
            env.get_template(reply.source) if reply.is_file else env.from_string(reply.source)
        )
        longest = max(
            (
                render(template, {"hours": {"today": today, "week": settings.hours.week_text}})
                for today in settings.hours.today_texts()
            ),
            key=lambda text: sms_text.sms_cost(
                sms_text.smart_encode(text) if settings.smart_encoding else text
            ),
        )
    except TemplateError:
        return  # it fails when sent as well; simulate shows why
    check_cost(r, Reply(longest, reply.line, reply.owner), settings)


def _parse(env: BudgetedEnvironment, reply: Reply) -> nodes.Template | None:
    """The template's syntax tree; None when it cannot be read (already an error)."""
    try:
        source = reply.source
        if reply.is_file:
            assert env.loader is not None
            source = env.loader.get_source(env, reply.source)[0]
        return env.parse(source)
    except TemplateError:
        return None


def _exists(env: BudgetedEnvironment, name: str) -> bool:
    try:
        assert env.loader is not None
        env.loader.get_source(env, name)
    except TemplateError:
        return False
    return True


def _check_tree(
    r: Reader,
    env: BudgetedEnvironment,
    settings: RulesSettings,
    reply: Reply,
    tree: nodes.Template,
) -> None:
    where = f" in {reply.source}" if reply.is_file else ""
    for name in meta.find_referenced_templates(tree):
        if name is not None and not _exists(env, name):
            r.warn(
                reply.line,
                f"template '{name}'{where} does not exist in the templates folder: "
                "the reply fails when it gets there",
                reply.owner,
                "unknown_template",
                name=name,
                file=reply.source if reply.is_file else "",
            )
    known = set(CONTEXT_VARIABLES) | set(env.globals)
    free = meta.find_undeclared_variables(tree)
    for name in sorted(free - known):
        _unknown(r, reply, name, "name")
    fields = {"message": MESSAGE_FIELDS, "hours": HOURS_FIELDS, "match": reply.groups}
    reported: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        base = node.node
        if not isinstance(base, nodes.Name) or base.name not in free or base.name not in fields:
            continue
        attr = node.attr if isinstance(node, nodes.Getattr) else _constant(node.arg)
        variable = f"{base.name}.{attr}"
        if attr is None or variable in reported:
            continue
        reported.add(variable)
        if attr not in fields[base.name]:
            reason = "no_groups" if base.name == "match" and not reply.groups else base.name
            _unknown(r, reply, variable, reason)
        elif base.name == "hours" and settings.hours is None:
            _unknown(r, reply, variable, "no_hours")


# Why a variable is unknown, in English (responder.rules.messages_es has the Spanish).
UNKNOWN_REASONS = {
    "name": "a reply can use " + ", ".join(CONTEXT_VARIABLES),
    "message": "message has " + ", ".join(MESSAGE_FIELDS),
    "hours": "hours has " + ", ".join(HOURS_FIELDS),
    "match": "the pattern's named groups are {groups}",
    "no_groups": "match is empty: the rule has no pattern with named groups",
    "no_hours": "settings has no hours, so it shows nothing",
}


def _constant(arg: nodes.Expr) -> str | None:
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None


def _unknown(r: Reader, reply: Reply, variable: str, reason: str) -> None:
    where = f" in {reply.source}" if reply.is_file else ""
    why = UNKNOWN_REASONS[reason].format(groups=", ".join(reply.groups))
    r.warn(
        reply.line,
        f"unknown variable '{variable}'{where}: {why}",
        reply.owner,
        "unknown_variable",
        reason,
        variable=variable,
        file=reply.source if reply.is_file else "",
        groups=list(reply.groups),
    )
