"""`responder export`: every conversation with its messages, as CSV or JSON lines, streamed.

Conversations are read in number order a page at a time, and the messages of a page's numbers
in (number, id) order a page at a time, both after the last key seen: memory stays flat whatever
the size of the database or of one conversation, and a million messages take a few thousand
reads rather than one or more per conversation.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

from responder.store import Store
from responder.store.models import MESSAGE_FIELDS, Conversation, Message

CONVERSATION_PAGE = 1000  # conversations read at a time
MESSAGE_PAGE = 5000  # messages read at a time, of one conversation or of many


class _JsonLines:
    """One conversation per line; its messages are written as they are read."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.first = True

    def open(self, conversation: Conversation) -> None:
        head = json.dumps({**conversation.as_json(), "messages": []}, ensure_ascii=False)
        self.out.write(head[: -len("]}")])  # '{...conversation, "messages": ['
        self.first = True

    def message(self, message: Message) -> None:
        text = json.dumps(message.as_json(), ensure_ascii=False)
        self.out.write(text if self.first else ", " + text)
        self.first = False

    def close(self) -> None:
        self.out.write("]}\n")


class _Csv:
    """A row per message, with its contact's mode, opt-out and fields."""

    def __init__(self, out: TextIO) -> None:
        self.writer = csv.writer(out)
        self.writer.writerow([*MESSAGE_FIELDS, "mode", "opted_out", "contact_fields"])
        self.contact: list[Any] = []

    def open(self, conversation: Conversation) -> None:
        fields = json.dumps(conversation.fields, ensure_ascii=False)
        self.contact = [conversation.mode, conversation.opted_out, fields]

    def message(self, message: Message) -> None:
        self.writer.writerow([*message.as_json().values(), *self.contact])

    def close(self) -> None:
        pass


async def export_to(
    store: Store, fmt: str, out: TextIO, progress: Callable[[int], None] = lambda _: None
) -> None:
    """Writes the export to `out`; `progress` hears how many messages each page read."""
    writer = _JsonLines(out) if fmt == "jsonl" else _Csv(out)
    after = ""
    while conversations := await store.conversations_after(after, CONVERSATION_PAGE):
        # Merged in key order: a message's number is the conversation's, or a later one's of
        # this page, or no conversation's (skipped).
        phones = {c.phone for c in conversations}
        todo = iter(conversations)
        current = next(todo)
        writer.open(current)
        async for message in _messages(store, current.phone, conversations[-1].phone, progress):
            if message.phone not in phones:
                continue
            while message.phone != current.phone:
                writer.close()
                current = next(todo)
                writer.open(current)
            writer.message(message)
        writer.close()
        for rest in todo:
            writer.open(rest)
            writer.close()
        after = conversations[-1].phone
        if len(conversations) < CONVERSATION_PAGE:
            break


async def _messages(
    store: Store, first: str, last: str, progress: Callable[[int], None]
) -> AsyncIterator[Message]:
    """The messages of the numbers from `first` to `last`, in (number, id) order."""
    key = (first, 0)  # ids start at 1
    while page := await store.messages_after(key, last, MESSAGE_PAGE):
        progress(len(page))
        for message in page:
            yield message
        key = (page[-1].phone, page[-1].id)
        if len(page) < MESSAGE_PAGE:
            break
