"""The team inbox (DESIGN §11): who handles a conversation, whether it is resolved, internal
notes, who is typing, and a reply that would cross another person's."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from responder.accounts import normalized_name
from responder.clock import Clock
from responder.store.models import (
    STATUSES,
    Conversation,
    ConversationStatus,
    Message,
    Note,
    UnknownUserError,
)
from responder.text import sendable
from responder.web.sessions import OWNER

if TYPE_CHECKING:
    from responder.accounts import Accounts
    from responder.store import Store

# A person shows as typing this long after the reply box last told the server (it tells it
# every few seconds while they type): long enough to bridge the gaps, short enough to vanish
# soon after they stop or close the page.
TYPING_SECONDS = 8.0
MAX_NOTE = 4000  # characters


class NoteRefused(ValueError):
    """A note that cannot be kept: empty, or too long."""


class TeamInbox:
    """Assignment, status, notes and typing, on the store; `Service.inbox`."""

    def __init__(self, store: Store, accounts: Accounts, clock: Clock) -> None:
        self.store = store
        self.accounts = accounts
        self.clock = clock

    async def assign(self, phone: str, user: str | None, actor: str | None) -> Conversation:
        """Hands the conversation to `user` (a person who may sign in, or the built-in owner)
        or, with None, to nobody; on the record (UnknownUserError, UnknownContactError)."""
        name = None if user is None else normalized_name(user)
        if name is not None and name != OWNER:
            person = await self.accounts.user(name)
            if person is None or person.disabled:
                raise UnknownUserError(name)
        before = await self.store.conversation(phone)
        conversation = await self.store.assign(phone, name)
        if before.assigned_to != name:
            await self.accounts.record(actor, "assigned", phone, to=name, before=before.assigned_to)
        return conversation

    async def set_status(self, phone: str, status: ConversationStatus) -> Conversation:
        """Resolves (it needs no attention any more) or reopens the conversation."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return await self.store.set_status(phone, status)

    async def add_note(self, phone: str, author: str | None, text: str) -> Note:
        """An internal note in the thread, never sent (NoteRefused, UnknownContactError)."""
        # Control characters go (a note is shown, never sent); the rest stays as typed.
        text = sendable(text, strict=False).strip()
        if not text:
            raise NoteRefused("the note is empty")
        if len(text) > MAX_NOTE:
            raise NoteRefused(f"the note is longer than {MAX_NOTE} characters")
        return await self.store.add_note(phone, author, text)

    async def notes(self, phone: str) -> list[Note]:
        return await self.store.notes(phone)

    async def typing(self, phone: str, user: str) -> None:
        """`user` is typing a reply in the conversation (for the next TYPING_SECONDS)."""
        until = self.clock() + timedelta(seconds=TYPING_SECONDS)
        await self.store.set_typing(phone, user, until)

    async def stopped_typing(self, phone: str, user: str) -> None:
        await self.store.set_typing(phone, user, None)

    async def typists(self, phone: str, besides: str | None = None) -> list[str]:
        """Who is typing in the conversation now, but `besides` (the person asking)."""
        return [name for name in await self.store.typing(phone) if name != besides]

    async def replied_meanwhile(self, phone: str, seen: int, me: str | None) -> Message | None:
        """The newest message another person wrote to `phone` after message `seen` (what the
        person replying had on their screen), or None."""
        for message in reversed(await self.store.messages(phone)):
            if message.id <= seen:
                return None
            if message.direction == "out" and message.author not in (None, me):
                return message
        return None
