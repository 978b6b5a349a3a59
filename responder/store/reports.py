"""Delivery reports: the order a message's status follows, and reports that overtake the
send's answer (kept until the provider id they name is recorded). Runs inside the writer's
transactions: every function takes the writer's connection."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from responder.store.models import StatusUpdate
from responder.store.sqltime import moment, stored

# Long enough for any send's answer to come back (retries included); then a report whose id
# never appeared is dropped.
EARLY_REPORTS_KEPT = timedelta(hours=48)
IGNORED = "report ignored"
_CHUNK = 500  # per IN (...) list, below SQLite's variable limit
T = TypeVar("T")


def reported_status(current: str, reported: str) -> str | None:
    """The status a report moves a message to, or None when it changes nothing. `delivered`
    is final: a later `failed` is history only. `failed` gives way to a later `delivered`
    (the gateway retried and got it through); a repeated `failed` refreshes its reason."""
    if current == "delivered":
        return None
    return reported


def apply_reports(db: sqlite3.Connection, updates: Sequence[StatusUpdate]) -> list[bool]:
    """Applies delivery reports to their messages; a report whose provider id no message
    has yet is kept as an early report. Returns, per report, whether its message was found."""
    found: dict[tuple[str, str], tuple[int, str]] = {}
    for provider in sorted({u.provider for u in updates}):
        wanted = sorted({u.provider_id for u in updates if u.provider == provider})
        for chunk in _chunks(wanted):
            rows = db.execute(
                "SELECT id, provider_id, status FROM messages WHERE provider = ? "
                f"AND provider_id IN ({_marks(len(chunk))})",
                (provider, *chunk),
            ).fetchall()
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
    _change(db, statuses, matched, None)
    if early:
        _purge(db, max(u.at for u in early))
        db.executemany(
            "INSERT INTO early_reports (provider, provider_id, status, detail, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(u.provider, u.provider_id, u.status, u.detail, stored(u.at)) for u in early],
        )
    return [(u.provider, u.provider_id) in found for u in updates]


def apply_early_reports(
    db: sqlite3.Connection, recorded: Sequence[tuple[int, str, str]], now: datetime
) -> None:
    """Applies the early reports for provider ids a send's outcome has just recorded
    (`(message id, provider, provider id)`), after the outcome, in its transaction."""
    if not recorded or db.execute("SELECT 1 FROM early_reports LIMIT 1").fetchone() is None:
        return  # the usual case: one cheap look
    _purge(db, now)
    message_ids = {(provider, pid): message_id for message_id, provider, pid in recorded}
    reports: list[tuple[int, int, StatusUpdate]] = []
    for provider in sorted({p for _, p, _ in recorded}):
        wanted = sorted({pid for _, p, pid in recorded if p == provider})
        for chunk in _chunks(wanted):
            rows = db.execute(
                "SELECT id, provider_id, status, detail, received_at FROM early_reports "
                f"WHERE provider = ? AND provider_id IN ({_marks(len(chunk))})",
                (provider, *chunk),
            ).fetchall()
            for report_id, pid, status, detail, received_at in rows:
                update = StatusUpdate(provider, pid, status, detail, moment(received_at))
                reports.append((report_id, message_ids[(provider, pid)], update))
    if not reports:
        return
    reports.sort(key=lambda r: r[0])  # in the order they came
    statuses: dict[int, str] = {}
    for ids in _chunks(sorted({message_id for _, message_id, _ in reports})):
        rows = db.execute(
            f"SELECT id, status FROM messages WHERE id IN ({_marks(len(ids))})", ids
        ).fetchall()
        statuses.update((message_id, status) for message_id, status in rows)
    _change(db, statuses, [(message_id, u) for _, message_id, u in reports], now)
    db.executemany("DELETE FROM early_reports WHERE id = ?", [(r[0],) for r in reports])


def _change(
    db: sqlite3.Connection,
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
        at = stored(max(u.at, now) if now is not None else u.at)
        if status is None:
            if u.status != current:  # a repeated `delivered` is the same news again
                why = f"{u.status} reported after {current}: {u.detail or 'no detail'}"
                history.append((message_id, stored(u.at), u.provider, IGNORED, why))
            continue
        statuses[message_id] = status
        error = (u.detail or "delivery failed") if status == "failed" else None
        line = u.detail if status == "delivered" else None
        rows.append((status, error, line, at, message_id))
    # A final status ends status polling, for providers that poll.
    db.executemany(
        "UPDATE messages SET status = ?, error = ?, line = COALESCE(?, line), updated_at = ?, "
        "next_poll_at = NULL WHERE id = ?",
        rows,
    )
    db.executemany(
        "INSERT INTO attempts (message_id, at, provider, outcome, error) VALUES (?, ?, ?, ?, ?)",
        history,
    )


def _purge(db: sqlite3.Connection, now: datetime) -> None:
    db.execute(
        "DELETE FROM early_reports WHERE received_at < ?", (stored(now - EARLY_REPORTS_KEPT),)
    )


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _marks(count: int) -> str:
    return ", ".join("?" * count)
