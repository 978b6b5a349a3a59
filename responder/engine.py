"""The pure core: a message, the contact's state, the rules and the clock in; a Decision out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from responder import text as sms_text
from responder.rules.conditions import Facts
from responder.rules.matcher import Match
from responder.rules.model import KeywordReply
from responder.rules.schema import RuleSet
from responder.templating import TemplateError, render

SMS_LIMIT = 160  # characters per SMS at both gateways


@dataclass(frozen=True)
class InboundMessage:
    phone: str
    text: str
    received_at: datetime
    line: str | None = None
    provider: str = "massiva"


@dataclass(frozen=True)
class Contact:
    phone: str
    mode: str = "bot"  # or "human"
    opted_out: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    first_contact: bool = True


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
    needs_attention: bool = False  # nothing answered it and no person is on it
    error: str | None = None


def prepare(text: str, smart_encoding: bool) -> tuple[Reply, ...]:
    """Smart-encodes a reply and splits it into SMS-sized parts at word boundaries."""
    encoded = sms_text.smart_encode(text) if smart_encoding else text
    return tuple(
        Reply(part, sms_text.segments(part)) for part in sms_text.split_text(encoded, SMS_LIMIT)
    )


def _context(msg: InboundMessage, contact: Contact, now: datetime, match: Match | None) -> Any:
    return {
        "message": {"text": msg.text, "phone": msg.phone, "received_at": msg.received_at},
        "contact": {**contact.fields, "phone": contact.phone},
        "match": match.groups if match else {},
        "rule": match.rule.name if match else None,
        "now": now,
    }


def _starts_with(tokens: list[str], keywords: tuple[str, ...]) -> str | None:
    """The keyword the message starts with (`STOP por favor`), not merely contains."""
    for keyword in keywords:
        width = keyword.count(" ") + 1
        if " ".join(tokens[:width]) == keyword:
            return keyword
    return None


def _confirm(
    kind: KeywordReply, name: str, ctx: Any, smart: bool, opted_out: bool, why: str
) -> Decision:
    try:
        replies = prepare(render(kind.reply, ctx), smart)
    except TemplateError as err:
        return Decision(name, (), why, opted_out=opted_out, error=f"{name} reply: {err}")
    return Decision(name, replies, why, opted_out=opted_out)


def decide(rules: RuleSet, msg: InboundMessage, contact: Contact, now: datetime) -> Decision:
    """What to answer `msg` and how the conversation changes; does no I/O."""
    settings = rules.settings
    local_now = now.astimezone(settings.timezone)
    normalised = sms_text.normalize(msg.text)
    tokens = normalised.split()
    ctx = _context(msg, contact, local_now, None)

    # Opt-out wins everywhere: in human mode and whatever the rules say.
    if settings.opt_out and (kw := _starts_with(tokens, settings.opt_out.keywords)):
        why = f"opt-out keyword '{kw}'"
        if contact.opted_out:
            return Decision("opt_out", (), why + " (already opted out)")
        return _confirm(settings.opt_out, "opt_out", ctx, settings.smart_encoding, True, why)
    if contact.opted_out:
        if settings.opt_in and (kw := _starts_with(tokens, settings.opt_in.keywords)):
            why = f"opt-in keyword '{kw}'"
            return _confirm(settings.opt_in, "opt_in", ctx, settings.smart_encoding, False, why)
        return Decision(None, (), "contact has opted out: nothing is sent")
    if contact.mode == "human":
        return Decision(None, (), "conversation is with people: no auto-reply")

    facts = Facts(local_now, contact.first_contact, contact.fields)
    match = rules.matcher.match(normalised, facts)
    if match is None:
        return Decision(None, (), "no rule matched", needs_attention=True)
    rule = match.rule
    mode = "human" if rule.handoff else None
    if rule.reply is None:
        return Decision(rule.name, (), match.how, mode=mode)
    try:
        body = render(rule.reply, _context(msg, contact, local_now, match))
    except TemplateError as err:
        return Decision(rule.name, (), match.how, mode=mode, error=f"rule {rule.name}: {err}")
    replies = prepare(body, settings.smart_encoding) if body else ()
    if rule.via:
        replies = tuple(Reply(r.text, r.segments, rule.via) for r in replies)
    return Decision(rule.name, replies, match.how, mode=mode)
