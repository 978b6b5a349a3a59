"""One spooled webhook as one line of JSON: everything `Service` needs to store it later."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from responder.engine import InboundMessage
from responder.store.models import StatusUpdate

Spooled = InboundMessage | StatusUpdate
VERSION = 1


class UnreadableRecord(ValueError):
    """A spool line that is not a record this version wrote (a damaged disk, a hand edit)."""


def encode(item: Spooled) -> bytes:
    """The record as one line of ASCII JSON (lone surrogates and all, escaped), newline ended.
    Moments keep their offset and microseconds: a replay decides as of the same moment."""
    if isinstance(item, InboundMessage):
        data: dict[str, Any] = {
            "v": VERSION,
            "kind": "inbound",
            "phone": item.phone,
            "text": item.text,
            "received_at": item.received_at.isoformat(),
            "line": item.line,
            "provider": item.provider,
        }
    else:
        data = {
            "v": VERSION,
            "kind": "status",
            "provider": item.provider,
            "provider_id": item.provider_id,
            "status": item.status,
            "detail": item.detail,
            "at": item.at.isoformat(),
        }
    return json.dumps(data, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def decode(line: bytes) -> Spooled:
    """The record a line holds; UnreadableRecord when it holds none."""
    try:
        data = json.loads(line)
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise UnreadableRecord("not a spool record of version 1")
        if data["kind"] == "inbound":
            return InboundMessage(
                _text(data, "phone"),
                _text(data, "text"),
                _moment(data, "received_at"),
                _optional(data, "line"),
                _text(data, "provider"),
            )
        if data["kind"] == "status":
            return StatusUpdate(
                _text(data, "provider"),
                _text(data, "provider_id"),
                _text(data, "status"),
                _optional(data, "detail"),
                _moment(data, "at"),
            )
        raise UnreadableRecord(f"unknown kind {data['kind']!r}")
    except UnreadableRecord:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise UnreadableRecord(f"unreadable spool record: {type(err).__name__}: {err}") from None


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise UnreadableRecord(f"{key} is not a string")
    return value


def _optional(data: dict[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else _text(data, key)


def _moment(data: dict[str, Any], key: str) -> datetime:
    moment = datetime.fromisoformat(_text(data, key))
    if moment.tzinfo is None:
        raise UnreadableRecord(f"{key} has no UTC offset")
    return moment
