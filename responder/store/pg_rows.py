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


def _columns(spec: str) -> tuple[tuple[str, str], ...]:
    """("name", "type") pairs from "name type, name type, …"."""
    return tuple((name, kind) for name, kind in (c.split() for c in spec.split(",")))


# Rows are written from columns of values (one array per column): one statement per batch.
# In the order of MessageRow.values() and ContactState.values().
MESSAGE_INSERT = _columns(
    "id bigint, phone text, direction text, text text, status text, origin text, rule text, "
    "provider text, provider_id text, line text, error text, attempts integer, "
    "created_at timestamptz, updated_at timestamptz, send_at timestamptz, failover_from text, "
    "next_attempt_at timestamptz, claimed_by text, lease_until timestamptz, folded text"
)
CONTACT_UPSERT = _columns(
    "phone text, mode text, opted_out boolean, opted_out_at timestamptz, "
    "opt_out_message_id bigint, fields text, unread integer, needs_attention boolean, "
    "first_seen_at timestamptz, last_message_at timestamptz, last_text text, flagged boolean, "
    "flow text, last_activity_at timestamptz, folded text"
)


def _names(columns: Sequence[tuple[str, str]]) -> str:
    return ", ".join(name for name, _ in columns)


def _arrays(columns: Sequence[tuple[str, str]], first: int) -> str:
    """unnest's arguments: one array parameter per column, numbered from `first`."""
    return ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(columns, first))


def _insert_messages(first: int, ids: str = "") -> str:
    """INSERT of message rows from arrays numbered from `first`; with `ids`, an array the ids
    are taken from in the rows' order (the rows' arrays then have no id column)."""
    if not ids:
        return (
            f"INSERT INTO messages ({_names(MESSAGE_INSERT)}) "
            f"SELECT * FROM unnest({_arrays(MESSAGE_INSERT, first)})"
        )
    rest = MESSAGE_INSERT[1:]
    return (
        f"INSERT INTO messages ({_names(MESSAGE_INSERT)}) "
        f"SELECT {ids}[r.ord], {', '.join(f'r.{name}' for name, _ in rest)} "
        f"FROM unnest({_arrays(rest, first)}) WITH ORDINALITY AS r ({_names(rest)}, ord)"
    )


def _upsert_contacts(first: int, ids: str = "") -> str:
    """INSERT … ON CONFLICT of contacts from arrays numbered from `first`. With `ids`, the
    ids of the messages they just wrote (WRITE_INBOUND): an opt-out message id below zero is
    a stand-in, -n the n-th of those ids, and resolved conversations open again."""
    values = {name: name for name, _ in CONTACT_UPSERT}
    values["fields"], values["flow"] = "fields::jsonb", "flow::jsonb"
    if ids:
        values["opt_out_message_id"] = (
            f"CASE WHEN opt_out_message_id < 0 THEN {ids}[-opt_out_message_id] "
            "ELSE opt_out_message_id END"
        )
    changed = [name for name, _ in CONTACT_UPSERT if name not in ("phone", "first_seen_at")]
    sets = [f"{name} = excluded.{name}" for name in changed]
    if ids:
        sets.append(
            "status = CASE WHEN contacts.status = 'resolved' THEN 'open' ELSE contacts.status END"
        )
    return (
        f"INSERT INTO contacts ({_names(CONTACT_UPSERT)}) "
        f"SELECT {', '.join(values.values())} "
        f"FROM unnest({_arrays(CONTACT_UPSERT, first)}) AS c ({_names(CONTACT_UPSERT)}) "
        f"ON CONFLICT (phone) DO UPDATE SET {', '.join(sets)}"
    )


INSERT_MESSAGES = _insert_messages(1)
UPSERT_CONTACTS = _upsert_contacts(1)
# A group of webhooks' writes in one statement: new ids ($1 of them, ascending: the rows'
# order), the messages, and the contacts who wrote (their opt-out stand-ins resolved against
# the new ids; their resolved conversations open again). Returns the ids.
_FIRST_CONTACT = 2 + len(MESSAGE_INSERT) - 1
WRITE_INBOUND = f"""
WITH ids AS (
    SELECT array_agg(n ORDER BY n) AS taken
    FROM (SELECT nextval('messages_id_seq') AS n FROM generate_series(1, $1::integer)) AS s
), inserted AS (
    {_insert_messages(2, "(SELECT taken FROM ids)")}
), upserted AS (
    {_upsert_contacts(_FIRST_CONTACT, "(SELECT taken FROM ids)")}
)
SELECT taken FROM ids
"""
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


def phone_lock_keys(phones: Iterable[str]) -> list[int]:
    """The numbers' lock keys (lock_phones)."""
    return _lock_keys(PHONE_LOCK_SPACE, phones)


def report_lock_keys(pairs: Iterable[tuple[str, str]]) -> list[int]:
    """The lock keys of these (provider, provider id) pairs (batch_locks)."""
    return _lock_keys(REPORT_LOCK_SPACE, (f"{provider}\x00{pid}" for provider, pid in pairs))


def batch_locks(
    pairs: Iterable[tuple[str, str]], phones: Iterable[str], message_ids: Iterable[int] = ()
) -> str:
    """The statement with which the writer's batch takes the locks of its provider ids and
    of its numbers (lock_phones), all in one sorted order, before any row lock; sent with the
    batch's BEGIN (pg_base._run), so the locks cost no round trip of their own. Only the
    writer takes provider ids' locks, and every other transaction takes its numbers' locks
    before its row locks: none waits in a circle with a batch.

    A send's outcome (which records the provider id) and a delivery report for it (which
    looks the id up, and keeps the report for later when no message has it yet) then never
    run at once. Without the lock the two could miss each other: the report kept as early
    just after the outcome had looked for early reports, and never applied.

    Then, in a statement of its own (which waits for those locks first), the row locks of
    `message_ids`, in id order.

    The simple query protocol takes no parameters: the keys and ids are written in as
    literals. They are integers (hashes this module computed, ids the database gave), never
    text from outside."""
    keys = sorted({*report_lock_keys(pairs), *phone_lock_keys(phones)})
    statements = []
    if keys:
        # unnest yields the array in order: the locks are taken in that order.
        statements.append(
            f"SELECT pg_advisory_xact_lock(k) FROM unnest('{_literal(keys)}'::bigint[]) AS k"
        )
    ids = sorted(set(message_ids))
    if ids:
        statements.append(
            f"SELECT id FROM messages WHERE id = ANY('{_literal(ids)}'::bigint[]) "
            "ORDER BY id FOR UPDATE"
        )
    return "; ".join(statements)


def _literal(numbers: Sequence[int]) -> str:
    """An array literal of integers (each checked to be one)."""
    return "{" + ",".join(f"{int(n):d}" for n in numbers) + "}"


async def lock_phones(conn: Any, phones: Sequence[str]) -> None:
    """Takes the numbers' locks until the transaction ends: messages from one number are
    decided one after another, whichever instance received them."""
    keys = phone_lock_keys(phones)
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
    def kept_opted_out(cls, phone: str, at: datetime) -> ContactState:
        """A number forgotten while opted out, writing again: its new contact starts opted out."""
        return cls(phone, at, at, opted_out=True, opted_out_at=at)

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


# Each of the numbers $1 with its contact's columns (CONTACT_COLUMNS, from the third on), or,
# for a number without a contact, when it was forgotten while opted out (the second): a number
# forgotten while opted out starts its new contact opted out. pg_batch.READ_NUMBERS adds the
# numbers' histories (CONTACTS_FROM, and a last column).
CONTACTS_FROM = f"""
FROM unnest($1::text[]) AS p (phone)
LEFT JOIN LATERAL (SELECT {CONTACT_COLUMNS} FROM contacts WHERE contacts.phone = p.phone) AS c
    ON true
LEFT JOIN kept_opt_outs AS k ON c.phone IS NULL AND k.phone = p.phone
"""
CONTACTS_OF = f"SELECT p.phone, k.opted_out_at, c.* {CONTACTS_FROM}"


def contact_of(row: Any) -> ContactState | None:
    """The contact a row of CONTACTS_OF (or of a query that extends it) holds, if any."""
    if row[2] is not None:
        return ContactState.from_row(row[2:])
    if row[1] is not None:
        return ContactState.kept_opted_out(row[0], row[1])
    return None


async def load_contacts(conn: Any, phones: Sequence[str]) -> dict[str, ContactState]:
    found = {row[0]: contact_of(row) for row in await conn.fetch(CONTACTS_OF, list(phones))}
    return {phone: contact for phone, contact in found.items() if contact is not None}


async def upsert_contacts(conn: Any, contacts: Sequence[ContactState]) -> None:
    """Writes the contacts as the transaction left them."""
    if contacts:
        columns = list(zip(*(c.values() for c in contacts)))
        await conn.execute(UPSERT_CONTACTS, *(list(c) for c in columns))


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


def _message_columns(rows: Sequence[MessageRow]) -> list[list[Any]]:
    columns = [list(c) for c in zip(*(r.values() for r in rows))]
    # The text as search compares it (the matcher's folding; SQLite folds alike).
    columns.append([normalize_cached(text) for text in columns[3]])
    return columns


async def insert_messages(conn: Any, rows: Sequence[MessageRow]) -> None:
    if rows:
        await conn.execute(INSERT_MESSAGES, *_message_columns(rows))


async def write_inbound(
    conn: Any, rows: Sequence[MessageRow], contacts: Sequence[ContactState]
) -> list[int]:
    """Inserts a group's rows with new ids (ascending, in the rows' order) and upserts the
    contacts who wrote, reopening their resolved conversations; an opt-out message id -n
    stands for the n-th row's. One round trip (WRITE_INBOUND); returns the rows' ids."""
    if not rows:
        return []
    columns = _message_columns(rows)[1:]  # without ids: the statement takes them
    contact_columns = [list(c) for c in zip(*(c.values() for c in contacts))]
    ids: list[int] = await conn.fetchval(WRITE_INBOUND, len(rows), *columns, *contact_columns)
    return ids


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
