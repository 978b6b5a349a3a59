"""Which contacts are conversations, and in which state: the SQL conditions SQLite's store and
its search share (store/sqlite.py, store/sqlite_search.py)."""

from __future__ import annotations

from typing import Any

from responder.store.models import NEVER, UNASSIGNED
from responder.store.sqltime import stored

# Contacts that are conversations: not those only imported (store/sqlite_contacts.py), whose
# last_message_at is NEVER, so the newest-first index skips them without reading their rows.
CONVERSATIONS_ONLY = f"last_activity_at IS NOT NULL AND last_message_at > '{stored(NEVER)}'"
LITERAL_STATES = frozenset(("bot", "human", "open", "resolved"))  # modes and statuses


def state_filters(
    mode: str | None = None,
    needs_attention: bool | None = None,
    opted_out: bool | None = None,
    assigned: str | None = None,
    status: str | None = None,
    *,
    prefix: str = "",
) -> tuple[list[str], list[Any]]:
    """SQL conditions (always at least one) and parameters selecting conversations by state;
    `assigned` is a person's name, or UNASSIGNED for conversations nobody handles; `prefix`
    names the contacts' table (an alias and its dot) in a join. A contact that never wrote
    nor was written to (imported) is not a conversation."""
    conditions, params = [CONVERSATIONS_ONLY], []
    # Written as literals, never user text (each value is one of a fixed few): SQLite picks a
    # partial index (contacts_needing_attention...) only when the query names its condition.
    for column, value in (
        ("mode", mode),
        ("needs_attention", needs_attention),
        ("opted_out", opted_out),
        ("status", status),
    ):
        if value is None:
            continue
        if isinstance(value, bool):
            conditions.append(f"{prefix}{column} = {int(value):d}")
        elif value in LITERAL_STATES:
            conditions.append(f"{prefix}{column} = '{value}'")
        else:
            conditions.append(f"{prefix}{column} = ?")
            params.append(value)
    if assigned == UNASSIGNED:
        conditions.append(f"{prefix}assigned_to IS NULL")
    elif assigned is not None:
        conditions.append(f"{prefix}assigned_to = ?")
        params.append(assigned)
    return conditions, params
