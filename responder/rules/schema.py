"""Reads rules.yaml into a RuleSet, collecting every problem with its line at once.

The parts: responder.rules.settings (the settings table), responder.rules.reader (rules and
conditions), responder.rules.checks (warnings across rules). This module owns the file I/O.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from responder.budget import OverrunRecord, Owner
from responder.rules import checks
from responder.rules.flows import Flow, read_flows
from responder.rules.matcher import Matcher
from responder.rules.model import Problem, Rule, RulesSettings, Version
from responder.rules.reader import PROVIDERS, RULE_KEYS, WHEN_KEYS, Reader, read_rule, trigger_rule
from responder.rules.settings import SETTINGS_KEYS, read_settings
from responder.rules.yamlerrors import YAMLSyntaxError
from responder.rules.yamlpos import PosDict, PosList, load
from responder.templating import Template, make_environment

__all__ = [
    "PROVIDERS",
    "RULE_KEYS",
    "SETTINGS_KEYS",
    "WHEN_KEYS",
    "Problem",
    "RuleSet",
    "compile_rules",
    "load_rules",
]

TOP_KEYS = ("settings", "rules", "flows")


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
    reader = Reader(make_environment(templates))
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


def syntax_problem(err: YAMLSyntaxError) -> Problem:
    return Problem(
        err.line, f"YAML syntax: {err.message}", kind="syntax", code=err.code, params=err.params
    )


def _compile(reader: Reader, raw_bytes: bytes, version: Version) -> RuleSet:
    try:
        # utf-8-sig: Windows Notepad starts the files it saves with a byte-order mark.
        doc = load(raw_bytes.decode("utf-8-sig"))
    except UnicodeDecodeError:
        not_utf8 = Problem(1, "the file is not UTF-8 text", kind="syntax", code="not_utf8")
        doc, reader.problems = None, [not_utf8]
    except YAMLSyntaxError as err:
        doc, reader.problems = None, [syntax_problem(err)]
    rules: list[Rule] = []
    flows: dict[str, Flow] = {}
    settings = RulesSettings()
    if doc is None and not reader.problems:
        # Also what a poll sees in the middle of an editor's save: never take it as "no rules".
        reader.error(1, "the file is empty; it needs settings: and rules:", code="empty_file")
    elif doc is not None and not isinstance(doc, PosDict):
        reader.error(1, "the file must be a mapping with settings: and rules:", code="not_mapping")
    elif isinstance(doc, PosDict):
        reader.check_keys(doc, TOP_KEYS, "the file")
        settings = read_settings(reader, doc.get("settings"))
        raw_rules = doc.get("rules")
        if raw_rules is None and doc.get("flows"):
            pass  # a file of flows alone is fine
        elif not isinstance(raw_rules, PosList):
            reader.error(
                doc.line_of("rules"), "rules: must be a list of rules", code="rules_not_list"
            )
        else:
            for position, (raw, line) in enumerate(zip(raw_rules, raw_rules.item_lines)):
                rule = read_rule(reader, raw, line, position, settings.hours)
                if rule is not None:
                    rules.append(rule)
        flows = read_flows(
            reader,
            doc.get("flows"),
            doc.line_of("flows"),
            lambda raw, name, position: trigger_rule(reader, raw, name, position),
        )
        checks.check(reader, reader.env, settings, rules, flows)
    problems = sorted(reader.problems, key=lambda p: p.line)
    triggers = Matcher([flow.trigger for flow in flows.values()])
    return RuleSet(
        settings, tuple(rules), Matcher(rules), version, tuple(problems), flows, triggers
    )
