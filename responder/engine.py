"""The pure core: a message, the contact's state, the rules and the clock in; a Decision out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from responder import text as sms_text
from responder.caches import short_lru
from responder.rules.conditions import Facts
from responder.rules.flows import MAX_STEPS_PER_MESSAGE, Flow
from responder.rules.hours import OpeningHours, template_value
from responder.rules.matcher import Match
from responder.rules.model import KeywordReply, RulesSettings
from responder.rules.schema import RuleSet
from responder.templating import TemplateError, render

SMS_LIMIT = 160  # characters per SMS at both gateways
# How much of a customer's text reaches the rules and templates (the message is stored whole):
# ten SMS of message, one SMS per named group of a pattern.
MAX_MATCHED_TEXT = 1600
MAX_GROUP_TEXT = 160


@dataclass(frozen=True)
class InboundMessage:
    phone: str
    text: str
    received_at: datetime
    line: str | None = None
    provider: str = "massiva"


@dataclass(frozen=True)
class FlowState:
    """Where a contact is in a multi-step flow: the step waiting for an answer."""

    name: str
    step: int
    retries: int
    since: datetime  # when the waiting step was asked


@dataclass(frozen=True)
class Contact:
    phone: str
    mode: str = "bot"  # or "human"
    opted_out: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    first_contact: bool = True
    last_activity_at: datetime | None = None  # the last message either way, before this one
    # Auto-replies sent recently (time, text), oldest first: enough for the limits' windows.
    recent_replies: tuple[tuple[datetime, str], ...] = ()
    flow: FlowState | None = None


@dataclass(frozen=True)
class Reply:
    text: str
    segments: int
    via: str | None = None


@dataclass(frozen=True)
class Decision:
    rule: str | None
    replies: tuple[Reply, ...]
    explanation: str
    mode: str | None = None  # a new conversation mode, when it changes
    opted_out: bool | None = None  # a new opt-out state, when it changes
    # A person should look: no rule answered, or the fallback, a `when: closed` rule, a rule
    # with `attention: true`, or a flow that gave up did.
    needs_attention: bool = False
    error: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # contact fields to save
    label: tuple[str, ...] = ()  # contact labels to add (a rule's `label:`)
    unlabel: tuple[str, ...] = ()  # and to remove, after adding
    flow: FlowState | None = None  # the flow state afterwards, when flow_changed
    flow_changed: bool = False
    flagged: bool = False  # the loop guard stopped a reply
    suppressed: str | None = None  # why replies were held back: reply_limit or loop_guard
    # What the shell should log about the replies (never their text): cleaned, cut short.
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A text made ready to send: its SMS-sized parts, and what had to be changed."""

    replies: tuple[Reply, ...]
    warnings: tuple[str, ...] = ()


@short_lru(maxsize=1024, max_chars=480)  # most replies are a rule's fixed text
def prepare(text: str, smart_encoding: bool, max_sms: int | None = None) -> Prepared:
    """Cleans a reply of control characters, smart-encodes it, cuts it to `max_sms` SMS (at a
    word boundary, with an ellipsis) and splits it into SMS-sized parts at word boundaries."""
    warnings = []
    try:
        cleaned = sms_text.sendable(text, strict=True)
    except sms_text.UnsendableText as err:
        cleaned = sms_text.sendable(text, strict=False)
        if err.kind == "control":
            warnings.append(f"control character {err.code_point} removed from the reply")
        elif text.strip():
            warnings.append("the reply has nothing visible (only invisible characters): not sent")
    encoded = sms_text.smart_encode(cleaned) if smart_encoding else cleaned
    if max_sms is not None:
        shortened = sms_text.shorten(encoded, max_sms, SMS_LIMIT)
        if shortened != encoded:
            warnings.append(
                f"reply of {len(encoded)} characters cut to {max_sms} SMS (settings.max_reply_sms)"
            )
            encoded = shortened
    if not encoded.strip():
        return Prepared((), tuple(warnings))
    parts = sms_text.split_text(encoded, SMS_LIMIT)
    return Prepared(tuple(Reply(part, sms_text.segments(part)) for part in parts), tuple(warnings))


def _prepare(text: str, settings: RulesSettings, warnings: list[str]) -> tuple[Reply, ...]:
    """An auto-reply's parts, capped; what had to change is added to `warnings`."""
    prepared = prepare(text, settings.smart_encoding, settings.reply_cap)
    warnings.extend(prepared.warnings)
    return prepared.replies


def _context(
    msg: InboundMessage | None,
    contact: Contact,
    now: datetime,
    hours: OpeningHours | None,
    match: Match | None = None,
    fields: dict[str, Any] | None = None,
) -> Any:
    """What a reply template sees (responder.rules.checks.CONTEXT_VARIABLES); `now` is local
    time; `fields` are contact fields saved by this very message."""
    message = {"text": msg.text, "phone": msg.phone, "received_at": msg.received_at} if msg else {}
    # A pattern's group can hold most of a long message: one SMS of it is plenty for a reply.
    groups = {name: value[:MAX_GROUP_TEXT] for name, value in match.groups.items()} if match else {}
    return {
        "message": message,
        "contact": {**contact.fields, **(fields or {}), "phone": contact.phone},
        "match": groups,
        "rule": match.rule.name if match else None,
        "now": now,
        "hours": template_value(hours, now),
    }


def _starts_with(tokens: list[str], keywords: tuple[str, ...]) -> str | None:
    """The keyword the message starts with (`STOP por favor`), not merely contains."""
    for keyword in keywords:
        width = keyword.count(" ") + 1
        if " ".join(tokens[:width]) == keyword:
            return keyword
    return None


def _confirm(
    kind: KeywordReply,
    name: str,
    ctx: Any,
    settings: RulesSettings,
    opted_out: bool,
    why: str,
) -> Decision:
    warnings: list[str] = []
    try:
        replies = _prepare(render(kind.reply, ctx), settings, warnings)
    except TemplateError as err:
        return Decision(name, (), why, opted_out=opted_out, error=f"{name} reply: {err}")
    return Decision(name, replies, why, opted_out=opted_out, warnings=tuple(warnings))


def decide(rules: RuleSet, msg: InboundMessage, contact: Contact, now: datetime) -> Decision:
    """What to answer `msg` and how the conversation changes; does no I/O. Only the first
    MAX_MATCHED_TEXT characters of the message are matched and reach templates."""
    settings = rules.settings
    if len(msg.text) > MAX_MATCHED_TEXT:
        msg = replace(msg, text=msg.text[:MAX_MATCHED_TEXT])
    local_now = now.astimezone(settings.timezone)
    normalised = sms_text.normalize_cached(msg.text)
    tokens = normalised.split()
    ctx = _context(msg, contact, local_now, settings.hours)

    # Opt-out wins everywhere: in human mode, in a flow, whatever the rules say.
    if settings.opt_out and (kw := _starts_with(tokens, settings.opt_out.keywords)):
        why = f"opt-out keyword '{kw}'"
        if contact.opted_out:
            return Decision("opt_out", (), why + " (already opted out)")
        decision = _confirm(settings.opt_out, "opt_out", ctx, settings, True, why)
        return replace(decision, flow=None, flow_changed=contact.flow is not None)
    if contact.opted_out:
        if settings.opt_in and (kw := _starts_with(tokens, settings.opt_in.keywords)):
            why = f"opt-in keyword '{kw}'"
            return _confirm(settings.opt_in, "opt_in", ctx, settings, False, why)
        return Decision(None, (), "contact has opted out: nothing is sent")

    mode_change = None
    if contact.mode == "human":
        idle = now - contact.last_activity_at if contact.last_activity_at else None
        timeout = settings.handoff_timeout
        if timeout is None or idle is None or idle.total_seconds() < timeout:
            return Decision(None, (), "conversation is with people: no auto-reply")
        mode_change = "bot"  # nobody answered for handoff_timeout: the bot takes over again

    facts = Facts(local_now, contact.first_contact, contact.fields)
    decision = _in_flow(rules, msg, contact, normalised, facts, now) or _answer(
        rules, msg, contact, normalised, local_now
    )
    if mode_change is not None and decision.mode is None:
        decision = replace(
            decision,
            mode=mode_change,
            explanation=decision.explanation + ", back to bot after handoff_timeout",
        )
    return _limit(decision, contact, settings, now)


def _answer(
    rules: RuleSet, msg: InboundMessage, contact: Contact, normalised: str, local_now: datetime
) -> Decision:
    """The rules' answer to a contact the bot is talking to."""
    settings = rules.settings
    facts = Facts(local_now, contact.first_contact, contact.fields)
    match = rules.matcher.match(normalised, facts)
    if match is None:
        return Decision(None, (), "no rule matched", needs_attention=True)
    rule = match.rule
    mode = "human" if rule.handoff else None
    attention = rule.attention
    if rule.reply is None:
        return Decision(
            rule.name,
            (),
            match.how,
            mode=mode,
            needs_attention=attention,
            label=rule.label,
            unlabel=rule.unlabel,
        )
    try:
        body = rule.plain_text
        if body is None:
            body = render(rule.reply, _context(msg, contact, local_now, settings.hours, match))
    except TemplateError as err:
        error = f"rule {rule.name}: {err}"
        return Decision(
            rule.name,
            (),
            match.how,
            mode=mode,
            needs_attention=True,
            error=error,
            label=rule.label,
            unlabel=rule.unlabel,
        )
    warnings: list[str] = []
    replies = _prepare(body, settings, warnings) if body else ()
    if rule.via:
        replies = tuple(Reply(r.text, r.segments, rule.via) for r in replies)
    return Decision(
        rule.name,
        replies,
        match.how,
        mode=mode,
        needs_attention=attention,
        warnings=tuple(warnings),
        label=rule.label,
        unlabel=rule.unlabel,
    )


def _run_steps(
    flow: Flow,
    start: int | None,
    msg: InboundMessage,
    contact: Contact,
    fields: dict[str, Any],
    settings: RulesSettings,
    now: datetime,
    warnings: list[str],
) -> tuple[tuple[Reply, ...], FlowState | None]:
    """Sends steps from `start` on: `say` steps and the next `ask`, where the flow then waits."""
    ctx = _context(msg, contact, now.astimezone(settings.timezone), settings.hours, fields=fields)
    replies: list[Reply] = []
    index = start
    for _ in range(MAX_STEPS_PER_MESSAGE):
        if index is None:
            return tuple(replies), None
        step = flow.steps[index]
        replies.extend(_prepare(render(step.text, ctx), settings, warnings))
        if step.kind == "ask":
            return tuple(replies), FlowState(flow.name, index, 0, now)
        index = flow.next_after(index)
    return tuple(replies), None


def _flow_decision(name: str, replies: tuple[Reply, ...], why: str, **changes: Any) -> Decision:
    return Decision(f"flow:{name}", replies, why, flow_changed=True, **changes)


def _in_flow(
    rules: RuleSet,
    msg: InboundMessage,
    contact: Contact,
    normalised: str,
    facts: Facts,
    now: datetime,
) -> Decision | None:
    """A flow's answer: starting one on its trigger, or taking the answer to a waiting step.
    None when no flow is concerned and the rules answer."""
    settings = rules.settings
    state = contact.flow
    flow = rules.flows.get(state.name) if state else None
    if state is not None and (flow is None or _stale(flow, state, now)):
        # A stale flow (overdue, or changed under it by an edit) ends; the message is
        # answered as if there were none.
        found = _in_flow(rules, msg, replace(contact, flow=None), normalised, facts, now)
        if found is None:
            found = _answer(rules, msg, contact, normalised, facts.now)
        return replace(found, flow_changed=True) if not found.flow_changed else found
    warnings: list[str] = []
    try:
        if flow is None or state is None:
            trigger = rules.flow_triggers.match(normalised, facts)
            if trigger is None:
                return None
            started = rules.flows[trigger.rule.name]
            replies, new_state = _run_steps(started, 0, msg, contact, {}, settings, now, warnings)
            why = f"flow {started.name} started: {trigger.how}"
            return _flow_decision(
                started.name, replies, why, flow=new_state, warnings=tuple(warnings)
            )

        if flow.interruptible:
            match = rules.matcher.match(normalised, facts)
            if match is not None and not match.rule.fallback:
                decision = _answer(rules, msg, contact, normalised, facts.now)
                return replace(decision, flow=None, flow_changed=True)

        step = flow.steps[state.step]
        if step.accept is not None and not step.accept.search(normalised):
            if state.retries >= flow.max_retries:
                why = f"flow {flow.name}: no valid answer after {state.retries + 1} tries, ended"
                return _flow_decision(flow.name, (), why, flow=None, needs_attention=True)
            ctx = _context(msg, contact, facts.now, settings.hours)
            replies = _prepare(render(step.retry or step.text, ctx), settings, warnings)
            retry = FlowState(flow.name, state.step, state.retries + 1, now)
            why = f"flow {flow.name}: answer not accepted, asked again"
            return _flow_decision(flow.name, replies, why, flow=retry, warnings=tuple(warnings))
        fields = {step.save: msg.text.strip()} if step.save else {}
        following = flow.next_after(state.step, normalised)
        replies, new_state = _run_steps(
            flow, following, msg, contact, fields, settings, now, warnings
        )
        why = f"flow {flow.name}: answer to step {state.step + 1}"
        return _flow_decision(
            flow.name, replies, why, fields=fields, flow=new_state, warnings=tuple(warnings)
        )
    except TemplateError as err:
        name = flow.name if flow else "?"
        error = f"flow {name}: {err}"
        return _flow_decision(name, (), "flow failed", error=error, flow=None, needs_attention=True)


def _stale(flow: Flow, state: FlowState, now: datetime) -> bool:
    edited = state.step >= len(flow.steps) or flow.steps[state.step].kind != "ask"
    return edited or _overdue(flow, state, now)


def _overdue(flow: Flow, state: FlowState, now: datetime) -> bool:
    return flow.timeout is not None and (now - state.since).total_seconds() > flow.timeout


def expire_flow(rules: RuleSet, contact: Contact, now: datetime) -> Decision | None:
    """Ends a flow whose answer is overdue, with its `timeout_reply` if it has one; None while
    the contact's flow is still waiting within its timeout."""
    state = contact.flow
    if state is None or contact.opted_out:
        return None
    flow = rules.flows.get(state.name)
    if flow is not None and not _stale(flow, state, now):
        return None
    why = f"flow {state.name} timed out"
    if flow is None or flow.timeout_reply is None or contact.mode == "human":
        return _flow_decision(state.name, (), why, flow=None)
    ctx = _context(None, contact, now.astimezone(rules.settings.timezone), rules.settings.hours)
    warnings: list[str] = []
    try:
        replies = _prepare(render(flow.timeout_reply, ctx), rules.settings, warnings)
    except TemplateError as err:
        return _flow_decision(state.name, (), why, error=str(err), flow=None)
    return _flow_decision(state.name, replies, why, flow=None, warnings=tuple(warnings))


def _limit(
    decision: Decision, contact: Contact, settings: RulesSettings, now: datetime
) -> Decision:
    """Holds back auto-replies that would take the number past `reply_limit` SMS, and any
    text repeated to the same number more than `loop_guard` allows (two bots answering each
    other)."""
    if not decision.replies:
        return decision
    limit, guard = settings.reply_limit, settings.loop_guard
    since = now - timedelta(seconds=limit.per)
    # What replies cost, not how many there were: one long reply must not pass for one.
    used = sum(sms_text.segments(text) for at, text in contact.recent_replies if at > since)
    cost = sum(reply.segments for reply in decision.replies)
    if used + cost > limit.count:
        why = (
            f"{decision.explanation}; reply limit reached "
            f"({limit.count} SMS per {_span(limit.per)}, {used} sent, this reply {cost})"
        )
        return replace(decision, replies=(), explanation=why, suppressed="reply_limit")
    since = now - timedelta(seconds=guard.per)
    texts = {r.text for r in decision.replies}
    repeats = sum(1 for at, text in contact.recent_replies if at > since and text in texts)
    if repeats >= guard.count:
        span = _span(guard.per)
        why = f"{decision.explanation}; loop guard: same text {guard.count} times in {span}"
        return replace(decision, replies=(), explanation=why, suppressed="loop_guard", flagged=True)
    return decision


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
