"""The PostgreSQL writer's grouped work: inbound messages with their replies, send outcomes and
delivery reports, applied in one transaction per batch. The dedupe window, the reply limit and
the loop guard read the database (inside the transaction, after the numbers' locks), never
this process's memory: any instance may have received the earlier messages."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from responder.engine import Decision
from responder.store import pg_reports
from responder.store.common import LEASE
from responder.store.models import InboundJob, InboundResult, SendOutcome, StatusUpdate
from responder.store.pg_rows import (
    CONTACTS_FROM,
    ContactState,
    MessageRow,
    contact_of,
    maybe_clean,
    outbound_row,
    write_inbound,
)
from responder.store.recent import RECENT_ROWS

log = logging.getLogger("responder.store")

# What a decision needs about the batch's numbers, in one statement: each number's contact
# (pg_rows.CONTACTS_OF) and its history, the last column: inbound messages inside the dedupe
# window, and auto-replies (not opt-out or opt-in confirmations) inside the limits' windows;
# at most RECENT_ROWS of each number's latest messages (bounded work whatever a number does).
# Run after the numbers' locks, as its own statement: it then reads what the transactions that
# held them committed.
READ_NUMBERS = f"""
SELECT p.phone, k.opted_out_at, c.*, h.rows {CONTACTS_FROM}
LEFT JOIN LATERAL (
    SELECT array_agg(ROW(h.id, h.direction, h.line, h.text, h.created_at)
        ORDER BY h.created_at, h.id) AS rows
    FROM (
        SELECT id, direction, line, text, created_at, origin, rule FROM messages AS m
        WHERE m.phone = p.phone AND m.created_at >= LEAST($2::timestamptz, $3::timestamptz)
        ORDER BY m.created_at DESC, m.id DESC LIMIT {RECENT_ROWS:d}
    ) AS h
    WHERE (h.direction = 'in' AND h.created_at >= $2)
        OR (h.direction = 'out' AND h.origin = 'auto' AND h.created_at >= $3
            AND (h.rule IS NULL OR h.rule NOT IN ('opt_out', 'opt_in')))
) AS h ON true
"""


@dataclass
class History:
    """One number's recent messages: inbound (at, line, text, row) and auto-replies (at, text).
    `row` is a message id, or the place of a row of this batch not yet given one."""

    inbound: list[tuple[datetime, str, str, int | _Pending]] = field(default_factory=list)
    replies: list[tuple[datetime, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Pending:
    index: int  # place in the batch's rows


async def _read_numbers(
    conn: Any, jobs: list[InboundJob], phones: list[str]
) -> tuple[dict[str, ContactState], dict[str, History]]:
    """The batch's numbers' contacts and histories (READ_NUMBERS), one round trip."""
    earliest = min(j.message.received_at for j in jobs)
    dedupe = max(j.dedupe_window for j in jobs)
    limits = max(j.history_window for j in jobs)
    far = earliest + timedelta(days=1)  # after anything: that half of the query finds nothing
    inbound_since = earliest - timedelta(seconds=dedupe) if dedupe > 0 else far
    replies_since = earliest - timedelta(seconds=limits) if limits > 0 else far
    contacts: dict[str, ContactState] = {}
    histories: dict[str, History] = defaultdict(History)
    for row in await conn.fetch(READ_NUMBERS, phones, inbound_since, replies_since):
        phone, rows = row[0], row[-1]
        contact = contact_of(row[:-1])
        if contact is not None:
            contacts[phone] = contact
        history = histories[phone]
        for message_id, direction, line, text, at in rows or ():
            if direction == "in":
                history.inbound.append((at, line or "", text, message_id))
            else:
                history.replies.append((at, text))
    return contacts, histories


def _duplicate(history: History, line: str, text: str, since: datetime) -> int | _Pending | None:
    """The newest message from this number and line with this text received since `since`."""
    for at, seen_line, seen_text, row in reversed(history.inbound):
        if at >= since and seen_line == line and seen_text == text:
            return row
    return None


async def apply_inbound(
    conn: Any, jobs: list[InboundJob], instance: str, hand_over: bool, now: datetime
) -> list[InboundResult]:
    """Stores inbound messages and the replies their decisions queue; with `hand_over` the
    replies are stored already claimed by `instance` ('sending', leased from `now`: a message
    replayed from the spool may have been received long before). The caller holds the
    numbers' locks (pg_rows.batch_locks): this reads what the transactions that held them
    before committed."""
    phones = sorted({j.message.phone for j in jobs})
    contacts, histories = await _read_numbers(conn, jobs, phones)
    rows: list[MessageRow] = []
    # Per job: a duplicate (of an id or a row) or (its row, its reply rows, its decision).
    plans: list[tuple[Decision, int | _Pending, list[int], bool]] = []
    for job in jobs:
        msg = job.message
        line = msg.line or ""
        history = histories[msg.phone]
        window = timedelta(seconds=job.dedupe_window)
        earlier = _duplicate(history, line, msg.text, msg.received_at - window)
        if job.dedupe_window > 0 and earlier is not None:
            plans.append((Decision(None, (), ""), earlier, [], True))
            continue
        in_row = len(rows)
        history.inbound.append((msg.received_at, line, msg.text, _Pending(in_row)))
        contact = contacts.get(msg.phone) or ContactState.new(msg.phone, msg.received_at)
        since = msg.received_at - timedelta(seconds=job.history_window)
        contact.recent_replies = [r for r in history.replies if r[0] >= since]
        try:
            decision = job.decide(contact.as_contact())
        except Exception as err:  # a bug in deciding must not lose the message
            log.exception("deciding on a message from %s failed", msg.phone)
            decision = Decision(None, (), "internal error", error=f"internal error: {err}")
        rows.append(
            MessageRow(
                0,
                msg.phone,
                "in",
                msg.text,
                "received",
                msg.provider,
                msg.received_at,
                rule=decision.rule,
                line=msg.line,
                error=decision.error,
            )
        )
        reply_rows = []
        for reply in decision.replies:
            row = outbound_row(0, msg.phone, reply, "auto", decision.rule, msg.received_at)
            if hand_over:
                row.status, row.attempts = "sending", 1
                row.claimed_by, row.lease_until = instance, now + LEASE
            reply_rows.append(len(rows))
            rows.append(row)
        # The message's id is known after the batch's rows are counted: a stand-in until then.
        contact.apply(decision, -1 - in_row, msg.received_at, msg.text)
        if decision.rule not in ("opt_out", "opt_in"):
            history.replies.extend((msg.received_at, r.text) for r in decision.replies)
        contacts[msg.phone] = contact
        plans.append((decision, _Pending(in_row), reply_rows, False))
    touched = sorted({j.message.phone for j, plan in zip(jobs, plans) if not plan[3]})
    ids = await write_inbound(conn, rows, [contacts[p] for p in touched])
    for row, message_id in zip(rows, ids):
        row.id = message_id
    results = []
    stopped = []
    for job, (decision, target, reply_rows, duplicate) in zip(jobs, plans):
        message_id = ids[target.index] if isinstance(target, _Pending) else target
        if duplicate:
            dup = Decision(None, (), f"duplicate of message {message_id}")
            results.append(InboundResult(message_id, (), dup, duplicate=True))
            continue
        if decision.opted_out:
            stopped.append((job.message.received_at, job.message.phone, message_id))
        claimed = tuple(rows[i].outbox_item() for i in reply_rows if hand_over)
        reply_ids = tuple(ids[i] for i in reply_rows)
        results.append(InboundResult(message_id, reply_ids, decision, claimed=claimed))
    if stopped:
        # Opt-out wins over what is already waiting: nothing queued before it goes out.
        await conn.executemany(
            "UPDATE messages SET status = 'failed', error = 'not sent: the number opted out', "
            "next_attempt_at = NULL, updated_at = $1 WHERE phone = $2 AND direction = 'out' "
            "AND status IN ('queued', 'scheduled') AND id < $3",
            stopped,
        )
    # Each label's last change in the batch wins, as when the messages come one by one.
    labelled: dict[tuple[str, str], bool] = {}
    for job, result in zip(jobs, results):
        if not result.duplicate:
            labelled.update(((job.message.phone, label), True) for label in result.decision.label)
            labelled.update(
                ((job.message.phone, label), False) for label in result.decision.unlabel
            )
    added = [key for key, on in labelled.items() if on]
    removed = [key for key, on in labelled.items() if not on]
    if added:
        await conn.executemany(
            "INSERT INTO contact_labels (phone, label) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            added,
        )
    if removed:
        await conn.executemany(
            "DELETE FROM contact_labels WHERE phone = $1 AND label = $2", removed
        )
    return results


async def lock_messages(conn: Any, ids: list[int], reports: list[StatusUpdate]) -> None:
    """Locks the messages a batch's outcomes (by id) and reports (by provider id) change, in
    id order: two batches that share messages then wait for each other, never in a circle."""
    await conn.execute(
        "SELECT id FROM messages WHERE id IN (SELECT unnest($1::bigint[]) UNION "
        "SELECT m.id FROM messages AS m JOIN unnest($2::text[], $3::text[]) AS r (provider, pid) "
        "ON m.provider = r.provider AND m.provider_id = r.pid) ORDER BY id FOR UPDATE",
        ids,
        [r.provider for r in reports],
        [r.provider_id for r in reports],
    )


# Send outcomes in one statement: the messages' new states, the attempts, and whether any early
# report is kept (then they are looked up: pg_reports.apply_early_reports). Only a queued
# message has a next attempt; only one in flight is polled. A delivery report that came first
# is final: 'sent' must not undo it. A message erased since it was claimed (pg_privacy.py) is
# not there, and being locked the others stay: nothing to record.
RECORD_OUTCOMES = """
WITH updated AS (
    UPDATE messages AS m SET status = u.status, provider = u.provider,
        provider_id = COALESCE(u.provider_id, m.provider_id), error = u.error,
        next_attempt_at = CASE WHEN u.status = 'queued'
            THEN COALESCE(u.retry_at, m.next_attempt_at) END,
        next_poll_at = CASE WHEN u.status IN ('sent', 'scheduled') THEN u.first_poll END,
        failover_from = COALESCE(u.failover_from, m.failover_from), updated_at = u.at,
        claimed_by = NULL, lease_until = NULL
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::text[])
        AS u (id, status, provider, provider_id, error, retry_at, at, first_poll, failover_from)
    WHERE m.id = u.id AND NOT (m.status IN ('delivered', 'failed') AND u.status = 'sent')
), tried AS (
    INSERT INTO attempts (message_id, at, provider, outcome, error)
    SELECT a.* FROM unnest($10::bigint[], $11::timestamptz[], $12::text[], $13::text[],
        $14::text[]) AS a (message_id, at, provider, outcome, error)
    WHERE EXISTS (SELECT 1 FROM messages AS m WHERE m.id = a.message_id)
)
SELECT EXISTS (SELECT 1 FROM early_reports)
"""


async def apply_outcomes(
    conn: Any, jobs: list[tuple[list[SendOutcome], datetime, datetime]], now: datetime
) -> None:
    """Stores what send attempts produced, and the attempts; then the delivery reports that
    overtook these answers, in the same transaction."""
    if not any(outcomes for outcomes, _, _ in jobs):
        return
    last: dict[int, tuple[SendOutcome, datetime, datetime]] = {}
    attempts = []
    for outcomes, at, first_poll in jobs:
        for o in outcomes:
            last[o.id] = (o, at, first_poll)  # one message twice in a batch: the later wins
            attempts.append((o.id, at, *_attempt(o), o.error))
    updates = [last[i] for i in sorted(last)]  # rows locked in id order
    early = await conn.fetchval(
        RECORD_OUTCOMES,
        [o.id for o, _, _ in updates],
        [o.status for o, _, _ in updates],
        [o.provider for o, _, _ in updates],
        [o.provider_id for o, _, _ in updates],
        [maybe_clean(o.error) for o, _, _ in updates],
        [o.retry_at for o, _, _ in updates],
        [at for _, at, _ in updates],
        [first_poll for _, _, first_poll in updates],
        [o.failover_from for o, _, _ in updates],
        *(
            list(column)
            for column in zip(*((a[0], a[1], a[2], a[3], maybe_clean(a[4])) for a in attempts))
        ),
    )
    # Delivery reports that overtook these answers (those naming an erased message go with it).
    recorded = [(o.id, o.provider, o.provider_id) for o, _, _ in updates if o.provider_id]
    if early:
        await pg_reports.apply_early_reports(conn, recorded, now)


def _attempt(outcome: SendOutcome) -> tuple[str, str]:
    """The provider an attempt was made with, and how it ended."""
    if outcome.status != "queued":
        return outcome.provider, outcome.status
    if outcome.failover_from:
        return outcome.failover_from, "failover"
    return outcome.provider, "retry"
