"""Reading request fields the way gateways send them: size-limited, UTF-8 or Latin-1."""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.types import Message

_SURROGATES = re.compile("[\ud800-\udfff]")
MAX_BODY = 64 * 1024  # an SMS is at most a few hundred characters


class BodyTooLarge(Exception):
    pass


class BadBody(ValueError):
    pass


def decode_text(raw: bytes) -> str:
    """UTF-8 when it is valid UTF-8; otherwise the Windows/Latin-1 text older gateways send
    (`Ma%F1ana` → `Mañana`)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def valid_text(text: str) -> str:
    """JSON may carry lone surrogates (`"\\ud800"`), which no database or SMS can hold: they
    become U+FFFD, as undecodable bytes do."""
    return _SURROGATES.sub("\ufffd", text)


class _NotANumber(ValueError):
    """NaN, Infinity, or a number too large for a float: Python reads them, JSON has none."""


def _refuse_constant(name: str) -> Any:
    raise _NotANumber(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999
        raise _NotANumber(text)
    return value


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object with every string made valid (see valid_text); BadBody otherwise, also
    for NaN and Infinity, which JSON does not have and which no answer could carry back."""
    try:
        data = json.loads(
            body or b"{}",
            object_hook=_clean_object,
            parse_constant=_refuse_constant,
            parse_float=_finite,
        )
    except _NotANumber as err:
        raise BadBody(f"{err}: NaN, Infinity and numbers that large are refused") from None
    except (ValueError, RecursionError):
        raise BadBody("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadBody("the body must be a JSON object")
    return data


def _clean_object(pairs: dict[str, Any]) -> dict[str, Any]:
    return {valid_text(k): _clean(v) for k, v in pairs.items()}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def parse_urlencoded(raw: bytes) -> dict[str, str]:
    """Form or query fields, each value decoded on its own (see decode_text); last one wins."""
    fields: dict[str, str] = {}
    for part in raw.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        name = decode_text(unquote_to_bytes(key.replace(b"+", b" ")))
        fields[name] = decode_text(unquote_to_bytes(value.replace(b"+", b" ")))
    return fields


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The whole body, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


async def read_fields(request: Request, body: bytes) -> dict[str, str]:
    """Query-string fields, overridden by form, multipart or JSON body fields."""
    fields = parse_urlencoded(request.scope.get("query_string", b""))
    if not body:
        return fields
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":

        async def replay() -> Message:  # the stream was consumed by read_body
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form()
        fields.update({k: v for k, v in form.items() if isinstance(v, str)})
    elif content_type == "application/json":
        data = json_object(body)
        fields.update({str(k): "" if v is None else str(v) for k, v in data.items()})
    else:
        fields.update(parse_urlencoded(body))
    return fields
