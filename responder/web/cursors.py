"""Keyset cursors for lists that page newest first: opaque text for clients, a key for the
store. A conversation's cursor is where it stands in the list (last message time, number)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from responder.store.models import Conversation, ConversationKey


class BadCursor(ValueError):
    """A cursor this service did not give out (or one mangled on the way)."""


def conversation_cursor(c: Conversation) -> str:
    raw = f"{c.last_message_at.isoformat()}|{c.phone}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def conversation_key(cursor: str) -> ConversationKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, phone = raw.split("|", 1)
        moment = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor(cursor) from None
    if moment.tzinfo is None or not phone:
        raise BadCursor(cursor)
    return moment, phone
