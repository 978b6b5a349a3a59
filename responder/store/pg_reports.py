"""Delivery reports on PostgreSQL: the same rules as `reports.py` (the order a message's status
follows, reports that overtake the send's answer kept 48 hours), inside the writer's
transactions. Every function takes the transaction's connection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from responder.store.models import StatusUpdate
from responder.store.reports import EARLY_REPORTS_KEPT, IGNORED, reported_status


async def apply_reports(conn: Any, updates: Sequence[StatusUpdate]) -> list[bool]:
    """Applies delivery reports to their messages; a report whose provider id no message
    has yet is kept as an early report. Returns, per report, whether its message was found."""
    found: dict[tuple[str, str], tuple[int, str]] = {}
    for provider in sorted({u.provider for u in updates}):
        wanted = sorted({u.provider_id for u in updates if u.provider == provider})
        rows = await conn.fetch(
            "SELECT id, provider_id, status FROM messages WHERE provider = $1 "
            "AND provider_id = ANY($2::text[]) ORDER BY id FOR UPDATE",
            provider,
            wanted,
        )
        for message_id, provider_id, status in rows:
            found[(provider, provider_id)] = (message_id, status)
    statuses = {message_id: status for message_id, status in found.values()}
    matched, early = [], []
    for u in updates:
        target = found.get((u.provider, u.provider_id))
        if target is None:
            early.append(u)
        else:
            matched.append((target[0], u))
    await _change(conn, statuses, matched, None)
    if early:
        await _purge(conn, max(u.at for u in early))
        await conn.executemany(
            "INSERT INTO early_reports (provider, provider_id, status, detail, received_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(u.provider, u.provider_id, u.status, u.detail, u.at) for u in early],
        )
    return [(u.provider, u.provider_id) in found for u in updates]


async def apply_early_reports(
    conn: Any, recorded: Sequence[tuple[int, str, str]], now: datetime
) -> None:
    """Applies the early reports for provider ids a send's outcome has just recorded
    (`(message id, provider, provider id)`), after the outcome, in its transaction. Called
    only when some early report is kept (the usual case has none: pg_batch.RECORD_OUTCOMES
    looks)."""
    if not recorded:
        return
    await _purge(conn, now)
    message_ids = {(provider, pid): message_id for message_id, provider, pid in recorded}
    reports: list[tuple[int, int, StatusUpdate]] = []
    for provider in sorted({p for _, p, _ in recorded}):
        wanted = sorted({pid for _, p, pid in recorded if p == provider})
        rows = await conn.fetch(
            "SELECT id, provider_id, status, detail, received_at FROM early_reports "
            "WHERE provider = $1 AND provider_id = ANY($2::text[])",
            provider,
            wanted,
        )
        for report_id, pid, status, detail, received_at in rows:
            update = StatusUpdate(provider, pid, status, detail, received_at)
            reports.append((report_id, message_ids[(provider, pid)], update))
    if not reports:
        return
    reports.sort(key=lambda r: r[0])  # in the order they came
    rows = await conn.fetch(
        "SELECT id, status FROM messages WHERE id = ANY($1::bigint[])",
        sorted({message_id for _, message_id, _ in reports}),
    )
    statuses: dict[int, str] = {message_id: status for message_id, status in rows}
    await _change(conn, statuses, [(message_id, u) for _, message_id, u in reports], now)
    await conn.execute(
        "DELETE FROM early_reports WHERE id = ANY($1::bigint[])", [r[0] for r in reports]
    )


async def _change(
    conn: Any,
    statuses: dict[int, str],
    reports: Iterable[tuple[int, StatusUpdate]],
    now: datetime | None,
) -> None:
    """Moves each message along the reports, in order (`statuses` is updated as it goes);
    a report that changes nothing is kept in the message's attempts as history. A message
    not in `statuses` was erased (a person forgotten): its reports have nothing to change."""
    rows, history = [], []
    for message_id, u in reports:
        current = statuses.get(message_id)
        if current is None:
            continue
        status = reported_status(current, u.status)
        at = max(u.at, now) if now is not None else u.at
        if status is None:
            if u.status != current:  # a repeated `delivered` is the same news again
                why = f"{u.status} reported after {current}: {u.detail or 'no detail'}"
                history.append((message_id, u.at, u.provider, IGNORED, why))
            continue
        statuses[message_id] = status
        error = (u.detail or "delivery failed") if status == "failed" else None
        line = u.detail if status == "delivered" else None
        rows.append((status, error, line, at, message_id))
    # A final status ends status polling, for providers that poll. In order: one message may
    # have several reports in one batch.
    if rows:
        await conn.executemany(
            "UPDATE messages SET status = $1, error = $2, line = COALESCE($3, line), "
            "updated_at = $4, next_poll_at = NULL WHERE id = $5",
            rows,
        )
    if history:
        await conn.executemany(
            "INSERT INTO attempts (message_id, at, provider, outcome, error) "
            "VALUES ($1, $2, $3, $4, $5)",
            history,
        )


async def _purge(conn: Any, now: datetime) -> None:
    await conn.execute("DELETE FROM early_reports WHERE received_at < $1", now - EARLY_REPORTS_KEPT)
