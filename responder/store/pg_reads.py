"""PostgreSQL reads: conversations and their messages, inbox search, counts, dashboard
aggregates, exports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from responder.engine import Contact
from responder.store.models import (
    COUNT_KEYS,
    UNASSIGNED,
    Conversation,
    ConversationKey,
    Message,
    UnknownContactError,
    Waiting,
    to_iso,
)
from responder.store.pg_base import PgBase
from responder.store.pg_rows import (
    CONTACT_COLUMNS,
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    ContactState,
    conversation,
    message,
)

# Conversations a person must answer that have news (the tab title, notifications).
WAITING = "unread > 0 AND status <> 'resolved' AND (mode = 'human' OR needs_attention)"
# A new message moves its conversation to the top: the newest inbound message among those
# waiting is among the most recent few, and only their messages need to be read.
NEWEST_WAITING = (
    f"SELECT phone FROM contacts WHERE {WAITING} ORDER BY last_message_at DESC LIMIT 20"
)

# Contacts that are conversations: not those only imported (store/pg_contacts.py), whose
# last_message_at is NEVER, so the newest-first index skips them without reading their rows.
CONVERSATIONS_ONLY = (
    "last_activity_at IS NOT NULL AND last_message_at > '1970-01-01T00:00:00+00:00'"
)


def state_filters(
    first: int,
    mode: str | None = None,
    needs_attention: bool | None = None,
    opted_out: bool | None = None,
    assigned: str | None = None,
    status: str | None = None,
    *,
    prefix: str = "",
) -> tuple[list[str], list[Any]]:
    """SQL conditions (always at least one) and parameters (numbered from `first`) selecting
    conversations by state; `assigned` is a person's name, or UNASSIGNED for nobody; `prefix`
    names the contacts' table (an alias and its dot) in a join. A contact that never wrote
    nor was written to (imported) is not a conversation."""
    conditions, params = [CONVERSATIONS_ONLY], []
    for column, value in (
        ("mode", mode),
        ("needs_attention", needs_attention),
        ("opted_out", opted_out),
        ("status", status),
    ):
        # Literals, never user text (each value is one of a fixed few): a partial index
        # (contacts_needing_attention...) serves only a query that names its condition.
        if isinstance(value, bool):
            conditions.append(f"{prefix}{column}" if value else f"NOT {prefix}{column}")
        elif value in LITERAL_STATES:
            conditions.append(f"{prefix}{column} = '{value}'")
        elif value is not None:
            params.append(value)
            conditions.append(f"{prefix}{column} = ${first + len(params) - 1}")
    if assigned == UNASSIGNED:
        conditions.append(f"{prefix}assigned_to IS NULL")
    elif assigned is not None:
        params.append(assigned)
        conditions.append(f"{prefix}assigned_to = ${first + len(params) - 1}")
    return conditions, params


LITERAL_STATES = frozenset(("bot", "human", "open", "resolved"))  # modes and statuses
PREVIEW_DEPTH = 200  # messages of a number the inbox looks back through for its preview


class PgReads(PgBase):
    """What the inbox, the API, exports and the dashboard read."""

    async def contacts_in_flows(self, after: str = "", limit: int = 2**62) -> list[Contact]:
        """Up to `limit` contacts a flow is waiting on (for its timeout), in number order after
        `after`: a keyset page."""
        rows = await self._fetch(
            f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE flow IS NOT NULL AND phone > $1 "
            "ORDER BY phone LIMIT $2",
            after,
            limit,
        )
        return [ContactState.from_row(row).as_contact() for row in rows]

    async def conversation(self, phone: str) -> Conversation:
        row = await self._fetchrow(
            f"SELECT {CONVERSATION_COLUMNS} FROM contacts WHERE phone = $1", phone
        )
        if row is None:
            raise UnknownContactError(phone)
        return conversation(row)

    async def messages(self, phone: str) -> list[Message]:
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE phone = $1 ORDER BY id", phone
        )
        return [message(row) for row in rows]

    async def message_page(
        self, phone: str, before: int | None = None, limit: int = 200, since_id: int = 0
    ) -> list[Message]:
        """Up to `limit` of `phone`'s newest messages with an id below `before` (None: the
        newest) and not below `since_id`, oldest first: a keyset page read backwards."""
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE phone = $1 AND id < $2 AND id >= $3 "
            "ORDER BY id DESC LIMIT $4",
            phone,
            2**63 - 1 if before is None else before,
            since_id,
            limit,
        )
        return [message(row) for row in reversed(rows)]

    async def messages_by_id(self, ids: Sequence[int]) -> list[Message]:
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1::bigint[]) ORDER BY id",
            list(ids),
        )
        return [message(row) for row in rows]

    async def message_attempts(self, message_id: int) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT at, provider, outcome, error FROM attempts WHERE message_id = $1 ORDER BY id",
            message_id,
        )
        # Moments as the SQLite backend gives them (these dicts go to JSON as they are).
        return [{**dict(row), "at": to_iso(row["at"])} for row in rows]

    async def all_messages(self) -> list[Message]:
        rows = await self._fetch(f"SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY id")
        return [message(row) for row in rows]

    async def iter_messages(self, batch: int = 1000) -> AsyncIterator[Message]:
        """Every message, oldest first, read in pages along the primary key: memory stays flat
        whatever the size of the database."""
        after = 0
        while True:
            rows = await self._fetch(
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id > $1 ORDER BY id LIMIT $2",
                after,
                batch,
            )
            for row in rows:
                yield message(row)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    async def conversations_after(self, phone: str, limit: int) -> list[Conversation]:
        """Up to `limit` conversations whose number sorts after `phone` ("" for the first),
        in number order: a keyset page for exports, fast at any depth."""
        rows = await self._fetch(
            f"SELECT {CONVERSATION_COLUMNS} FROM contacts WHERE phone > $1 "
            f"AND {CONVERSATIONS_ONLY} ORDER BY phone LIMIT $2",
            phone,
            limit,
        )
        return [conversation(row) for row in rows]

    async def messages_after(self, after: tuple[str, int], last: str, limit: int) -> list[Message]:
        """Up to `limit` messages after the key `after` (number, id) and of numbers up to
        `last`, in key order: one keyset page over many conversations at once."""
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE (phone, id) > ($1, $2) "
            "AND phone <= $3 ORDER BY phone, id LIMIT $4",
            *after,
            last,
            limit,
        )
        return [message(row) for row in rows]

    async def message_total(self) -> int:
        row = await self._fetchrow("SELECT count(*) FROM messages")
        return int(row[0]) if row is not None else 0

    async def rejected_webhooks(self) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT id, received_at, method, path, query, body, content_type, reason "
            "FROM rejected_webhooks ORDER BY id"
        )
        return [{**dict(row), "received_at": to_iso(row["received_at"])} for row in rows]

    async def conversations(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        mode: str | None = None,
        needs_attention: bool | None = None,
        opted_out: bool | None = None,
        assigned: str | None = None,
        status: str | None = None,
        after: ConversationKey | None = None,
    ) -> list[Conversation]:
        """Conversations newest first (then by number), optionally only those in a mode or
        state; `after`: those that come after that conversation (a keyset page)."""
        conditions, params = state_filters(1, mode, needs_attention, opted_out, assigned, status)
        if after is not None:
            n = len(params)
            conditions.append(
                f"last_message_at <= ${n + 1} AND (last_message_at < ${n + 1} "
                f'OR phone COLLATE "C" > ${n + 2})'
            )
            params.extend(after)
        n = len(params)
        rows = await self._fetch(
            f"SELECT {CONVERSATION_COLUMNS} FROM contacts WHERE {' AND '.join(conditions)} "
            f'ORDER BY last_message_at DESC, phone COLLATE "C" LIMIT ${n + 1} OFFSET ${n + 2}',
            *params,
            limit,
            offset,
        )
        return [conversation(row) for row in rows]

    async def last_messages(self, phones: Sequence[str]) -> list[Message]:
        """Each number's newest inbound and newest outbound message (the inbox's preview)."""
        if not phones:
            return []
        # Each found by walking the number's index back from its newest message, at most
        # PREVIEW_DEPTH rows (a number with thousands of sends and no answer stops there),
        # where max(id) GROUP BY direction read every message of a busy number.
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN (SELECT (SELECT id FROM "
            "(SELECT id, direction FROM messages WHERE phone = p AND broadcast_id IS NULL "
            "ORDER BY id DESC "
            f"LIMIT {PREVIEW_DEPTH:d}) AS recent WHERE direction = d ORDER BY id DESC "
            "LIMIT 1) FROM unnest($1::text[]) AS p, (VALUES ('in'), ('out')) AS directions (d)) "
            "ORDER BY id",
            list(phones),
        )
        return [message(row) for row in rows]

    async def waiting(self) -> Waiting:
        """Conversations with unread messages that a person must answer (handed to a person,
        or needing attention), and the newest inbound message among them."""
        [[count]] = await self._fetch(f"SELECT count(*) FROM contacts WHERE {WAITING}")
        if not count:
            return Waiting(0, None)
        # Each number's newest inbound message, found walking back at most PREVIEW_DEPTH of
        # its messages (max(id) over a busy number's every message was the cost of a poll).
        row = await self._fetchrow(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = (SELECT max((SELECT id FROM "
            "(SELECT id, direction FROM messages WHERE phone = w.phone ORDER BY id DESC "
            f"LIMIT {PREVIEW_DEPTH:d}) AS recent WHERE direction = 'in' ORDER BY id DESC "
            f"LIMIT 1)) FROM ({NEWEST_WAITING}) AS w)"
        )
        return Waiting(count, None if row is None else message(row))

    async def conversation_counts(self, me: str | None = None) -> dict[str, int]:
        """How many conversations there are in all, with people, needing attention, opted out,
        with unread messages, assigned to nobody, resolved, and assigned to `me` (a search's
        counts: search_counts)."""
        # Kept by triggers (pg migration 0010); "mine" on contacts_by_assignee.
        [kept] = await self._fetch(
            "SELECT sum(total)::bigint, sum(human)::bigint, sum(needs_attention)::bigint, "
            "sum(opted_out)::bigint, sum(unread)::bigint, sum(unassigned)::bigint, "
            "sum(resolved)::bigint, (SELECT count(*) FROM contacts "
            f"WHERE assigned_to = $1 AND {CONVERSATIONS_ONLY}) FROM (SELECT * FROM "
            "conversation_counts UNION ALL "
            "SELECT 1, * FROM conversation_count_changes) AS kept",
            me,
        )
        if kept[0] is not None:
            return dict(zip(COUNT_KEYS, (int(v) for v in kept)))
        [row] = await self._fetch(
            "SELECT count(*), count(*) FILTER (WHERE mode = 'human'), "
            "count(*) FILTER (WHERE needs_attention), count(*) FILTER (WHERE opted_out), "
            "count(*) FILTER (WHERE unread > 0), count(*) FILTER (WHERE assigned_to IS NULL), "
            "count(*) FILTER (WHERE status = 'resolved'), "
            f"count(*) FILTER (WHERE assigned_to = $1) FROM contacts WHERE {CONVERSATIONS_ONLY}",
            me,
        )
        return dict(zip(COUNT_KEYS, (int(v) for v in row)))
