"""What each number did lately, read from the database inside the transaction that decides on
its new messages: the inbound messages inside the dedupe window and the auto-replies inside the
reply limits' windows. Nothing is kept between transactions, so every process that shares the
database sees the same history (a provider retry reaching another instance is still a
duplicate; the reply limit holds across instances)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# At most this many of a number's latest messages are read back: bounded work per webhook even
# for a number that writes thousands of times an hour (the limits count far fewer).
RECENT_ROWS = 500


@dataclass
class Activity:
    inbound: list[tuple[datetime, str, str, int]] = field(
        default_factory=list
    )  # at, line, text, id
    replies: list[tuple[datetime, str]] = field(default_factory=list)  # at, text

    def duplicate_of(self, line: str, text: str, since: datetime) -> int | None:
        """The id of the same message from this number and line received since `since`."""
        for at, seen_line, seen_text, message_id in reversed(self.inbound):
            if at < since:
                break
            if seen_line == line and seen_text == text:
                return message_id
        return None
