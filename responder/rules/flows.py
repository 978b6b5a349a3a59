"""Multi-step conversations (`flows:` in rules.yaml): their compiled form and their reader."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from responder import text as sms_text
from responder.rules.conditions import BadValue, parse_duration
from responder.rules.model import Rule
from responder.rules.patterns import Pattern
from responder.rules.yamlpos import PosDict, PosList
from responder.templating import Template

FLOW_KEYS = ("trigger", "timeout", "timeout_reply", "steps", "max_retries", "interruptible")
TRIGGER_KEYS = ("keywords", "match", "fuzzy")
STEP_KEYS = ("id", "ask", "say", "save", "accept", "retry", "goto", "end")
SAVE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
DEFAULT_RETRIES = 2
MAX_STEPS_PER_MESSAGE = 50  # a `goto` cycle of `say` steps must not spin forever


@dataclass(frozen=True)
class FlowStep:
    line: int
    kind: str  # "ask" waits for an answer; "say" just sends
    text: Template
    source: str
    id: str | None = None
    save: str | None = None
    accept: Pattern | None = None
    retry: Template | None = None
    goto: tuple[tuple[str, str], ...] = ()  # (normalised answer or "*", step id)
    end: bool = False


@dataclass(frozen=True)
class Flow:
    name: str
    line: int
    trigger: Rule
    steps: tuple[FlowStep, ...]
    timeout: float | None = None
    timeout_reply: Template | None = None
    max_retries: int = DEFAULT_RETRIES
    interruptible: bool = False

    def index_of(self, step_id: str) -> int:
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        raise KeyError(step_id)

    def next_after(self, index: int, answer: str | None = None) -> int | None:
        """The step after `index`: its `goto` for this answer, else the next one; None: end."""
        step = self.steps[index]
        for key, target in step.goto:
            if key == "*" or answer is None or key == answer or answer.split(" ", 1)[0] == key:
                return self.index_of(target)
        if step.end or index + 1 >= len(self.steps):
            return None
        return index + 1


class Reader(Protocol):
    """What the rules reader offers to read flows with (see reader.Reader)."""

    def error(
        self,
        line: int,
        message: str,
        rule: str | None = None,
        kind: str = "schema",
        *,
        code: str,
        **params: Any,
    ) -> None: ...

    def check_keys(
        self, mapping: PosDict, allowed: tuple[str, ...], what: str, rule: str | None = None
    ) -> None: ...

    def regex(self, source: str, line: int, rule: str) -> Pattern | None: ...

    def template(
        self, source: str, line: int, rule: str | None, is_file: bool = False
    ) -> Template | None: ...


def _read_step(r: Reader, raw: Any, line: int, flow: str) -> FlowStep | None:
    if not isinstance(raw, PosDict):
        r.error(
            line, "each step must be a mapping with ask: or say:", flow, code="step_not_mapping"
        )
        return None
    r.check_keys(raw, STEP_KEYS, "step", flow)
    kinds = [k for k in ("ask", "say") if k in raw]
    if len(kinds) != 1:
        r.error(raw.line, "a step has exactly one of ask: or say:", flow, code="ask_or_say")
        return None
    kind = kinds[0]
    source = str(raw[kind] or "")
    text = r.template(source, raw.line_of(kind), flow)
    if text is None:
        return None
    save = raw.get("save")
    if save is not None and (kind != "ask" or not SAVE_RE.match(str(save))):
        r.error(
            raw.line_of("save"),
            "save: goes on an ask step and names a field (letters, _)",
            flow,
            code="bad_save",
        )
        save = None
    accept = None
    if "accept" in raw:
        accept = r.regex(str(raw["accept"]), raw.line_of("accept"), flow)
    retry = None
    if "retry" in raw:
        retry = r.template(str(raw["retry"]), raw.line_of("retry"), flow)
    goto = raw.get("goto")
    pairs: list[tuple[str, str]] = []
    if isinstance(goto, dict):
        pairs = [(k if k == "*" else sms_text.normalize(str(k)), str(v)) for k, v in goto.items()]
    elif isinstance(goto, str):
        pairs = [("*", goto)]
    elif goto is not None:
        r.error(
            raw.line_of("goto"),
            "goto: is a step id, or {answer: step id, ...}",
            flow,
            code="bad_goto",
        )
    end = raw.get("end", False)
    if not isinstance(end, bool):
        r.error(
            raw.line_of("end"), "end must be true or false", flow, code="not_boolean", key="end"
        )
    step_id = raw.get("id")
    return FlowStep(
        line=raw.line,
        kind=kind,
        text=text,
        source=source,
        id=None if step_id is None else str(step_id),
        save=None if save is None else str(save),
        accept=accept,
        retry=retry,
        goto=tuple(pairs),
        end=end is True,
    )


def read_flows(
    r: Reader,
    raw: Any,
    line: int,
    make_trigger: Callable[[PosDict, str, int], Rule | None],
) -> dict[str, Flow]:
    """Reads `flows:`; `make_trigger` builds the trigger's matching rule like a rule's keys."""
    if raw is None:
        return {}
    if not isinstance(raw, PosDict):
        r.error(line, "flows: must be a mapping of flow names to flows", code="flows_not_mapping")
        return {}
    flows: dict[str, Flow] = {}
    for position, (name, spec) in enumerate(raw.items()):
        at = raw.line_of(name)
        if not isinstance(spec, PosDict):
            r.error(at, "a flow is a mapping with trigger: and steps:", name, code="bad_flow")
            continue
        r.check_keys(spec, FLOW_KEYS, "flow", name)
        trigger_raw = spec.get("trigger")
        trigger = None
        if isinstance(trigger_raw, PosDict) and trigger_raw.get("keywords"):
            r.check_keys(trigger_raw, TRIGGER_KEYS, "trigger", name)
            trigger = make_trigger(trigger_raw, name, position)
        else:
            r.error(
                spec.line_of("trigger"),
                "trigger: needs keywords, e.g. {keywords: [encuesta]}",
                name,
                code="no_trigger",
            )
        raw_steps = spec.get("steps")
        if not isinstance(raw_steps, PosList) or not raw_steps:
            r.error(spec.line_of("steps"), "steps: must be a non-empty list", name, code="no_steps")
            continue
        steps = [
            _read_step(r, item, item_line, name)
            for item, item_line in zip(raw_steps, raw_steps.item_lines)
        ]
        found = tuple(s for s in steps if s is not None)
        ids = {s.id for s in found if s.id}
        for step in found:
            for _, target in step.goto:
                if target not in ids:
                    r.error(
                        step.line,
                        f"goto: no step has id '{target}'",
                        name,
                        code="unknown_step",
                        target=target,
                    )
        timeout = None
        if spec.get("timeout") is not None:
            try:
                timeout = parse_duration(spec["timeout"])
            except BadValue as err:
                r.error(
                    spec.line_of("timeout"),
                    f"timeout: {err}",
                    name,
                    code=err.code,
                    setting="timeout",
                    **err.params,
                )
        timeout_reply = None
        if spec.get("timeout_reply") is not None:
            timeout_reply = r.template(
                str(spec["timeout_reply"]), spec.line_of("timeout_reply"), name
            )
        retries = spec.get("max_retries", DEFAULT_RETRIES)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            r.error(
                spec.line_of("max_retries"),
                "max_retries must be a number, 0 or more",
                name,
                code="bad_max_retries",
            )
            retries = DEFAULT_RETRIES
        interruptible = spec.get("interruptible", False)
        if not isinstance(interruptible, bool):
            r.error(
                spec.line_of("interruptible"),
                "interruptible must be true or false",
                name,
                code="not_boolean",
                key="interruptible",
            )
        if trigger is None or len(found) != len(steps):
            continue
        flows[name] = Flow(
            name=name,
            line=at,
            trigger=trigger,
            steps=found,
            timeout=timeout,
            timeout_reply=timeout_reply,
            max_retries=retries,
            interruptible=interruptible is True,
        )
    return flows
