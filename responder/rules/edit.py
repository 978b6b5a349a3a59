"""Simple edits of rules.yaml made with the admin's forms: text in, new text out.

Written back with ruamel.yaml's round trip, and spliced into the original text line by line, so
that comments, quoting and layout outside the edited region stay byte-for-byte as they were.
Rules with a `pattern:`, flows and keys the forms do not know are carried through untouched.
Messages of `EditError` are for the admin, in Spanish.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

from responder.rules.conditions import parse_duration
from responder.rules.model import MATCH_MODES

# Conditions a form can set; anything else in `when:` is kept and shown read-only.
SIMPLE_WHEN = ("", "open", "closed", "first_contact")
KEEP_WHEN = "keep"
MAX_NAME = 60
MAX_FUZZY = 3
# The order keys take in a rule written by a form (others keep their place).
RULE_ORDER = ("name", "keywords", "pattern", "match", "fuzzy", "when", "reply", "template")
FORM_KEYS = ("name", "keywords", "match", "fuzzy", "when", "reply", "template", "handoff")
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


class EditError(ValueError):
    """A form the admin filled in that cannot become rules; the message says why, in Spanish."""


@dataclass(frozen=True)
class RuleForm:
    """What the rule form submits. `when` is one of SIMPLE_WHEN, or KEEP_WHEN to leave an
    advanced condition as it is."""

    name: str
    keywords: tuple[str, ...] = ()
    match: str = "word"
    fuzzy: int = 0
    reply: str = ""
    template: str = ""
    handoff: bool = False
    when: str = ""


@dataclass(frozen=True)
class RuleView:
    """One rule as the forms show it; `when` is "other" for a condition shown as `when_text`,
    `advanced` names the keys the forms do not edit (kept as they are)."""

    name: str
    position: int
    keywords: tuple[str, ...]
    match: str
    fuzzy: int
    reply: str
    template: str
    handoff: bool
    when: str
    when_text: str
    advanced: tuple[str, ...]

    def form(self) -> RuleForm:
        when = KEEP_WHEN if self.when == "other" else self.when
        return RuleForm(
            self.name, self.keywords, self.match, self.fuzzy, self.reply, self.template,
            self.handoff, when,
        )  # fmt: skip


@dataclass(frozen=True)
class KeywordsView:
    keywords: tuple[str, ...]
    reply: str
    enabled: bool = True


@dataclass(frozen=True)
class RulesView:
    rules: tuple[RuleView, ...]
    opt_out: KeywordsView | None
    opt_in: KeywordsView | None
    reply_limit: tuple[int, str] | None  # (count, per as written)
    hours: dict[str, Any] = field(default_factory=dict)
    flows: tuple[str, ...] = ()


# -- reading ---------------------------------------------------------------------------------


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096  # never fold a long reply onto two lines
    return y


def _load(text: str) -> CommentedMap:
    try:
        doc = _yaml().load(text)
    except YAMLError:
        raise EditError(
            "El archivo de reglas tiene un error de sintaxis: corríjalo en el editor YAML."
        ) from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise EditError("El archivo de reglas no es un mapa YAML: corríjalo en el editor YAML.")
    return doc


def _rules(doc: CommentedMap) -> CommentedSeq:
    rules = doc.get("rules")
    if rules is None:
        return CommentedSeq()
    if not isinstance(rules, CommentedSeq) or not all(isinstance(r, CommentedMap) for r in rules):
        raise EditError("La lista de reglas no se puede leer: corríjala en el editor YAML.")
    return rules


def _keywords(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [] if value is None else [value]
    return tuple(str(k) for k in items if k is not None)


def _when(value: Any) -> tuple[str, str]:
    if value is None:
        return "", ""
    if value in ("open", "closed"):
        return str(value), ""
    if isinstance(value, Mapping) and dict(value) == {"first_contact": True}:
        return "first_contact", ""
    return "other", _flow_text(value)


def _flow_text(value: Any) -> str:
    """A condition on one line, as YAML flow style would write it."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow_text(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rule_view(raw: CommentedMap, position: int) -> RuleView:
    when, when_text = _when(raw.get("when"))
    fuzzy = raw.get("fuzzy", 0)
    advanced = [k for k in raw if k not in FORM_KEYS]
    if when == "other":
        advanced.append("when")
    return RuleView(
        name=str(raw.get("name", "")),
        position=position,
        keywords=_keywords(raw.get("keywords")),
        match=str(raw.get("match", "word")),
        fuzzy=fuzzy if isinstance(fuzzy, int) and not isinstance(fuzzy, bool) else 0,
        reply="" if raw.get("reply") is None else str(raw["reply"]),
        template="" if raw.get("template") is None else str(raw["template"]),
        handoff=raw.get("handoff") is True,
        when=when,
        when_text=when_text,
        advanced=tuple(str(k) for k in advanced),
    )


def _keywords_view(value: Any) -> KeywordsView | None:
    if value is False:
        return KeywordsView((), "", enabled=False)
    if not isinstance(value, Mapping):
        return None
    reply = value.get("reply")
    return KeywordsView(_keywords(value.get("keywords")), "" if reply is None else str(reply))


def read_view(text: str) -> RulesView:
    """What the Reglas page's forms show."""
    doc = _load(text)
    settings = doc.get("settings")
    settings = settings if isinstance(settings, Mapping) else {}
    limit = settings.get("reply_limit")
    reply_limit = None
    if isinstance(limit, Mapping) and "count" in limit and "per" in limit:
        reply_limit = (int(limit["count"]), str(limit["per"]))
    hours = settings.get("hours")
    flows = doc.get("flows")
    return RulesView(
        rules=tuple(_rule_view(r, i) for i, r in enumerate(_rules(doc))),
        opt_out=_keywords_view(settings.get("opt_out")),
        opt_in=_keywords_view(settings.get("opt_in")),
        reply_limit=reply_limit,
        hours=_plain(hours) if isinstance(hours, Mapping) else {},
        flows=tuple(str(k) for k in flows) if isinstance(flows, Mapping) else (),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, str) else value


# -- checking what a form sends ---------------------------------------------------------------


def parse_keywords(text: str) -> tuple[str, ...]:
    """`horario, a que hora,abren` → ("horario", "a que hora", "abren"); repeats dropped."""
    words = (" ".join(k.split()) for k in text.replace("\n", ",").split(","))
    return tuple(dict.fromkeys(w for w in words if w))


def _clean_text(text: str) -> str:
    """Browsers send line breaks as CRLF; trailing spaces and blank lines are never wanted."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def _check_rule(form: RuleForm, raw: CommentedMap | None, others: Iterable[str]) -> RuleForm:
    name = " ".join(form.name.split())
    if not name:
        raise EditError("Escriba un nombre para la regla.")
    if len(name) > MAX_NAME:
        raise EditError(f"El nombre es demasiado largo (máximo {MAX_NAME} caracteres).")
    if name in others:
        raise EditError(f"Ya hay una regla llamada «{name}»: elija otro nombre.")
    if form.match not in MATCH_MODES:
        raise EditError("Elija cómo se buscan las palabras clave.")
    if not 0 <= form.fuzzy <= MAX_FUZZY:
        raise EditError(f"Los errores de tipeo admitidos van de 0 a {MAX_FUZZY}.")
    if form.fuzzy and form.match == "contains":
        raise EditError(
            "Los errores de tipeo no se pueden combinar con «en cualquier parte»: "
            "elija otro modo o 0 errores."
        )
    if form.when not in SIMPLE_WHEN and form.when != KEEP_WHEN:
        raise EditError("Elija una condición de la lista.")
    keywords = tuple(" ".join(k.split()) for k in form.keywords if k.strip())
    kept = raw if raw is not None else {}
    has_pattern = "pattern" in kept
    if keywords and has_pattern:
        raise EditError(
            "Esta regla usa una expresión regular (pattern): no puede tener también palabras "
            "clave. Cámbiela en el editor YAML."
        )
    when = kept.get("when") if form.when == KEEP_WHEN else form.when
    if not keywords and not has_pattern and not when and kept.get("fallback") is not True:
        raise EditError(
            "Escriba al menos una palabra clave (o elija una condición, para responder a todo "
            "mensaje mientras se cumpla)."
        )
    reply = _clean_text(form.reply)
    template = form.template.strip()
    if template:
        reply = ""
    elif not reply and not form.handoff:
        raise EditError("Escriba la respuesta (o elija una plantilla).")
    return RuleForm(
        name, keywords, form.match, form.fuzzy, reply, template, form.handoff, form.when
    )


def _check_keywords_reply(keywords: Sequence[str], reply: str, what: str) -> tuple[list[str], str]:
    words = [" ".join(k.split()) for k in keywords if k.strip()]
    if not words:
        raise EditError(f"Escriba al menos una palabra para {what}.")
    text = _clean_text(reply)
    if not text:
        raise EditError(f"Escriba la respuesta para {what}.")
    return words, text


# -- writing values the way the bundled file does ----------------------------------------------


def _flow_list(items: Iterable[Any]) -> CommentedSeq:
    seq = CommentedSeq(list(items))
    seq.fa.set_flow_style()
    return seq


def _word_list(words: Iterable[str], old: Any) -> CommentedSeq:
    """Keywords on one line; those already there keep their quoting."""
    kept = {str(k): k for k in old} if isinstance(old, list) else {}
    return _flow_list(kept.get(w, w) for w in words)


def _text_value(text: str) -> Any:
    """Replies in double quotes (the library escapes what needs it); several lines as a block."""
    if "\n" in text:
        return LiteralScalarString(text + "\n")
    return DoubleQuotedScalarString(text)


def _set(mapping: CommentedMap, key: str, value: Any, order: Sequence[str]) -> None:
    """Sets `key`, in place when it exists, else after the keys that come before it in
    `order` (so a new key lands where a person would write it)."""
    if key in mapping:
        old = mapping[key]
        if old != value or isinstance(old, bool) != isinstance(value, bool):
            mapping[key] = value  # an equal value keeps its quoting and style
        return
    position = 0
    earlier = order[: order.index(key)] if key in order else order
    for index, existing in enumerate(mapping):
        if existing in earlier:
            position = index + 1
    mapping.insert(position, key, value)


def _fill_rule(raw: CommentedMap, form: RuleForm) -> None:
    _set(raw, "name", form.name, RULE_ORDER)
    if form.keywords:
        _set(raw, "keywords", _word_list(form.keywords, raw.get("keywords")), RULE_ORDER)
    else:
        raw.pop("keywords", None)
    for key, value, default in (("match", form.match, "word"), ("fuzzy", form.fuzzy, 0)):
        if value == default:
            raw.pop(key, None)
        else:
            _set(raw, key, value, RULE_ORDER)
    if form.when == "first_contact":
        _set(raw, "when", CommentedMap(first_contact=True), RULE_ORDER)
        raw["when"].fa.set_flow_style()
    elif form.when in ("open", "closed"):
        _set(raw, "when", form.when, RULE_ORDER)
    elif form.when == "":
        raw.pop("when", None)
    if form.template:
        raw.pop("reply", None)
        _set(raw, "template", form.template, RULE_ORDER)
    else:
        raw.pop("template", None)
        if form.reply:
            _set(raw, "reply", _text_value(form.reply), RULE_ORDER)
        else:
            raw.pop("reply", None)
    if form.handoff:
        _set(raw, "handoff", True, (*RULE_ORDER, "reply", "template"))
    else:
        raw.pop("handoff", None)


# -- splicing lines --------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _filler(line: str, deepest: int) -> bool:
    """A blank line, or a comment no deeper than `deepest` (deeper ones may be the inside of
    a block scalar)."""
    stripped = line.strip()
    return not stripped or (stripped.startswith("#") and _indent(line) <= deepest)


@dataclass(frozen=True)
class _Span:
    """Lines of one rule: blank lines [gap, notes), its comments [notes, start), itself
    [start, end)."""

    gap: int
    notes: int
    start: int
    end: int


def _top_end(doc: CommentedMap, key: str, lines: list[str]) -> int:
    """The line where the next top-level key after `key` starts, or the end of the text."""
    own = doc.lc.key(key)[0]
    later = [doc.lc.key(k)[0] for k in doc if doc.lc.key(k)[0] > own]
    return min(later) if later else len(lines)


def _back_over(lines: list[str], stop: int, floor: int, deepest: int) -> int:
    while stop > floor and _filler(lines[stop - 1], deepest):
        stop -= 1
    return stop


def _rule_spans(doc: CommentedMap, lines: list[str]) -> list[_Span]:
    rules = _rules(doc)
    starts = [rules.lc.item(i)[0] for i in range(len(rules))]
    deepest = rules.lc.item(0)[1] if rules else 0
    floor = doc.lc.key("rules")[0] + 1
    ends = [
        *starts[1:],
        _back_over(lines, _top_end(doc, "rules", lines), floor, deepest),
    ]
    spans = []
    for i, start in enumerate(starts):
        gap = _back_over(lines, start, floor, deepest)
        notes = gap
        while notes < start and not lines[notes].strip():
            notes += 1
        spans.append(_Span(gap, notes, start, _back_over(lines, ends[i], start + 1, deepest)))
        floor = start + 1
    return spans


def _block_rules(doc: CommentedMap, text: str) -> bool:
    """The rules are a block sequence this module can splice (else it rewrites the file)."""
    rules = doc.get("rules")
    return (
        isinstance(rules, CommentedSeq)
        and len(rules) > 0
        and not rules.fa.flow_style()
        and text.endswith("\n")
    )


def _configured(doc: CommentedMap, lines: list[str]) -> YAML:
    """A YAML writer with the file's own indentation (two spaces and `  - ` by default)."""
    y = _yaml()
    mapping, sequence, offset = 2, 4, 2
    settings = doc.get("settings")
    if isinstance(settings, CommentedMap) and settings and not settings.fa.flow_style():
        mapping = settings.lc.key(next(iter(settings)))[1] or 2
    rules = doc.get("rules")
    if isinstance(rules, CommentedSeq) and rules and not rules.fa.flow_style():
        line, column = rules.lc.item(0)
        dash = lines[line].find("-")
        if 0 <= dash < column:
            sequence, offset = column, dash
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    return y


def _dump(y: YAML, data: Any) -> str:
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def _trim_trailing_notes(node: Any) -> None:
    """Drops the comments ruamel keeps after the last value of `node` (they belong to what
    follows it in the file), keeping an end-of-line comment on that value."""
    while True:
        if isinstance(node, CommentedMap) and node and not node.fa.flow_style():
            last: Any = list(node)[-1]
            slot = 2
        elif isinstance(node, CommentedSeq) and node and not node.fa.flow_style():
            last, slot = len(node) - 1, 0
        else:
            return
        value = node[last]
        if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
            node = value
            continue
        entry = node.ca.items.get(last)
        if entry and entry[slot] is not None:
            token = entry[slot]
            first = token.value.split("\n", 1)[0]
            if first.strip():
                token.value = first + "\n"
            else:
                entry[slot] = None
        return


def _rule_lines(y: YAML, raw: CommentedMap) -> list[str]:
    """The lines of one rule as it sits under `rules:`, by the file's writer."""
    _trim_trailing_notes(raw)
    dumped = _lines(_dump(y, {"rules": [raw]}))[1:]
    while dumped and not dumped[-1].strip():
        dumped.pop()
    return dumped


def _separator(lines: list[str], spans: list[_Span]) -> list[str]:
    """The blank lines the file puts between rules (those before its second rule)."""
    if len(spans) < 2:
        return ["\n"]
    return lines[spans[1].gap : spans[1].notes]


def _join(lines: list[str]) -> str:
    return "".join(lines)


def _find(rules: CommentedSeq, name: str) -> int:
    for index, raw in enumerate(rules):
        if str(raw.get("name", "")) == name:
            return index
    raise EditError(f"No hay ninguna regla llamada «{name}» (¿alguien la cambió? Recargue).")


# -- operations on rules ----------------------------------------------------------------------


def add_rule(text: str, form: RuleForm, position: int | None = None) -> str:
    """The text with a new keyword rule at `position` (0 = first; None = last)."""
    doc = _load(text)
    rules = _rules(doc)
    checked = _check_rule(form, None, (str(r.get("name", "")) for r in rules))
    if checked.when == KEEP_WHEN:
        raise EditError("Elija una condición de la lista.")
    raw = CommentedMap()
    _fill_rule(raw, checked)
    at = len(rules) if position is None else max(0, min(position, len(rules)))
    if not _block_rules(doc, text):
        return _rewrite(doc, text, lambda d: _insert_rule(d, at, raw))
    lines = _lines(text)
    spans = _rule_spans(doc, lines)
    y = _configured(doc, lines)
    new = _rule_lines(y, raw)
    sep = _separator(lines, spans)
    if at < len(spans):
        cut = spans[at].notes
        return _join(lines[:cut] + new + sep + lines[cut:])
    cut = spans[-1].end
    return _join(lines[:cut] + sep + new + lines[cut:])


def _insert_rule(doc: CommentedMap, at: int, raw: CommentedMap) -> None:
    rules = doc.get("rules")
    if not isinstance(rules, CommentedSeq):
        rules = CommentedSeq()
        doc["rules"] = rules
    rules.insert(at, raw)


def _rewrite(doc: CommentedMap, text: str, change: Callable[[CommentedMap], Any]) -> str:
    """The whole file by ruamel: for shapes the line splicing does not handle (no rules yet,
    a flow-style list)."""
    y = _configured(doc, _lines(text))
    change(doc)
    return _dump(y, doc)


def edit_rule(text: str, name: str, form: RuleForm) -> str:
    """The text with rule `name` changed as the form says; keys the form does not know stay."""
    doc = _load(text)
    rules = _rules(doc)
    index = _find(rules, name)
    others = (str(r.get("name", "")) for i, r in enumerate(rules) if i != index)
    raw = rules[index]
    checked = _check_rule(form, raw, others)
    if not _block_rules(doc, text):
        return _rewrite(doc, text, lambda d: _fill_rule(raw, checked))
    lines = _lines(text)
    span = _rule_spans(doc, lines)[index]
    y = _configured(doc, lines)
    _trim_trailing_notes(raw)  # before a key is added after the last one
    _fill_rule(raw, checked)
    return _join(lines[: span.start] + _rule_lines(y, raw) + lines[span.end :])


def delete_rule(text: str, name: str) -> str:
    """The text without rule `name` and the comments written just above it."""
    doc = _load(text)
    rules = _rules(doc)
    index = _find(rules, name)
    if not _block_rules(doc, text) or len(rules) == 1:
        return _rewrite(doc, text, lambda d: rules.pop(index))
    lines = _lines(text)
    spans = _rule_spans(doc, lines)
    span = spans[index]
    if index == 0:  # the next rule moves up to right under `rules:`, without its blank lines
        return _join(lines[: span.notes] + lines[spans[1].notes :])
    return _join(lines[: span.gap] + lines[span.end :])


def move_rule(text: str, name: str, step: int) -> str:
    """The text with rule `name` moved `step` places (-1 up, +1 down) with its comments; the
    blank lines between rules stay where they were."""
    doc = _load(text)
    rules = _rules(doc)
    index = _find(rules, name)
    other = index + step
    if step not in (-1, 1) or not 0 <= other < len(rules):
        return text
    if not _block_rules(doc, text):

        def swap(d: CommentedMap) -> None:
            rules[index], rules[other] = rules[other], rules[index]

        return _rewrite(doc, text, swap)
    lines = _lines(text)
    spans = _rule_spans(doc, lines)
    first, second = sorted((index, other))
    a, b = spans[first], spans[second]
    return _join(
        lines[: a.notes]
        + lines[b.notes : b.end]
        + lines[a.end : b.notes]
        + lines[a.notes : a.end]
        + lines[b.end :]
    )


# -- operations on settings -------------------------------------------------------------------

SETTINGS_ORDER = (
    "timezone",
    "country",
    "hours",
    "reply_limit",
    "max_reply_sms",
    "smart_encoding",
    "opt_out",
    "opt_in",
)


def _edit_settings(text: str, change: Callable[[CommentedMap], None]) -> str:
    """Applies `change` to the settings mapping and splices only the `settings:` section of
    the result into the text; the rest of the file is left as it was."""
    doc = _load(text)
    settings = doc.get("settings")
    if settings is None:

        def first(d: CommentedMap) -> None:
            d.insert(0, "settings", CommentedMap())
            change(d["settings"])

        return _rewrite(doc, text, first)
    if not isinstance(settings, CommentedMap) or settings.fa.flow_style() or not settings:
        raise EditError("La sección settings no se puede leer: corríjala en el editor YAML.")
    lines = _lines(text)
    start = doc.lc.key("settings")[0]
    end = _back_over(lines, _top_end(doc, "settings", lines), start + 1, 0)
    y = _configured(doc, lines)
    _trim_trailing_notes(settings)
    change(settings)
    section = CommentedMap()
    section["settings"] = settings
    new = _lines(_dump(y, section))
    while new and not new[-1].strip():
        new.pop()
    return _join(lines[:start] + new + lines[end:])


def _set_keywords_reply(text: str, key: str, keywords: Sequence[str], reply: str) -> str:
    what = "darse de baja" if key == "opt_out" else "volver a suscribirse"
    words, message = _check_keywords_reply(keywords, reply, what)

    def change(settings: CommentedMap) -> None:
        current = settings.get(key)
        if not isinstance(current, CommentedMap):
            current = CommentedMap()
            _set(settings, key, current, SETTINGS_ORDER)
        _set(current, "keywords", _word_list(words, current.get("keywords")), ("keywords", "reply"))
        _set(current, "reply", _text_value(message), ("keywords", "reply"))

    return _edit_settings(text, change)


def set_opt_out(text: str, keywords: Sequence[str], reply: str) -> str:
    return _set_keywords_reply(text, "opt_out", keywords, reply)


def set_opt_in(text: str, keywords: Sequence[str], reply: str) -> str:
    return _set_keywords_reply(text, "opt_in", keywords, reply)


def set_reply_limit(text: str, count: int, per: str) -> str:
    """`reply_limit: {count: N, per: DURATION}`, in place when it is there."""
    per = per.strip()
    if count < 1:
        raise EditError("El límite de respuestas debe ser 1 o más.")
    try:
        if parse_duration(per) <= 0:
            raise ValueError
    except (TypeError, ValueError):
        raise EditError(
            "El período se escribe como 30m, 1h o 1d (minutos, horas o días)."
        ) from None

    def change(settings: CommentedMap) -> None:
        current = settings.get("reply_limit")
        if isinstance(current, CommentedMap):
            current["count"], current["per"] = count, per
            return
        limit = CommentedMap(count=count, per=per)
        limit.fa.set_flow_style()
        _set(settings, "reply_limit", limit, SETTINGS_ORDER)

    return _edit_settings(text, change)


def set_hours(text: str, hours: Mapping[str, Any]) -> str:
    """`settings.hours` as the form gives it (DESIGN §10); lists (holidays) on one line,
    times quoted. An empty mapping removes the key."""

    def value(item: Any) -> Any:
        if isinstance(item, list | tuple):
            return _flow_list(DoubleQuotedScalarString(str(v)) for v in item)
        if isinstance(item, str):
            return DoubleQuotedScalarString(item)
        return item

    def change(settings: CommentedMap) -> None:
        if not hours:
            settings.pop("hours", None)
            return
        current = settings.get("hours")
        if not isinstance(current, CommentedMap) or current.fa.flow_style():
            mapping = CommentedMap((str(k), value(v)) for k, v in hours.items())
            _set(settings, "hours", mapping, SETTINGS_ORDER)
            return
        # In place: the lines (and their comments) of what did not change stay.
        for key in [k for k in current if k not in hours]:
            del current[key]
        for key, item in hours.items():
            _set(current, str(key), value(item), tuple(str(k) for k in hours))

    return _edit_settings(text, change)


# -- templates ------------------------------------------------------------------------------------


def set_template(templates: Mapping[str, str], name: str, text: str) -> dict[str, str]:
    """The templates with `name`'s text replaced (or added); they are files, not YAML."""
    name = name.strip()
    if not TEMPLATE_NAME.fullmatch(name) or ".." in name:
        raise EditError(
            "El nombre de la plantilla usa letras sin acentos, números, _ y - (ej.: envio.txt)."
        )
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if not body.strip():
        raise EditError(f"La plantilla {name} no puede quedar vacía.")
    if not body.endswith("\n"):
        body += "\n"
    return {**templates, name: body}
