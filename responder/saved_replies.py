"""Saved replies (DESIGN §11): texts the owners keep for the team. An agent types `/` and a
name in the reply box; the text comes filled in with the contact's fields, rendered in the
same sandbox, and on the same budget, as the rules' replies (responder/templating.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateSyntaxError

from responder.rules.hours import template_value
from responder.store.models import SavedReply
from responder.templating import TemplateError, make_environment, render

if TYPE_CHECKING:
    from responder.accounts import Accounts
    from responder.clock import Clock
    from responder.rules.reload import RulesHolder
    from responder.store import Store

# What follows `/` in the reply box, up to a space: letters (accents too), digits, - and _.
NAME_RE = re.compile(r"[^\W_][\w-]{0,39}")
MAX_TEXT = 1600  # ten SMS, as a reply typed by hand


class SavedReplyError(ValueError):
    """A name or text that cannot be saved: `message` in English for the API, `spanish` for
    the admin page."""

    def __init__(self, message: str, spanish: str) -> None:
        super().__init__(message)
        self.message = message
        self.spanish = spanish


@dataclass(frozen=True)
class Filled:
    """A saved reply filled in for one conversation; `error` when its template failed (then
    `text` is the template as written, for the person to fix by hand)."""

    reply: SavedReply
    text: str
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.reply.id,
            "name": self.reply.name,
            "text": self.text,
            "error": self.error,
        }


def checked_name(raw: Any) -> str:
    name = raw.strip().lower() if isinstance(raw, str) else ""
    if not NAME_RE.fullmatch(name):
        raise SavedReplyError(
            "'name' must be 1 to 40 letters, digits, - or _, without spaces",
            "El nombre lleva de 1 a 40 letras, números, - o _, sin espacios (ej.: horario).",
        )
    return name


class SavedReplies:
    """Owners add and delete saved replies (on the audit trail); anyone fills them in."""

    def __init__(self, store: Store, accounts: Accounts, rules: RulesHolder, clock: Clock) -> None:
        self.store = store
        self.accounts = accounts
        self.rules = rules
        self.clock = clock
        self.env = make_environment({})

    async def all(self) -> list[SavedReply]:
        return await self.store.saved_replies()

    def checked_text(self, raw: Any) -> str:
        text = raw.replace("\r\n", "\n").strip() if isinstance(raw, str) else ""
        if not text:
            raise SavedReplyError("'text' must be a non-empty string", "Escriba el texto.")
        if len(text) > MAX_TEXT:
            raise SavedReplyError(
                f"'text' is longer than {MAX_TEXT} characters (ten SMS)",
                f"El texto es demasiado largo ({len(text)} caracteres; máximo {MAX_TEXT}).",
            )
        try:
            self.env.from_string(text)  # compiled: an unknown filter is found now too
        except TemplateSyntaxError as err:
            raise SavedReplyError(
                f"'text' line {err.lineno}: {err.message}",
                f"El texto tiene un error de plantilla en la línea {err.lineno}: revise las "
                "llaves {{ }} y {% %}.",
            ) from None
        return text

    async def add(self, actor: str | None, name: Any, text: Any) -> SavedReply:
        """Saves one (SavedReplyExists when the name is taken), on the audit trail."""
        reply = await self.store.add_saved_reply(checked_name(name), self.checked_text(text), actor)
        await self.accounts.record(actor, "saved_reply_created", reply.name)
        return reply

    async def delete(self, actor: str | None, reply_id: int) -> SavedReply | None:
        deleted = await self.store.delete_saved_reply(reply_id)
        if deleted is not None:
            await self.accounts.record(actor, "saved_reply_deleted", deleted.name)
        return deleted

    async def filled(self, phone: str) -> list[Filled]:
        """Every saved reply filled in for the conversation with `phone` (UnknownContactError
        when there is none): `contact` as the rules see it, `now` and `hours` in local time."""
        conversation = await self.store.conversation(phone)
        settings = self.rules.current.settings
        now = self.clock().astimezone(settings.timezone)
        context = {
            "contact": {**conversation.fields, "phone": conversation.phone},
            "message": {},
            "match": {},
            "rule": None,
            "now": now,
            "hours": template_value(settings.hours, now),
        }
        shown = []
        for reply in await self.store.saved_replies():
            try:
                shown.append(Filled(reply, render(self.env.from_string(reply.text), context)))
            except TemplateError as err:
                shown.append(Filled(reply, reply.text, str(err)))
        return shown
