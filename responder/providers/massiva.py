"""Massiva (MassivaMovil): SendSms with per-number texts, XML answers, credit queries."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from responder.config import MassivaSettings
from responder.providers.base import (
    UNCONFIRMED,
    BadResponse,
    NoCredits,
    OutboundSMS,
    Provider,
    ProviderError,
    Rejected,
    SendResult,
    Unconfirmed,
)
from responder.providers.transport import HttpRequest, HttpResponse, HttpTransport

MAX_TEXT = 160
MAX_PHONE_DIGITS = 12


@dataclass(frozen=True)
class Code:
    meaning: str
    retryable: bool
    no_credits: bool = False


# The manual's overall `status` codes (>0 is the number of messages sent).
STATUS_CODES: dict[int, Code] = {
    0: Code("no message was sent: check the texts' length and the numbers", False),
    -1: Code("authentication failed: wrong MASSIVA_USER or MASSIVA_PASSWORD", False),
    -2: Code("missing fields (usuario, clave, telefonos, texto)", False),
    -3: Code("the telefonos and texto fields are required", False),
    -4: Code("the company has no active SMS plan", False),
    -5: Code("no credits: the company has no SMS left", False, no_credits=True),
    -6: Code("no credits: the user has no SMS left", False, no_credits=True),
}
PHONE_ACCEPTED = "0"  # "en proceso"
PHONE_FAILED = "2"


@dataclass(frozen=True)
class Celular:
    """One `<celular>` of the answer."""

    id: str
    sid: str
    status: str
    num_celular: str
    texto: str


def _valid_phone(phone: str) -> bool:
    # isdigit() alone accepts "²" and other non-ASCII digits.
    return phone.isascii() and phone.isdigit() and len(phone) <= MAX_PHONE_DIGITS


def safe_text(text: str) -> str:
    """`|` separates texts in `texto`, so one inside a text would split it in two: it becomes
    `/`. `;` only separates numbers and is left alone."""
    return text.replace("|", "/")


def build_send(
    batch: Sequence[OutboundSMS], user: str, password: str, group: str | None = None
) -> HttpRequest:
    """One POST carrying every message: numbers `;`-joined, one text per number `|`-joined
    (a single text when all are the same, which the manual also allows)."""
    texts = [safe_text(m.text) for m in batch]
    params = {
        "usuario": user,
        "clave": password,
        "telefonos": ";".join(m.phone for m in batch),
        "texto": texts[0] if len(set(texts)) == 1 else "|".join(texts),
    }
    if group:
        params["grupo"] = group
    return HttpRequest("POST", "SendSms", params)


Unreadable = type[BadResponse] | type[Unconfirmed]


def _xml(response: HttpResponse, what: str, unreadable: Unreadable = BadResponse) -> Element:
    """The answer's <respuesta>; an answer that is not one raises `unreadable`."""
    if response.status >= 500:
        raise BadResponse(f"massiva: HTTP {response.status} on {what}", code=str(response.status))
    if response.status >= 400:
        raise ProviderError(f"massiva: HTTP {response.status} on {what}", code=str(response.status))
    try:
        root: Element = fromstring(response.body.strip())
    except (ParseError, DefusedXmlException, ValueError):
        raise unreadable(f"massiva: {what} answered something that is not its XML") from None
    if root.tag != "respuesta":
        raise unreadable(f"massiva: {what} answered <{root.tag}>, expected <respuesta>")
    return root


def _int(root: Element, tag: str, what: str, unreadable: Unreadable = BadResponse) -> int:
    value = (root.findtext(tag) or "").strip()
    try:
        return int(value)
    except ValueError:
        raise unreadable(f"massiva: {what} answer has no numeric <{tag}>") from None


def parse_send(response: HttpResponse, batch: Sequence[OutboundSMS]) -> list[SendResult]:
    """Per-message results of a SendSms answer; raises ProviderError for a failed request.
    An HTTP 2xx answer that cannot be read raises Unconfirmed: Massiva may have sent it all."""
    unreadable: Unreadable = Unconfirmed if 200 <= response.status < 300 else BadResponse
    try:
        root = _xml(response, "SendSms", unreadable)
        status = _int(root, "status", "SendSms", unreadable)
    except Unconfirmed as err:
        raise Unconfirmed(f"{err.message}; {UNCONFIRMED}") from None
    message = (root.findtext("mensaje") or "").strip()
    # Status 0 with no per-number detail is a whole-request refusal like the negative codes.
    if status < 0 or (status == 0 and root.find("telefonos/celular") is None):
        code = STATUS_CODES.get(status, Code(f"unknown status {status}", False))
        text = f"massiva: {code.meaning} (status {status}: {message})"
        error = NoCredits if code.no_credits else Rejected
        raise error(text, retryable=code.retryable, code=str(status))
    celulares = [
        Celular(*(c.get(k, "") for k in ("id", "sid", "status", "num_celular", "texto")))
        for c in root.iter("celular")
    ]
    # Answers list numbers in request order; match by number so a reordered answer still fits.
    by_phone: dict[str, deque[Celular]] = defaultdict(deque)
    for celular in celulares:
        by_phone[celular.num_celular.strip()].append(celular)
    results = []
    for sms in batch:
        queue = by_phone.get(sms.phone)
        if not queue:
            doubt = f"massiva: the answer does not list this number; {UNCONFIRMED}"
            results.append(SendResult(sms.id, None, doubt, unconfirmed=True))
            continue
        celular = queue.popleft()
        if celular.status == PHONE_ACCEPTED:
            # Taken ("en proceso"); without an id no delivery report can be matched to it.
            results.append(SendResult(sms.id, celular.id or None))
        elif celular.status == PHONE_FAILED:
            # With some numbers sent, <mensaje> says "Envio Exitoso": it only explains status 0.
            reason = message if status == 0 and message else f"number status {celular.status}"
            results.append(
                SendResult(sms.id, celular.id or None, f"massiva: rejected ({reason})", False)
            )
        else:
            doubt = (
                f"massiva: the answer gives this number status {celular.status!r}, which "
                f"the manual does not describe; {UNCONFIRMED}"
            )
            results.append(SendResult(sms.id, celular.id or None, doubt, unconfirmed=True))
    return results


def parse_balance(response: HttpResponse) -> int:
    root = _xml(response, "obtenerCreditoDisponible")
    credits = _int(root, "creditos", "obtenerCreditoDisponible")
    if credits < 0:
        message = (root.findtext("mensaje") or "").strip()
        raise Rejected(
            f"massiva: authentication failed: wrong MASSIVA_USER or MASSIVA_PASSWORD ({message})",
            code=str(credits),
        )
    return credits


class MassivaClient(Provider):
    name = "massiva"
    per_message_texts = True

    def __init__(self, settings: MassivaSettings, transport: HttpTransport | None = None) -> None:
        self.settings = settings
        self.max_batch = settings.batch_size
        self.transport = transport or HttpTransport(settings.url, self.name)

    async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
        invalid = [m for m in batch if not _valid_phone(m.phone)]
        results = {
            m.id: SendResult(m.id, None, f"massiva: numbers have at most {MAX_PHONE_DIGITS} digits")
            for m in invalid
        }
        valid = [m for m in batch if m.id not in results]
        if valid:
            request = build_send(
                valid, self.settings.user, self.settings.password, self.settings.group
            )
            for result in parse_send(await self.transport.call(request), valid):
                results[result.id] = result
        return [results[m.id] for m in batch]

    async def balance(self) -> float:
        request = HttpRequest(
            "POST",
            "obtenerCreditoDisponible",
            {"usuario": self.settings.user, "clave": self.settings.password},
        )
        return parse_balance(await self.transport.call(request))

    async def aclose(self) -> None:
        await self.transport.aclose()
