"""The compiled form of rules.yaml: settings, rules and problems found while loading."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from responder.rules.conditions import Condition
from responder.rules.hours import OpeningHours
from responder.rules.patterns import Pattern
from responder.templating import Template

MATCH_MODES = ("word", "first", "exact", "contains")
ERROR_KINDS = ("syntax", "schema", "regex", "template")
WARNING_KINDS = (
    "shadowed",
    "duplicate_keyword",
    "cost",
    "ucs2",
    "unknown_template",
    "unknown_variable",
    "backtracking",
    "regex",  # a pattern that never matches normalised text
)


@dataclass(frozen=True)
class Limit:
    count: int
    per: float  # seconds


@dataclass(frozen=True)
class Retry:
    """Transient send failures are retried up to `attempts` times while younger than
    `max_age` seconds."""

    attempts: int = 8
    max_age: float = 6 * 3600.0


@dataclass(frozen=True)
class KeywordReply:
    keywords: tuple[str, ...]  # normalised
    reply: Template
    source: str
    line: int = 0  # of its `reply:`


@dataclass(frozen=True)
class RulesSettings:
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/Caracas"))
    country: str = "VE"
    reply_limit: Limit = Limit(5, 3600)  # SMS (not replies) per number in a sliding window
    max_reply_sms: int = 3  # the most SMS one auto-reply may cost; longer ones are cut
    loop_guard: Limit = Limit(20, 300)
    dedupe_window: float = 10.0
    smart_encoding: bool = True
    handoff_timeout: float | None = None
    opt_out: KeywordReply | None = None
    opt_in: KeywordReply | None = None
    # Delivery: how long replies may wait, how they are retried, where they may go instead.
    reply_max_age: float = 3600.0  # an auto-reply older than this is not sent late
    agent_reply_max_age: float = 86400.0  # the same for staff and `responder send` messages
    retry: Retry = Retry()
    delivery: str = "at_least_once"  # or "at_most_once": what a crash mid-send leads to
    failover: bool = False  # a message the provider cannot take may go through another
    send_rate: dict[str, float] = field(default_factory=dict)  # provider → messages/second
    low_credit: float | None = None  # warn below this many credits
    retention: float | None = None  # seconds message texts are kept (None: for ever)
    hours: OpeningHours | None = None  # opening hours, in `timezone`

    @property
    def reply_cap(self) -> int:
        """The most SMS one auto-reply may cost: `max_reply_sms`, and never more than the
        reply limit could ever let through."""
        return min(self.max_reply_sms, self.reply_limit.count)


@dataclass(frozen=True)
class Rule:
    name: str
    position: int  # file order
    line: int
    keywords: tuple[str, ...] = ()  # normalised
    mode: str = "word"
    fuzzy: int = 0
    pattern: Pattern | None = None
    when: Condition | None = None
    reply: Template | None = None
    reply_source: str = ""  # the inline reply or the template's file name
    template: str | None = None  # the template file, when the reply comes from one
    plain_text: str | None = None  # the reply, when it has no Jinja syntax: no rendering needed
    via: str | None = None
    handoff: bool = False
    fallback: bool = False
    # Its answer leaves the conversation needing a person's attention: `attention:` as
    # written, else true for a fallback and a `when: closed` rule.
    attention: bool = False
    reply_line: int = 0  # the line of `reply:` or `template:`
    label: tuple[str, ...] = ()  # contact labels the rule adds (DESIGN §12)
    unlabel: tuple[str, ...] = ()  # and removes

    @property
    def matches_everything(self) -> bool:
        return not self.keywords and self.pattern is None


@dataclass(frozen=True)
class Problem:
    """An error or a warning found in the rules. `kind` is one of ERROR_KINDS or
    WARNING_KINDS; `code` and `params` name the finding for translation
    (responder.rules.messages_es), so nobody parses `message`."""

    line: int
    message: str  # English
    rule: str | None = None
    severity: str = "error"  # or "warning"
    kind: str = "schema"
    code: str = ""  # a finer name than kind: "unknown_key"; every error has one
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def format(self, filename: str) -> str:
        where = f" (rule {self.rule})" if self.rule else ""
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{filename}:{self.line}: {prefix}{self.message}{where}"


@dataclass(frozen=True)
class Version:
    sha256: str  # of the rules text
    loaded_at: datetime
    path: str  # where the text came from: the file, or the stored version
    number: int | None = None  # the stored version in force (DESIGN §10), once there is one
