"""What each number did lately, kept in memory by the writer: the inbound messages inside the
dedupe window and the auto-replies inside the reply limits' windows. A process-local seam:
the database stays the truth, this spares it two queries per batch of webhooks."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class Activity:
    inbound: deque[tuple[datetime, str, str, int]] = field(
        default_factory=deque
    )  # at, line, text, id
    replies: deque[tuple[datetime, str]] = field(default_factory=deque)  # at, text


class RecentActivity:
    """Per phone, the recent history the engine and the dedupe check need, bounded in time
    (`horizon`) and in phones (least recently used ones are forgotten, and read again from the
    database when they come back)."""

    def __init__(self, horizon: timedelta, max_phones: int = 100_000) -> None:
        self.horizon = horizon
        self.max_phones = max_phones
        self._phones: OrderedDict[str, Activity] = OrderedDict()

    def known(self, phone: str) -> bool:
        return phone in self._phones

    def remember(self, phone: str) -> Activity:
        """The phone's activity, created empty when it was not known."""
        activity = self._phones.get(phone)
        if activity is None:
            activity = self._phones[phone] = Activity()
            while len(self._phones) > self.max_phones:
                self._phones.popitem(last=False)
        else:
            self._phones.move_to_end(phone)
        return activity

    def forget(self, phones: set[str] | list[str]) -> None:
        for phone in phones:
            self._phones.pop(phone, None)

    def prune(self, activity: Activity, now: datetime) -> None:
        oldest = now - self.horizon
        while activity.inbound and activity.inbound[0][0] < oldest:
            activity.inbound.popleft()
        while activity.replies and activity.replies[0][0] < oldest:
            activity.replies.popleft()

    def duplicate_of(self, phone: str, line: str, text: str, since: datetime) -> int | None:
        """The id of the same message from this phone and line received since `since`."""
        activity = self._phones.get(phone)
        if activity is None:
            return None
        for at, seen_line, seen_text, message_id in reversed(activity.inbound):
            if at < since:
                break
            if seen_line == line and seen_text == text:
                return message_id
        return None

    def replies_since(self, phone: str, since: datetime) -> tuple[tuple[datetime, str], ...]:
        activity = self._phones.get(phone)
        if activity is None:
            return ()
        return tuple(r for r in activity.replies if r[0] > since)
