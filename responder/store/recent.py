"""What each number did lately, read from the database inside the transaction that decides on
its new messages: the inbound messages inside the dedupe window and the auto-replies inside the
reply limits' windows. Every process that shares the database sees the same history (a provider
retry reaching another instance is still a duplicate; the reply limit holds across instances).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from responder.store.sqltime import moment

# The columns Activity.add reads, in order.
ROW_COLUMNS = "id, phone, direction, line, text, origin, rule, created_at"

# At most this many of a number's latest messages are read back: bounded work per webhook even
# for a number that writes thousands of times an hour (the limits count far fewer).
RECENT_ROWS = 500

# What RecentRows may hold, in bytes as sys.getsizeof counts them (the objects it alone keeps):
# well under what a process of responder uses besides, and a few thousand busy numbers' worth.
# A number's texts can be long (a webhook may carry 64 KiB), so entries alone would not bound it.
MAX_BYTES = 32 * 1024 * 1024
# What an entry costs besides its text, measured on CPython 3.11 (tests/test_bounded_memory.py
# checks these against sys.getsizeof and tracemalloc): an inbound entry is a 4-tuple (72), a
# datetime (48), the line's string (about 61) and the id (28); a reply a 2-tuple (56) and a
# datetime (48).
INBOUND_BYTES = 216
REPLY_BYTES = 112
# A number's Known and Activity (two objects, their dicts), the two lists, the OrderedDict's
# entry and the phone's string.
KNOWN_BYTES = 900


@dataclass
class Activity:
    inbound: list[tuple[datetime, str, str, int]] = field(
        default_factory=list
    )  # at, line, text, id
    replies: list[tuple[datetime, str]] = field(default_factory=list)  # at, text

    def duplicate_of(self, line: str, text: str, since: datetime) -> int | None:
        """The id of the same message from this number and line received since `since`."""
        for at, seen_line, seen_text, message_id in reversed(self.inbound):
            # not `break`: a message stored from the spool late has an old time and a new id
            if at >= since and seen_line == line and seen_text == text:
                return message_id
        return None

    def add(self, row: Sequence[Any]) -> None:
        """A stored message, its columns as ROW_COLUMNS, if it is activity: an inbound
        message, or an auto-reply that counts toward the limits."""
        message_id, _, direction, line, text, origin, rule, created_at = row
        if direction == "in":
            self.inbound.append((moment(created_at), line or "", text, message_id))
        elif origin == "auto" and rule not in ("opt_out", "opt_in"):
            self.replies.append((moment(created_at), text))

    def size(self) -> int:
        """Bytes this activity keeps, about (MAX_BYTES' measure): texts counted exactly."""
        getsizeof = sys.getsizeof
        return (
            INBOUND_BYTES * len(self.inbound)
            + sum(getsizeof(entry[2]) for entry in self.inbound)
            + REPLY_BYTES * len(self.replies)
            + sum(getsizeof(entry[1]) for entry in self.replies)
        )

    def prune(self, inbound_since: datetime, replies_since: datetime) -> None:
        """Forgets what is older than the windows that need it (and beyond RECENT_ROWS)."""
        _drop_older(self.inbound, inbound_since)
        _drop_older(self.replies, replies_since)


def _drop_older(entries: list[Any], since: datetime) -> None:
    """Drops the entries (oldest first, a time first in each) from before `since`, and all but
    the newest RECENT_ROWS. Runs for each number of every batch: no work when none goes."""
    count = len(entries)
    old = 0
    while old < count and entries[old][0] < since:
        old += 1
    old = max(old, count - RECENT_ROWS)
    if old > 0:
        del entries[:old]


@dataclass
class Known:
    """A number's activity, complete back to `inbound_since` for its inbound messages and to
    `replies_since` for its auto-replies."""

    inbound_since: datetime
    replies_since: datetime
    activity: Activity

    def covers(self, inbound_since: datetime, replies_since: datetime) -> bool:
        return self.inbound_since <= inbound_since and self.replies_since <= replies_since

    def prune(self, inbound_since: datetime, replies_since: datetime) -> None:
        self.activity.prune(inbound_since, replies_since)
        if inbound_since > self.inbound_since:
            self.inbound_since = inbound_since
        if replies_since > self.replies_since:
            self.replies_since = replies_since


class RecentRows:
    """The SQLite backend's copy of what it read of each number's recent messages, so that a
    transaction reads only the messages written since the previous one (`id > watermark`), by
    this process or any other, instead of each number's last hour again. On SQLite, ids are
    given inside the one write lock (MAX(id) + 1), so a message committed later always has a
    higher id; a message's direction, line, text, rule and time never change once stored, and
    what the copy holds is only what the database said. Bounded: RECENT_ROWS per number, `size`
    numbers and `max_bytes` bytes (the least recently used numbers go first; a number bigger
    than all of it is not kept, and is read afresh each time)."""

    def __init__(self, size: int = 20_000, max_bytes: int = MAX_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.watermark: int | None = None  # every message up to this id has been seen
        self._known: OrderedDict[str, Known] = OrderedDict()
        self._sizes: dict[str, int] = {}  # what each number's Known was measured at
        self.bytes = 0  # their sum: what the copy holds, about

    def __len__(self) -> int:
        return len(self._known)

    def get(self, phone: str, inbound_since: datetime, replies_since: datetime) -> Known | None:
        known = self._known.get(phone)
        if known is None or not known.covers(inbound_since, replies_since):
            return None  # never read, or not as far back as asked
        self._known.move_to_end(phone)
        return known

    def put(self, phone: str, known: Known) -> None:
        self._known[phone] = known
        self._known.move_to_end(phone)
        self._measure(phone, known)
        self._evict()

    def settle(self, phones: Iterable[str]) -> None:
        """After a transaction added to (or pruned) these numbers' activity: measured again,
        and the least recently used numbers dropped while over the bounds."""
        for phone in phones:
            known = self._known.get(phone)
            if known is not None:
                self._measure(phone, known)
        self._evict()

    def _measure(self, phone: str, known: Known) -> None:
        size = KNOWN_BYTES + known.activity.size()
        self.bytes += size - self._sizes.get(phone, 0)
        self._sizes[phone] = size

    def _evict(self) -> None:
        while self._known and (len(self._known) > self.size or self.bytes > self.max_bytes):
            phone, _ = self._known.popitem(last=False)
            self.bytes -= self._sizes.pop(phone, 0)

    def add(self, row: Sequence[Any]) -> None:
        """A message written since the watermark (known numbers only); counted at once, let go
        at the next `settle`."""
        phone = row[1]
        known = self._known.get(phone)
        if known is not None:
            before = len(known.activity.inbound) + len(known.activity.replies)
            known.activity.add(row)
            if len(known.activity.inbound) + len(known.activity.replies) != before:
                cost = INBOUND_BYTES if row[2] == "in" else REPLY_BYTES
                grown = cost + sys.getsizeof(row[4])
                self._sizes[phone] = self._sizes.get(phone, 0) + grown
                self.bytes += grown

    def forget(self) -> None:
        """After a transaction rolled back (what it read may have been its own writes), or
        when too much was written elsewhere to catch up: everything is read afresh."""
        self._known.clear()
        self._sizes.clear()
        self.bytes = 0
        self.watermark = None
