"""What each number did lately, read from the database inside the transaction that decides on
its new messages: the inbound messages inside the dedupe window and the auto-replies inside the
reply limits' windows. Every process that shares the database sees the same history (a provider
retry reaching another instance is still a duplicate; the reply limit holds across instances).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
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
# datetime (48). Kept, an entry is 4 or 2 slots (8 bytes each) of its number's tuple rather
# than a tuple of its own: less than counted here.
INBOUND_BYTES = 216
REPLY_BYTES = 112
# A number's kept tuple (its 4 items besides the entries), the OrderedDict's entry (its node
# and a hash table slot), the phone's string and the size's integer.
KNOWN_BYTES = 320


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

    def prune(self, inbound_since: datetime, replies_since: datetime) -> None:
        self.activity.prune(inbound_since, replies_since)
        if inbound_since > self.inbound_since:
            self.inbound_since = inbound_since
        if replies_since > self.replies_since:
            self.replies_since = replies_since


# What RecentRows keeps of a number, in one flat tuple: inbound_since, replies_since, its size
# in bytes, how many inbound entries follow, then the inbound entries' fields (4 each) and the
# replies' (2 each), oldest first. Times, strings and numbers only, nothing nested: the garbage
# collector stops tracking a tuple the first time it looks at it and finds nothing tracked
# inside, but it looks at a container before what the container holds, and an object may reach
# the oldest generation after a single look. Kept as a tuple of tuples of entries, thousands of
# numbers stayed tracked in the oldest generation, walked by every full collection (measured:
# 5,000 of 20,000; as objects, 80 ms per full collection with 19,000 numbers kept).
_Kept = tuple[Any, ...]
_ENTRIES = 4  # where the entries start in a _Kept


def _activity(kept: _Kept) -> Activity:
    """A kept number's entries, as lists of tuples of its own."""
    replies = _ENTRIES + 4 * kept[3]
    inbound = iter(kept[_ENTRIES:replies])
    answered = iter(kept[replies:])
    return Activity(
        list(zip(inbound, inbound, inbound, inbound, strict=True)),
        list(zip(answered, answered, strict=True)),
    )


class RecentRows:
    """The SQLite backend's copy of what it read of each number's recent messages, so that a
    transaction reads only the messages written since the previous one (`id > watermark`), by
    this process or any other, instead of each number's last hour again. On SQLite, ids are
    given inside the one write lock (MAX(id) + 1), so a message committed later always has a
    higher id; a message's direction, line, text, rule and time never change once stored, and
    what the copy holds is only what the database said.

    `get` hands out a Known of its own (lists to add to); `put` and `settle` keep what it holds
    then. Bounded: RECENT_ROWS per number, `size` numbers and `max_bytes` bytes (the least
    recently used numbers go first; a number bigger than all of it is not kept, and is read
    afresh each time)."""

    def __init__(self, size: int = 20_000, max_bytes: int = MAX_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.watermark: int | None = None  # every message up to this id has been seen
        self._known: OrderedDict[str, _Kept] = OrderedDict()
        self.bytes = 0  # what the copy holds, about: the sum of the kept sizes

    def __len__(self) -> int:
        return len(self._known)

    def get(self, phone: str, inbound_since: datetime, replies_since: datetime) -> Known | None:
        kept = self._known.get(phone)
        if kept is None or kept[0] > inbound_since or kept[1] > replies_since:
            return None  # never read, or not as far back as asked
        self._known.move_to_end(phone)
        return Known(kept[0], kept[1], _activity(kept))

    def put(self, phone: str, known: Known) -> None:
        self._keep(phone, known)
        self._evict()

    def settle(self, known: Mapping[str, Known]) -> None:
        """After a transaction added to (or pruned) these numbers' activity: kept as they are
        now, and the least recently used numbers dropped while over the bounds."""
        for phone, each in known.items():
            self._keep(phone, each)
        self._evict()

    def _keep(self, phone: str, known: Known) -> None:
        activity = known.activity
        size = KNOWN_BYTES + activity.size()
        old = self._known.get(phone)
        self.bytes += size - (old[2] if old is not None else 0)
        self._known[phone] = (
            known.inbound_since,
            known.replies_since,
            size,
            len(activity.inbound),
            *chain.from_iterable(activity.inbound),
            *chain.from_iterable(activity.replies),
        )
        self._known.move_to_end(phone)

    def _evict(self) -> None:
        while self._known and (len(self._known) > self.size or self.bytes > self.max_bytes):
            _, kept = self._known.popitem(last=False)
            self.bytes -= kept[2]

    def add(self, row: Sequence[Any]) -> None:
        """A message written since the watermark (known numbers only); counted at once, let go
        at the next `settle` when over the bounds."""
        phone = row[1]
        kept = self._known.get(phone)
        if kept is not None:
            activity = _activity(kept)
            activity.add(row)
            self._keep(phone, Known(kept[0], kept[1], activity))

    def forget(self) -> None:
        """After a transaction rolled back (what it read may have been its own writes), or
        when too much was written elsewhere to catch up: everything is read afresh."""
        self._known.clear()
        self.bytes = 0
        self.watermark = None
