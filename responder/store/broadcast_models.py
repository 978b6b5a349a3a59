"""Broadcast records (DESIGN §12), as both stores hand them out; `responder.broadcasts` re-exports
them with the service's side of broadcasts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from responder.store.models import to_iso

BroadcastStatus = Literal["scheduled", "running", "paused", "done", "cancelled"]
BROADCAST_STATUSES: tuple[BroadcastStatus, ...] = (
    "scheduled",
    "running",
    "paused",
    "done",
    "cancelled",
)
# What a recipient is, as counted: every recipient is exactly one of these.
RecipientStatus = Literal["queued", "sent", "delivered", "failed", "skipped", "cancelled"]
RECIPIENT_STATUSES: tuple[RecipientStatus, ...] = (
    "queued",
    "sent",
    "delivered",
    "failed",
    "skipped",
    "cancelled",
)
# The transitions a person may ask for: action -> (statuses it applies to, status it makes).
TRANSITIONS: dict[str, tuple[tuple[BroadcastStatus, ...], BroadcastStatus]] = {
    "pause": (("scheduled", "running"), "paused"),
    "resume": (("paused",), "running"),
    "cancel": (("scheduled", "running", "paused"), "cancelled"),
}


def changed_status(
    target: BroadcastStatus, started_at: object, send_at: Any, now: Any
) -> BroadcastStatus:
    """The status a transition's `target` makes of a broadcast: resuming one paused before its
    time (never started, `send_at` still after `now`) makes it wait for its time again.
    `send_at` and `now` as the store holds them (SQLite's stored text, PostgreSQL's moments)."""
    late = started_at is None and send_at is not None and send_at > now
    return "scheduled" if target == "running" and late else target


# Messages a broadcast queued are told apart by this origin (and their broadcast_id).
BROADCAST_ORIGIN = "broadcast"


def stored_fields(value: Any) -> dict[str, Any]:
    """A contact's fields as either store hands them back (JSON text, or already a dict):
    {} for none, for text that is not JSON, or for JSON that is not an object."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Segment:
    """Who a broadcast goes to: contacts with ALL `labels`, every field in `fields` equal to
    its value, and (when set) an inbound message in the last `active_within_days` days.
    Opted-out numbers never are."""

    labels: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    active_within_days: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "fields": dict(self.fields),
            "active_within_days": self.active_within_days,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        days = data.get("active_within_days")
        return cls(
            tuple(data.get("labels") or ()),
            {str(k): str(v) for k, v in (data.get("fields") or {}).items()},
            int(days) if days is not None else None,
        )


@dataclass(frozen=True)
class Broadcast:
    id: int
    name: str
    text: str
    segment: Segment
    via: str
    send_at: datetime | None
    status: BroadcastStatus
    recipients: int
    counts: dict[str, int]  # RECIPIENT_STATUSES -> how many; they add up to `recipients`
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # Why a running broadcast sends nothing now (quiet hours) and until when (in the shop's
    # time zone); set by the service, not stored.
    waiting: str | None = None
    waiting_until: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return to_iso(value) if value is not None else None

        return {
            "id": self.id,
            "name": self.name,
            "text": self.text,
            "segment": self.segment.as_json(),
            "via": self.via,
            "send_at": iso(self.send_at),
            "status": self.status,
            "recipients": self.recipients,
            "counts": dict(self.counts),
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "waiting": self.waiting,
            "waiting_until": iso(self.waiting_until),
        }


@dataclass(frozen=True)
class Recipient:
    phone: str
    status: RecipientStatus
    message_id: int | None  # its first message, once queued
    error: str | None
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "phone": self.phone,
            "status": self.status,
            "message_id": self.message_id,
            "error": self.error,
            "updated_at": to_iso(self.updated_at),
        }


@dataclass(frozen=True)
class BroadcastPreview:
    recipients: int
    samples: list[tuple[str, str]]  # (phone, the text as it would go to that number)
    parts_per_message: int  # SMS segments, the most any sample costs
    estimated_segments: int  # about what the whole broadcast costs
    encoding: Literal["GSM-7", "UCS-2"]

    def as_json(self) -> dict[str, Any]:
        return {
            "recipients": self.recipients,
            "samples": [{"phone": p, "text": t} for p, t in self.samples],
            "parts": self.parts_per_message,
            "estimated_segments": self.estimated_segments,
            "encoding": self.encoding,
        }


@dataclass(frozen=True)
class SegmentContact:
    """A contact as a broadcast renders its text for it."""

    phone: str
    fields: dict[str, Any]
    opted_out: bool = False


@dataclass(frozen=True)
class FeedItem:
    """What the feeder queues for one recipient: its texts (the parts of one message), or a
    reason to skip it."""

    phone: str
    texts: tuple[str, ...] = ()
    skip: str | None = None


@dataclass(frozen=True)
class FeedState:
    """A broadcast as the feeder sees it on a tick."""

    broadcast: Broadcast
    pending: int  # recipients not yet queued
    outstanding: int  # its messages in the outbox (queued, being sent, waiting for a retry)


class BroadcastStateError(ValueError):
    """The broadcast is not in a state that allows the action (API 409)."""

    def __init__(self, broadcast_id: int, status: str, action: str) -> None:
        done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}.get(action, action)
        super().__init__(f"broadcast {broadcast_id} is {status}: it cannot be {done}")
        self.broadcast_id = broadcast_id
        self.status = status
        self.action = action


class UnknownBroadcastError(LookupError):
    """No broadcast has that id (API 404)."""
