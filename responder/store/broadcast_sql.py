"""SQL that both stores share for broadcasts (DESIGN §12): what a recipient's state is, worked
out from its row and its messages. Written with `{b}` where the broadcast id goes, so each store
puts its own placeholder there (`?` for SQLite, `$1` for PostgreSQL)."""

from __future__ import annotations

from responder.store.models import CANCELLED_BY

# In the outbox's claim (as `m`): a broadcast's message goes only while its broadcast is not
# paused or cancelled (so a pause or cancel on any instance holds it at once). An uncorrelated
# look at a table of a few rows, for broadcast messages only: replies pay nothing.
BROADCAST_CLAIMABLE = (
    "(m.broadcast_id IS NULL OR NOT EXISTS (SELECT 1 FROM broadcasts AS b "
    "WHERE b.id = m.broadcast_id AND b.status IN ('paused', 'cancelled')))"
)
# A message still in the outbox: queued, being sent, or waiting in the outbox for its time. A
# 'scheduled' message handed to the provider's own scheduler (MasSMS) has no next attempt.
OUTSTANDING = (
    "(status IN ('queued', 'sending') OR (status = 'scheduled' AND next_attempt_at IS NOT NULL))"
)
# A recipient's messages (the parts of its text) ranked: the least advanced part decides. (A
# message a person cancels in the thread marks its recipient cancelled: store/*_care.py.)
_RANK = (
    f"MAX(CASE WHEN {OUTSTANDING} THEN 5 WHEN status = 'failed' THEN 4 "
    "WHEN status = 'delivered' THEN 1 ELSE 2 END)"
)
_STATE = """CASE WHEN r.status IN ('skipped', 'cancelled') THEN r.status
        WHEN r.status = 'pending' THEN 'queued'
        WHEN m.rank IS NULL THEN 'skipped'
        WHEN m.rank = 5 THEN 'queued'
        WHEN m.rank = 4 THEN 'failed'
        WHEN m.rank = 2 THEN 'sent'
        ELSE 'delivered' END"""
# How many recipients are in each state: read from the messages' covering index alone.
COUNTS = f"""
SELECT {_STATE} AS state, COUNT(*) FROM broadcast_recipients AS r LEFT JOIN (
    SELECT phone, {_RANK} AS rank FROM messages WHERE broadcast_id = {{b}} GROUP BY phone
) AS m ON m.phone = r.phone
WHERE r.broadcast_id = {{b}} GROUP BY state
"""
# One row per recipient after the number {after}: phone, counted status, first message id,
# error, updated_at.
RECIPIENT_STATES = f"""
SELECT r.phone, {_STATE} AS state, m.first_id,
    COALESCE(r.error, m.error) AS error,
    CASE WHEN m.updated_at IS NOT NULL AND m.updated_at > r.updated_at THEN m.updated_at
        ELSE r.updated_at END AS updated_at
FROM broadcast_recipients AS r LEFT JOIN (
    SELECT phone, MIN(id) AS first_id, {_RANK} AS rank, MAX(error) AS error,
        MAX(updated_at) AS updated_at
    FROM messages WHERE broadcast_id = {{b}} AND phone > {{after}} GROUP BY phone
) AS m ON m.phone = r.phone
WHERE r.broadcast_id = {{b}} AND r.phone > {{after}}
"""
# Running (and scheduled) broadcasts' messages still in the outbox, by broadcast: the queued
# ones through the outbox's index, those being sent through the in-flight index.
OUTSTANDING_BY_BROADCAST = """
SELECT broadcast_id, COUNT(*) FROM (
    SELECT broadcast_id FROM messages WHERE status IN ('queued', 'scheduled')
        AND next_attempt_at IS NOT NULL AND broadcast_id IS NOT NULL
    UNION ALL
    SELECT broadcast_id FROM messages WHERE status = 'sending' AND broadcast_id IS NOT NULL
) AS o GROUP BY broadcast_id
"""
# The outbox holds a message that is not a broadcast's due now ({now}: its placeholder), or
# one being sent through {provider} (when given: it may be waiting for that provider's send
# budget). Through the outbox's and the in-flight partial indexes, both small.
REPLY_WAITING = (
    "SELECT 1 FROM messages WHERE status IN ('queued', 'scheduled') AND next_attempt_at <= {now} "
    "AND broadcast_id IS NULL UNION ALL SELECT 1 FROM messages WHERE status = 'sending' "
    "AND broadcast_id IS NULL AND provider = {provider} LIMIT 1"
)
# A recipient's reason, and its message's error: a message never sent is "cancelled by ...",
# which the inbox does not flag as a failure (store/models.py's CANCELLED_BY).
SKIPPED_OPTED_OUT = "skipped: opted out"
BROADCAST_CANCELLED = "cancelled with the broadcast"
FORGOTTEN_RECIPIENT = "the contact was forgotten"
MESSAGE_SKIPPED = f"{CANCELLED_BY}the broadcast: the number opted out"
MESSAGE_CANCELLED = f"{CANCELLED_BY}the broadcast's cancellation"
