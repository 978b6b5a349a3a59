"""What both backends share: who this process is in claims and leases, how long a claim holds,
whether the process behind a claim is gone, and what a flow's timeout changes on its contact."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta
from typing import Any

LEASE = timedelta(seconds=30)  # how long a claim holds without renewal (DESIGN §9)

# Instances open in this process (usually one; tests open several): a claim made with our pid by
# an instance not among them was made by an earlier process that had the same pid. Process-local
# and safe so: it only speaks about this process.
OPEN_HERE: set[str] = set()


def instance_id() -> str:
    """Who this process is in claims: host, pid and a random part (a restarted process may get
    the same pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def this_host_prefix() -> str:
    """The start of every instance id made on this machine (a LIKE pattern's fixed part)."""
    return f"{socket.gethostname()}:"


def owner_dead(claimed_by: str | None) -> bool:
    """True when `claimed_by` names a process on this machine that no longer runs (or whose
    pid this very process now has, after a restart in a container)."""
    host, _, rest = (claimed_by or "").partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return claimed_by not in OPEN_HERE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


# GET /metrics: messages queued or being sent, and when the oldest became due. Each half reads
# its partial index (messages_outbox, messages_in_flight; the first condition repeats that
# index's own, so both engines see it applies), not every message: the plain `status IN
# ('queued', 'sending')` scanned the table (290 ms at 2M messages).
OUTBOX_BACKLOG = """SELECT COUNT(*), MIN(due) FROM (
    SELECT COALESCE(send_at, created_at) AS due FROM messages
    WHERE status IN ('queued', 'scheduled') AND status = 'queued'
    UNION ALL
    SELECT COALESCE(send_at, created_at) FROM messages WHERE status = 'sending'
) AS backlog"""


def end_flow(contact: Any, decision: Any, now: Any) -> None:
    """What a flow's timeout (a Decision) changes on its contact's row, as both stores'
    apply_decisions keep it: the flow, the last message when a reply goes out (`now`, in the
    store's own form), and the flag for a person."""
    if decision.flow_changed:
        contact.flow = decision.flow
    if decision.replies:
        contact.last_message_at = now
        contact.last_text = decision.replies[-1].text
    contact.needs_attention = decision.needs_attention or contact.needs_attention
