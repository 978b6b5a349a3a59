"""How the PostgreSQL backend reads and writes rows: contacts as the writer holds them,
message rows, JSON, and the per-number lock that puts one number's messages in order."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from responder.engine import Contact, Decision, FlowState, Reply
from responder.store.models import Conversation, Message, OutboxItem, to_iso
from responder.store.search import fold_fields_json
from responder.text import normalize_cached

MESSAGE_COLUMNS = (
    "id, phone, direction, text, status, origin, rule, provider, provider_id, line, error, "
    "attempts, created_at, updated_at, send_at, failover_from, author"
)
CONTACT_COLUMNS = (
    "phone, mode, opted_out, opted_out_at, opt_out_message_id, fields::text, unread, "
    "needs_attention, first_seen_at, last_message_at, last_text, flagged, flow::text, "
    "last_activity_at"
)
# What a conversation is read with: who handles it and whether it is resolved are changed by
# people only (store/pg_inbox.py), never by the writer's upsert.
CONVERSATION_COLUMNS = (
    f"{CONTACT_COLUMNS}, assigned_to, status, ARRAY(SELECT label FROM contact_labels "
    'WHERE contact_labels.phone = contacts.phone ORDER BY label COLLATE "C")'
)
# Messages are written from columns of values (one array per column): one statement per batch.
INSERT_MESSAGES = """
INSERT INTO messages (id, phone, direction, text, status, origin, rule, provider, provider_id,
    line, error, attempts, created_at, updated_at, send_at, failover_from, next_attempt_at,
    claimed_by, lease_until, folded)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::integer[],
    $13::timestamptz[], $14::timestamptz[], $15::timestamptz[], $16::text[],
    $17::timestamptz[], $18::text[], $19::timestamptz[], $20::text[])
"""
UPSERT_CONTACTS = """
INSERT INTO contacts (phone, mode, opted_out, opted_out_at, opt_out_message_id, fields, unread,
    needs_attention, first_seen_at, last_message_at, last_text, flagged, flow, last_activity_at,
    folded)
SELECT phone, mode, opted_out, opted_out_at, opt_out_message_id, fields::jsonb, unread,
    needs_attention, first_seen_at, last_message_at, last_text, flagged, flow::jsonb,
    last_activity_at, folded
FROM unnest($1::text[], $2::text[], $3::boolean[], $4::timestamptz[], $5::bigint[], $6::text[],
    $7::integer[], $8::boolean[], $9::timestamptz[], $10::timestamptz[], $11::text[],
    $12::boolean[], $13::text[], $14::timestamptz[], $15::text[])
    AS c(phone, mode, opted_out, opted_out_at, opt_out_message_id, fields, unread,
    needs_attention, first_seen_at, last_message_at, last_text, flagged, flow, last_activity_at,
    folded)
ON CONFLICT (phone) DO UPDATE SET folded = excluded.folded,
    mode = excluded.mode, opted_out = excluded.opted_out, opted_out_at = excluded.opted_out_at,
    opt_out_message_id = excluded.opt_out_message_id, fields = excluded.fields,
    unread = excluded.unread, needs_attention = excluded.needs_attention,
    last_message_at = excluded.last_message_at, last_text = excluded.last_text,
    flagged = excluded.flagged, flow = excluded.flow, last_activity_at = excluded.last_activity_at
"""
# The same for contacts who just wrote: a resolved conversation opens again, in the same
# statement (one round trip less per group of webhooks than an UPDATE after it).
UPSERT_CONTACTS_REOPENING = (
    UPSERT_CONTACTS.rstrip()
    + ",\n    status = CASE WHEN contacts.status = 'resolved' THEN 'open' "
    + "ELSE contacts.status END\n"
)
PHONE_LOCK_SPACE = b"responder:contact:"
REPORT_LOCK_SPACE = b"responder:report:"


def clean_text(value: str) -> str:
    """PostgreSQL's text cannot hold NUL: it is stored as U+FFFD (SQLite keeps it)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def maybe_clean(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


def _json_safe(value: Any) -> Any:
    """A JSON value PostgreSQL's jsonb takes: no NaN or infinity (null instead, as the
    SQLite backend reads them back), no NUL in strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def to_json(value: Any) -> str:
    return json.dumps(_json_safe(value), ensure_ascii=False)


def flow_to_json(flow: FlowState | None) -> str | None:
    if flow is None:
        return None
    return to_json(
        {"name": flow.name, "step": flow.step, "retries": flow.retries, "since": to_iso(flow.since)}
    )


def flow_from_json(value: str | None) -> FlowState | None:
    if not value:
        return None
    data = json.loads(value)
    since = datetime.fromisoformat(data["since"])
    return FlowState(data["name"], data["step"], data["retries"], since)


def _lock_keys(space: bytes, names: Iterable[str]) -> list[int]:
    """pg_advisory_xact_lock keys for these names in `space`, sorted: every transaction takes
    its locks in the same order, so two never wait on each other in a circle."""
    keys = {
        int.from_bytes(
            hashlib.blake2b(space + name.encode(), digest_size=8).digest(), "big", signed=True
        )
        for name in names
    }
    return sorted(keys)


def phone_lock_keys(phones: Sequence[str]) -> list[int]:
    """The numbers' lock keys (lock_phones)."""
    return _lock_keys(PHONE_LOCK_SPACE, phones)


def report_lock_keys(pairs: Iterable[tuple[str, str]]) -> list[int]:
    """The lock keys of these (provider, provider id) pairs (lock_reports)."""
    return _lock_keys(REPORT_LOCK_SPACE, (f"{provider}\x00{pid}" for provider, pid in pairs))


async def lock_reports(conn: Any, pairs: Iterable[tuple[str, str]]) -> None:
    """Takes the locks of these provider ids until the transaction ends, before any row lock:
    a send's outcome (which records the id) and a delivery report for it (which looks the id
    up, and keeps the report for later when no message has it yet) then never run at once.
    Without them the two could miss each other: the report kept as early just after the
    outcome had looked for early reports, and never applied."""
    await _lock(conn, report_lock_keys(pairs))


async def lock_phones(conn: Any, phones: Sequence[str]) -> None:
    """Takes the numbers' locks until the transaction ends: messages from one number are
    decided one after another, whichever instance received them."""
    await _lock(conn, phone_lock_keys(phones))


async def _lock(conn: Any, keys: list[int]) -> None:
    if len(keys) == 1:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", keys[0])
    elif keys:
        # unnest yields the array in order: the locks are taken in that order.
        await conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k", keys)


async def allocate_ids(conn: Any, count: int) -> list[int]:
    """`count` new message ids from the identity column's sequence, ascending, in the order
    the rows will be inserted (replies after the message they answer)."""
    if count == 0:
        return []
    rows = await conn.fetch(
        "SELECT nextval('messages_id_seq') FROM generate_series(1, $1::integer)", count
    )
    return sorted(int(r[0]) for r in rows)


@dataclass
class ContactState:
    """A contact as a transaction holds it while it applies changes."""

    phone: str
    first_seen_at: datetime
    last_message_at: datetime
    mode: str = "bot"
    opted_out: bool = False
    opted_out_at: datetime | None = None
    opt_out_message_id: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    unread: int = 0
    needs_attention: bool = False
    last_text: str = ""
    flagged: bool = False
    flow: FlowState | None = None
    last_activity_at: datetime | None = None
    recent_replies: list[tuple[datetime, str]] = field(default_factory=list)
    is_new: bool = True

    @classmethod
    def new(cls, phone: str, at: datetime) -> ContactState:
        return cls(phone, first_seen_at=at, last_message_at=at)

    @classmethod
    def from_row(cls, row: Any) -> ContactState:
        return cls(
            phone=row[0],
            mode=row[1],
            opted_out=row[2],
            opted_out_at=row[3],
            opt_out_message_id=row[4],
            fields=fields_from_json(row[5]),
            unread=row[6],
            needs_attention=row[7],
            first_seen_at=row[8],
            last_message_at=row[9],
            last_text=row[10],
            flagged=row[11],
            flow=flow_from_json(row[12]),
            last_activity_at=row[13],
            is_new=row[13] is None,  # imported, never wrote: still new
        )

    def as_contact(self) -> Contact:
        return Contact(
            self.phone,
            self.mode,
            self.opted_out,
            dict(self.fields),
            self.is_new,
            self.last_activity_at,
            tuple(self.recent_replies),
            self.flow,
        )

    def values(self) -> tuple[Any, ...]:
        fields = to_json(self.fields)
        return (
            self.phone,
            self.mode,
            self.opted_out,
            self.opted_out_at,
            self.opt_out_message_id,
            fields,
            self.unread,
            self.needs_attention,
            self.first_seen_at,
            self.last_message_at,
            clean_text(self.last_text),
            self.flagged,
            flow_to_json(self.flow),
            self.last_activity_at,
            clean_text(fold_fields_json(fields)),  # as search compares them
        )

    def apply(self, decision: Decision, in_id: int, at: datetime, text: str) -> None:
        """What an inbound message and its decision change (the same rules as SQLite's)."""
        self.is_new = False
        self.last_activity_at = at
        self.fields.update(decision.fields)
        if decision.flow_changed:
            self.flow = decision.flow
        if decision.flagged:
            self.flagged = True
        self.unread += 1
        self.last_message_at = at
        self.last_text = decision.replies[-1].text if decision.replies else text
        if decision.mode is not None:
            self.mode = decision.mode
        if decision.opted_out is not None:
            self.opted_out = decision.opted_out
            self.opted_out_at = at if decision.opted_out else None
            self.opt_out_message_id = in_id if decision.opted_out else None
        # Until a person replies or resolves it: a later answer by the bot does not settle it.
        self.needs_attention = decision.needs_attention or self.needs_attention


def fields_from_json(value: str) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(value)
    return fields


async def load_contacts(conn: Any, phones: Sequence[str]) -> dict[str, ContactState]:
    rows = await conn.fetch(
        f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE phone = ANY($1::text[])", list(phones)
    )
    found = {row[0]: ContactState.from_row(row) for row in rows}
    missing = [phone for phone in phones if phone not in found]
    if missing:  # a number forgotten while opted out starts its new contact opted out
        kept = await conn.fetch(
            "SELECT phone, opted_out_at FROM kept_opt_outs WHERE phone = ANY($1::text[])",
            missing,
        )
        for phone, at in kept:
            found[phone] = ContactState(phone, at, at, opted_out=True, opted_out_at=at)
    return found


async def upsert_contacts(
    conn: Any, contacts: Sequence[ContactState], reopen: bool = False
) -> None:
    """Writes the contacts as the batch left them; with `reopen` (they just wrote to us) their
    resolved conversations open again."""
    if contacts:
        columns = list(zip(*(c.values() for c in contacts)))
        sql = UPSERT_CONTACTS_REOPENING if reopen else UPSERT_CONTACTS
        await conn.execute(sql, *(list(c) for c in columns))


@dataclass
class MessageRow:
    """One row to insert into `messages`."""

    id: int
    phone: str
    direction: str
    text: str
    status: str
    origin: str
    created_at: datetime
    rule: str | None = None
    provider: str | None = None
    line: str | None = None
    error: str | None = None
    attempts: int = 0
    send_at: datetime | None = None
    next_attempt_at: datetime | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None

    def values(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.phone,
            self.direction,
            clean_text(self.text),
            self.status,
            self.origin,
            self.rule,
            self.provider,
            None,
            maybe_clean(self.line),
            maybe_clean(self.error),
            self.attempts,
            self.created_at,
            self.created_at,
            self.send_at,
            None,
            self.next_attempt_at,
            self.claimed_by,
            self.lease_until,
        )

    def outbox_item(self) -> OutboxItem:
        return OutboxItem(
            self.id,
            self.phone,
            self.text,
            self.provider or "sandbox",
            self.attempts,
            self.created_at,
        )


def outbound_row(
    message_id: int,
    phone: str,
    reply: Reply,
    origin: str,
    rule: str | None,
    at: datetime,
    send_at: datetime | None = None,
    due: datetime | None = None,
) -> MessageRow:
    """An outbox row: 'scheduled' when it has a send time, due at `due` (default: now)."""
    return MessageRow(
        message_id,
        phone,
        "out",
        reply.text,
        "scheduled" if send_at else "queued",
        origin,
        at,
        rule=rule,
        provider=reply.via or "sandbox",
        send_at=send_at,
        next_attempt_at=due or at,
    )


async def insert_messages(conn: Any, rows: Sequence[MessageRow]) -> None:
    if rows:
        columns = [list(c) for c in zip(*(r.values() for r in rows))]
        # The text as search compares it (the matcher's folding; SQLite folds alike).
        columns.append([normalize_cached(text) for text in columns[3]])
        await conn.execute(INSERT_MESSAGES, *columns)


def message(row: Any) -> Message:
    return Message(*row)


def conversation(row: Any) -> Conversation:
    return Conversation(
        phone=row[0],
        last_message_at=row[9],
        last_text=row[10],
        mode=row[1],
        opted_out=row[2],
        opted_out_at=row[3],
        unread=row[6],
        needs_attention=row[7],
        flagged=row[11],
        fields=fields_from_json(row[5]),
        assigned_to=row[14],
        status=row[15],
        labels=tuple(sorted(row[16])),
    )
