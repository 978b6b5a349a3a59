"""MasSMS (Markettext): one text to many numbers per request, status by polling."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from responder.config import MasSMSSettings
from responder.providers.base import (
    UNCONFIRMED,
    BadResponse,
    DeliveryStatus,
    NoCredits,
    OutboundSMS,
    Provider,
    ProviderError,
    Rejected,
    SendResult,
    Unconfirmed,
)
from responder.providers.transport import HttpRequest, HttpResponse, HttpTransport

MAX_NUMBERS = 100  # error 111 above this
BALANCE_RE = re.compile(r"-?[0-9]+(?:[.,][0-9]+)?")


@dataclass(frozen=True)
class Code:
    meaning: str
    retryable: bool
    no_credits: bool = False


# The manual's error codes, answered as the whole body.
ERROR_CODES: dict[str, Code] = {
    "101": Code("the api_id parameter was not received (MASSMS_API_ID)", False),
    "102": Code("the user parameter was not received (MASSMS_USER)", False),
    "103": Code("the password parameter was not received (MASSMS_PASSWORD)", False),
    "104": Code("the to parameter was not received", False),
    "105": Code("the text parameter was not received", False),
    "106": Code("the sender id is longer than 11 characters (MASSMS_SENDER_ID)", False),
    "107": Code("wrong access data: check MASSMS_API_ID, MASSMS_USER, MASSMS_PASSWORD", False),
    "108": Code("the product is not active on this account", False),
    "109": Code("the company id is inactive: contact Markettext", False),
    "110": Code("no credits: no balance left to send", False, no_credits=True),
    "111": Code("more than 100 numbers in one request", False),
}
# query.php `STATUS:X` → our status and the manual's meaning.
STATUS_CODES: dict[str, tuple[str, str]] = {
    "0": ("sent", "sent to the platform"),
    "1": ("delivered", "delivered to the recipient"),
    "2": ("failed", "could not reach the phone"),
    "3": ("failed", "invalid mobile number"),
    "4": ("scheduled", "scheduled, waiting to be sent"),
    "5": ("failed", "number blocked for deliveries"),
    "6": ("failed", "no credits: insufficient balance"),
    "7": ("failed", "destination not covered"),
}


def _raise_for_code(body: str, what: str) -> None:
    code = ERROR_CODES.get(body)
    if code is not None:
        error = NoCredits if code.no_credits else Rejected
        raise error(f"massms: {code.meaning} (error {body})", retryable=code.retryable, code=body)


def _check_http(response: HttpResponse, what: str) -> str:
    if response.status >= 500:
        raise BadResponse(f"massms: HTTP {response.status} on {what}", code=str(response.status))
    if response.status >= 400:
        raise ProviderError(f"massms: HTTP {response.status} on {what}", code=str(response.status))
    body = response.body.strip()
    _raise_for_code(body, what)
    return body


def build_send(batch: Sequence[OutboundSMS], settings: MasSMSSettings) -> HttpRequest:
    """One request for messages sharing one text: numbers comma-joined."""
    first = batch[0]
    params = {
        "api_id": settings.api_id,
        "user": settings.user,
        "password": settings.password,
        "to": ",".join(m.phone for m in batch),
        "text": first.text,
        "smstype": "y",
    }
    if settings.sender_id:
        params["senderid"] = settings.sender_id
    if first.send_at is not None:
        params.update(
            smstype="p",
            date_delivery=first.send_at.strftime("%Y-%m-%d"),
            time_delivery=first.send_at.strftime("%H:%M"),
        )
    return HttpRequest("POST", "sendmsg.php", params)


def parse_send(response: HttpResponse, batch: Sequence[OutboundSMS]) -> list[SendResult]:
    """`movil:msgid,movil:msgid,...` → one result per message, matched by number. A number the
    answer does not readably list is unconfirmed, never sent again: an HTTP 2xx answer means
    MasSMS took the request, and may have sent it. Nothing readable at all raises
    Unconfirmed (BadResponse when the answer was not a 2xx)."""
    body = _check_http(response, "sendmsg.php")
    ids: dict[str, list[str]] = {}
    for item in body.split(","):
        phone, sep, msgid = item.strip().partition(":")
        if sep and phone.strip().isdigit() and msgid.strip():
            ids.setdefault(phone.strip(), []).append(msgid.strip())
    if not ids:
        what = "massms: sendmsg.php answered something that is not movil:msgid"
        if 200 <= response.status < 300:
            raise Unconfirmed(f"{what}; {UNCONFIRMED}")
        raise BadResponse(what)
    results = []
    for sms in batch:
        found = ids.get(sms.phone)
        if found:
            results.append(SendResult(sms.id, found.pop(0)))
        else:
            error = f"massms: the answer does not list this number readably; {UNCONFIRMED}"
            results.append(SendResult(sms.id, None, error, unconfirmed=True))
    return results


def parse_status(response: HttpResponse) -> DeliveryStatus | None:
    """`STATUS:X` → a DeliveryStatus; `NOTFOUND` → None."""
    body = _check_http(response, "query.php")
    if body == "NOTFOUND":
        return None
    prefix, _, code = body.partition(":")
    if prefix != "STATUS" or code not in STATUS_CODES:
        raise BadResponse("massms: query.php answered something that is not STATUS:X")
    status, meaning = STATUS_CODES[code]
    return DeliveryStatus(status, meaning)


def parse_balance(response: HttpResponse) -> float:
    body = _check_http(response, "getbalance.php")
    # float() alone would take "nan", "inf" or "1e9" from a garbled answer as a balance.
    if not BALANCE_RE.fullmatch(body):
        raise BadResponse("massms: getbalance.php answered something that is not a number")
    return float(body.replace(",", "."))


class MasSMSClient(Provider):
    name = "massms"
    max_batch = MAX_NUMBERS
    per_message_texts = False
    polls_status = True
    schedules = True

    def __init__(self, settings: MasSMSSettings, transport: HttpTransport | None = None) -> None:
        self.settings = settings
        self.transport = transport or HttpTransport(settings.url, self.name)

    async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
        if not batch:
            return []
        if len({(m.text, m.send_at) for m in batch}) > 1:
            raise ValueError("a MasSMS batch carries one text (and one schedule) for all numbers")
        request = build_send(batch, self.settings)
        return parse_send(await self.transport.call(request), batch)

    async def balance(self) -> float:
        params = {"api_id": self.settings.api_id, "user": self.settings.user}
        return parse_balance(
            await self.transport.call(HttpRequest("GET", "getbalance.php", params))
        )

    async def query_status(self, provider_id: str) -> DeliveryStatus | None:
        params = {"api_id": self.settings.api_id, "user": self.settings.user, "msgid": provider_id}
        return parse_status(await self.transport.call(HttpRequest("GET", "query.php", params)))

    async def aclose(self) -> None:
        await self.transport.aclose()
