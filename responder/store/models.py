"""What the store hands out: plain records, independent of the database behind it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from responder.engine import Contact, Decision, FlowState, InboundMessage

Direction = Literal["in", "out"]
# 'unconfirmed': the provider answered the send in words that could not be read, so the
# message may have gone out; it is neither sent again nor failed.
MessageStatus = Literal[
    "received", "queued", "sending", "sent", "delivered", "failed", "scheduled", "unconfirmed"
]
Origin = Literal["auto", "agent", "cli"] | str  # inbound: the provider's name
Mode = Literal["bot", "human"]
# A conversation is open until a person resolves it; an inbound message reopens it.
ConversationStatus = Literal["open", "resolved"]
STATUSES: tuple[ConversationStatus, ...] = ("open", "resolved")
# The `assigned` filter's value for conversations assigned to nobody.
UNASSIGNED = ""
# What `conversation_counts` counts: "mine" are those assigned to the person asking.
# Where a conversation stands in the list (newest first, then by number): a keyset cursor.
ConversationKey = tuple[datetime, str]
COUNT_KEYS = (
    "all",
    "human",
    "needs_attention",
    "opted_out",
    "unread",
    "unassigned",
    "resolved",
    "mine",
)
OUTBOUND_STATUSES: tuple[MessageStatus, ...] = (
    "queued",
    "sending",
    "sent",
    "delivered",
    "failed",
    "scheduled",
    "unconfirmed",
)


def to_iso(moment: datetime) -> str:
    """UTC ISO 8601 with a fixed width: how the API and exports write every moment
    (`2026-11-23T14:00:00.000000Z`; isoformat, a third faster than strftime)."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")[:26] + "Z"


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # per record class: a handful, ever


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


def _json_ready(record: Any) -> dict[str, Any]:
    """A record as JSON-ready values: moments in ISO 8601 UTC, dicts and lists copied (the
    caller may change them), the rest as they are. Field by field: dataclasses.asdict
    deep-copies every value, each datetime included, and was two thirds of the API's CPU for a
    conversation's page of 200 messages (and of `responder export`)."""
    data = {}
    for name in _field_names(type(record)):
        value = getattr(record, name)
        if isinstance(value, datetime):
            value = to_iso(value)
        elif isinstance(value, dict | list):
            value = copy.deepcopy(value)
        data[name] = value
    return data


class OptedOutError(Exception):
    """The number opted out: nothing may be sent to it until it opts back in."""


class StoreUnavailable(Exception):
    """A write could not be committed (disk full, database locked): nothing was stored."""


class UnknownContactError(LookupError):
    """No conversation with that number."""


class UnknownMessageError(LookupError):
    """No outbound message with that id."""


class MessageStateError(ValueError):
    """The message's status does not allow what was asked (a retry of a delivered message,
    cancelling one already sending); `status` is its status now."""

    def __init__(self, message_id: int, status: str, why: str) -> None:
        super().__init__(why)
        self.message_id = message_id
        self.status = status


# A queued message a person cancelled fails with this error, followed by their name: never
# sent, and not a failure the inbox flags (the CHECK on `status` stays as it is).
CANCELLED_BY = "cancelled by "
# What a person may do to an outbound message, by its status (both stores).
RETRIABLE = ("failed",)
CANCELLABLE = ("queued", "scheduled")


@dataclass(frozen=True)
class Forgotten:
    """What `forget_contact` erased: the number's messages, and whether it stays opted out."""

    messages: int
    kept_opted_out: bool


@dataclass(frozen=True)
class Message:
    id: int
    phone: str
    direction: Direction
    text: str
    status: MessageStatus
    origin: Origin
    rule: str | None
    provider: str | None
    provider_id: str | None
    line: str | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    send_at: datetime | None
    failover_from: str | None
    author: str | None = None  # the person who wrote it; None for the bot and the CLI

    def as_json(self) -> dict[str, Any]:
        # Every field is a plain value: read them as they are, not through asdict's deep
        # copies (three quarters of an export's time went there).
        values = {name: getattr(self, name) for name in MESSAGE_FIELDS}
        for name in MESSAGE_MOMENTS:
            if values[name] is not None:
                values[name] = to_iso(values[name])
        return values


MESSAGE_FIELDS = tuple(f.name for f in fields(Message))
MESSAGE_MOMENTS = tuple(f.name for f in fields(Message) if str(f.type).startswith("datetime"))


@dataclass(frozen=True)
class Conversation:
    phone: str
    last_message_at: datetime
    last_text: str
    mode: Mode
    opted_out: bool
    opted_out_at: datetime | None
    unread: int
    needs_attention: bool
    flagged: bool
    fields: dict[str, Any]
    assigned_to: str | None = None  # the person handling it; None: nobody yet
    status: ConversationStatus = "open"
    labels: tuple[str, ...] = ()  # sorted (DESIGN §12)

    def as_json(self) -> dict[str, Any]:
        data = _json_ready(self)
        data["labels"] = list(self.labels)
        return data


# Contacts imported (DESIGN §12) that never wrote nor were written to have this as their
# `last_message_at` (the column is NOT NULL) and no `last_activity_at`: a contact is a
# conversation, in the inbox, its counts and its search, only once `last_activity_at` is set.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ContactRecord:
    """A contact as the Contactos page and /api/contacts list it (DESIGN §12):
    `last_activity_at` None means it never wrote nor was written to (imported), so it has no
    conversation."""

    phone: str
    fields: dict[str, Any]
    labels: tuple[str, ...]  # sorted
    opted_out: bool
    first_seen_at: datetime
    last_activity_at: datetime | None

    @property
    def has_conversation(self) -> bool:
        return self.last_activity_at is not None

    def as_json(self) -> dict[str, Any]:
        data = _json_ready(self)
        data["labels"] = list(self.labels)
        data["conversation"] = self.has_conversation
        return data


@dataclass(frozen=True)
class ImportRow:
    """One clean row of a contacts import: the number as stored, the fields it sets (empty
    cells left out: they change nothing) and the labels it adds."""

    phone: str
    fields: dict[str, str]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ImportCounts:
    imported: int  # new contacts
    updated: int  # contacts that were there already


@dataclass(frozen=True)
class Note:
    """An internal note in a conversation's thread: read by the staff, never sent (notes live
    in their own table, which the outbox never reads)."""

    id: int
    phone: str
    author: str | None
    text: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return _json_ready(self)


@dataclass(frozen=True)
class InboundJob:
    message: InboundMessage
    decide: Callable[[Contact], Decision]
    # The same phone + line + text within this many seconds is the provider retrying.
    dedupe_window: float = 0.0
    # How far back `decide` needs the contact's auto-replies (the limits' longest window).
    history_window: float = 0.0


@dataclass(frozen=True)
class FlowTimeout:
    """A decision no inbound message caused (the flow `expected` timing out) for `phone`."""

    phone: str
    decision: Decision
    expected: FlowState | None


@dataclass(frozen=True)
class InboundResult:
    message_id: int
    reply_ids: tuple[int, ...]
    decision: Decision
    duplicate: bool = False
    claimed: tuple[OutboxItem, ...] = ()  # replies handed straight to the worker


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery report: `status` is 'delivered' or 'failed'."""

    provider: str
    provider_id: str
    status: str
    detail: str | None
    at: datetime


@dataclass(frozen=True)
class OutboxItem:
    id: int
    phone: str
    text: str
    provider: str
    attempts: int
    created_at: datetime
    origin: Origin = "auto"
    send_at: datetime | None = None
    failover_from: str | None = None


@dataclass(frozen=True)
class SendOutcome:
    """What became of one outbound message after an attempt."""

    id: int
    provider: str
    status: str  # sent, delivered, failed, scheduled, unconfirmed, or queued again (a retry)
    provider_id: str | None = None
    error: str | None = None
    retry_at: datetime | None = None
    failover_from: str | None = None  # set when the message moves to another provider


@dataclass(frozen=True)
class PollItem:
    """An outbound message whose delivery status is asked for."""

    id: int
    provider: str
    provider_id: str
    created_at: datetime
    polls: int
    send_at: datetime | None = None


@dataclass(frozen=True)
class PollResult:
    """What one poll found: a new status (None: unchanged) and when to ask again (None: stop)."""

    id: int
    status: str | None
    error: str | None
    next_poll_at: datetime | None


@dataclass(frozen=True)
class SessionRecord:
    """A signed-in person's session. `key` is the SHA-256 of the id in their cookie, never the
    id itself; `credential` fingerprints what they signed in with."""

    key: str
    user: str
    csrf: str
    credential: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class StaleRuleVersion(Exception):
    """A draft was made from a version that is no longer the newest: publishing it would
    silently undo what was published meanwhile."""

    def __init__(self, active: int | None) -> None:
        super().__init__(f"the rules changed meanwhile; version {active} is in force now")
        self.active = active


RuleSource = Literal["file", "admin", "api", "restore"]


@dataclass(frozen=True)
class RuleVersion:
    """One published version of the rules: the `rules.yaml` text and the templates it names."""

    id: int
    created_at: datetime
    author: str | None
    source: RuleSource
    note: str
    sha256: str
    rules: str
    templates: dict[str, str]


Role = Literal["owner", "agent"]
ROLES: tuple[Role, ...] = ("owner", "agent")
# What the audit trail records (DESIGN §11).
AuditAction = Literal[
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "rules_published",
    "user_created",
    "user_changed",
    "token_created",
    "mode_changed",
    "assigned",
    "broadcast_created",
    "broadcast_cancelled",
    "broadcast_paused",
    "broadcast_resumed",
    "contact_forgotten",
    "messages_expired",
    "message_retried",
    "message_cancelled",
    "saved_reply_created",
    "saved_reply_deleted",
    "contact_changed",
    "contacts_imported",
]


class UserExists(ValueError):
    """A person with that name exists already."""


class UnknownUserError(LookupError):
    """No person with that name."""


@dataclass(frozen=True)
class User:
    """A person of the staff. `password_hash` is an argon2id hash (responder/accounts.py)."""

    name: str
    role: Role
    password_hash: str
    disabled: bool
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": to_iso(self.created_at),
        }


@dataclass(frozen=True)
class ApiToken:
    """A personal API token; the store keeps only the SHA-256 of the token itself."""

    id: int
    user: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    def as_json(self) -> dict[str, Any]:
        return _json_ready(self)


@dataclass(frozen=True)
class AuditEvent:
    """Who did what: `actor` is a person's name (None: the service itself), `subject` what
    it was done to (a person, a phone number, a rules version), `detail` the rest."""

    at: datetime
    actor: str | None
    action: AuditAction
    subject: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # Its place in the trail, once stored (the `before` of the next older page).
    id: int | None = field(default=None, compare=False)

    def as_json(self) -> dict[str, Any]:
        return _json_ready(self)


class SavedReplyExists(ValueError):
    """A saved reply with that name exists already."""


@dataclass(frozen=True)
class SavedReply:
    """A reply the owners saved for the team: `name` is what an agent types after `/`, `text`
    a template filled in with the contact's fields (responder/saved_replies.py)."""

    id: int
    name: str
    text: str
    author: str | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return _json_ready(self)


@dataclass(frozen=True)
class Waiting:
    """Conversations with unread messages that a person must answer (handed to a person, or
    needing attention), and the newest inbound message among them: the tab title's count and
    the browser's notification."""

    count: int
    newest: Message | None
