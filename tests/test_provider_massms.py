"""MasSMS: requests built, answers parsed (tables, no network), and the client over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime

import pytest

from responder.config import MasSMSSettings
from responder.providers.base import (
    UNCONFIRMED,
    BadResponse,
    ConnectionFailed,
    DeliveryStatus,
    NoCredits,
    OutboundSMS,
    ProviderError,
    Rejected,
    SendResult,
    Throttled,
    Unconfirmed,
)
from responder.providers.massms import (
    ERROR_CODES,
    MasSMSClient,
    build_send,
    parse_balance,
    parse_send,
    parse_status,
)
from responder.providers.transport import HttpRequest, HttpResponse, HttpTransport
from tests.fakes.common import ERROR_PAGE, GARBAGE, MAINTENANCE_PAGE
from tests.fakes.massms import FakeMasSMS
from tests.fakes.server import SwappableApp
from tests.provider_cases import Raises
from tests.provider_cases import check as check_call

A, B, C = "584121234567", "573001234567", "447901234567"
SETTINGS = MasSMSSettings("https://example.test/massms/api", "miempresa", "demo", "secret", None)
MSGID = "a9821bcf4500cc12be5423a2be65a7ed"
HANG_TIMEOUT = 0.1


def sms(text: str, *phones: str, send_at: datetime | None = None) -> list[OutboundSMS]:
    return [OutboundSMS(i, phone, text, send_at) for i, phone in enumerate(phones, start=1)]


def check(expected: Raises | object, call: Callable[[], object]) -> None:
    check_call(expected, call, "massms")


def text(body: str, status: int = 200) -> HttpResponse:
    return HttpResponse(status, body)


# --- requests -----------------------------------------------------------------------------

AUTH = {"api_id": "miempresa", "user": "demo", "password": "secret"}

SEND_REQUESTS = [
    (
        sms("Hola", A),
        SETTINGS,
        {**AUTH, "to": A, "text": "Hola", "smstype": "y"},
    ),
    (
        sms("Hola a todos", A, B, C),
        SETTINGS,
        {**AUTH, "to": f"{A},{B},{C}", "text": "Hola a todos", "smstype": "y"},
    ),
    (
        sms("a|b; c & d", A, B),
        MasSMSSettings(SETTINGS.url, "miempresa", "demo", "secret", "MiTienda"),
        {
            **AUTH,
            "to": f"{A},{B}",
            "text": "a|b; c & d",
            "smstype": "y",
            "senderid": "MiTienda",
        },
    ),
    (
        sms("Mañana", A, B, send_at=datetime(2026, 3, 7, 8, 5)),
        SETTINGS,
        {
            **AUTH,
            "to": f"{A},{B}",
            "text": "Mañana",
            "smstype": "p",
            "date_delivery": "2026-03-07",
            "time_delivery": "08:05",
        },
    ),
    (
        sms("tarde", A, send_at=datetime(2026, 12, 31, 23, 59, 59)),
        SETTINGS,
        {
            **AUTH,
            "to": A,
            "text": "tarde",
            "smstype": "p",
            "date_delivery": "2026-12-31",
            "time_delivery": "23:59",
        },
    ),
]


@pytest.mark.parametrize(
    ("batch", "settings", "params"),
    SEND_REQUESTS,
    ids=["one", "many-comma-joined", "senderid-text-as-is", "scheduled", "scheduled-24h"],
)
def test_build_send(
    batch: list[OutboundSMS], settings: MasSMSSettings, params: dict[str, str]
) -> None:
    assert build_send(batch, settings) == HttpRequest("POST", "sendmsg.php", params)


# --- sendmsg.php answers ------------------------------------------------------------------

THREE = sms("x", A, B, C)
NOT_LISTED = f"massms: the answer does not list this number readably; {UNCONFIRMED}"


def unconfirmed(id: int) -> SendResult:
    return SendResult(id, None, NOT_LISTED, unconfirmed=True)


SEND_CASES: list[tuple[str, HttpResponse, list[OutboundSMS], Raises | list[SendResult]]] = [
    ("one", text(f"{A}:{MSGID}"), sms("x", A), [SendResult(1, MSGID)]),
    (
        "many",
        text(f"{A}:id1,{B}:id2,{C}:id3"),
        THREE,
        [SendResult(1, "id1"), SendResult(2, "id2"), SendResult(3, "id3")],
    ),
    (
        "reordered-with-spaces",
        text(f" {C}:id3, {A}:id1 ,{B}:id2\r\n"),
        THREE,
        [SendResult(1, "id1"), SendResult(2, "id2"), SendResult(3, "id3")],
    ),
    (
        "missing-number",
        text(f"{A}:id1,{C}:id3"),
        THREE,
        [SendResult(1, "id1"), unconfirmed(2), SendResult(3, "id3")],
    ),
    (
        "same-number-twice",
        text(f"{A}:id1,{A}:id2"),
        sms("x", A, A),
        [SendResult(1, "id1"), SendResult(2, "id2")],
    ),
    *[
        (
            f"{code}",
            text(code),
            THREE,
            Raises(NoCredits if code == "110" else Rejected, False, code),
        )
        for code in map(str, range(101, 112))
    ],
    ("code-with-newline", text("107\n"), THREE, Raises(Rejected, False, "107")),
    # HTTP 200 in words that cannot be read: MasSMS may have sent everything.
    ("unknown-code", text("112"), THREE, Raises(Unconfirmed, False, None)),
    ("empty", text(""), THREE, Raises(Unconfirmed, False, None)),
    ("blank", text(" \n"), THREE, Raises(Unconfirmed, False, None)),
    ("plain-ok", text("OK"), THREE, Raises(Unconfirmed, False, None)),
    ("no-msgid", text(f"{A}:"), THREE, Raises(Unconfirmed, False, None)),
    ("plus-number", text(f"+{A}:id1"), THREE, Raises(Unconfirmed, False, None)),
    ("xml", text(GARBAGE), THREE, Raises(Unconfirmed, False, None)),
    ("html-200", text(MAINTENANCE_PAGE), THREE, Raises(Unconfirmed, False, None)),
    ("redirect", text("Moved", 302), THREE, Raises(BadResponse, True, None)),
    # What can be read counts; the rest is unconfirmed, message by message.
    (
        "one-bad-item",
        text(f"{A}:id1,oops"),
        THREE,
        [SendResult(1, "id1"), unconfirmed(2), unconfirmed(3)],
    ),
    (
        "one-item-without-msgid",
        text(f"{A}:id1,{B}:,{C}:id3"),
        THREE,
        [SendResult(1, "id1"), unconfirmed(2), SendResult(3, "id3")],
    ),
    ("html-500", text(ERROR_PAGE, 500), THREE, Raises(BadResponse, True, "500")),
    ("ids-but-500", text(f"{A}:id1", 500), THREE, Raises(BadResponse, True, "500")),
    ("http-503", text("", 503), THREE, Raises(BadResponse, True, "503")),
    ("http-404", text("Not Found", 404), THREE, Raises(ProviderError, False, "404")),
    ("http-403", text("Forbidden", 403), THREE, Raises(ProviderError, False, "403")),
]


@pytest.mark.parametrize(
    ("response", "batch", "expected"),
    [case[1:] for case in SEND_CASES],
    ids=[case[0] for case in SEND_CASES],
)
def test_parse_send(
    response: HttpResponse, batch: list[OutboundSMS], expected: Raises | list[SendResult]
) -> None:
    check(expected, lambda: parse_send(response, batch))


def test_every_manual_error_code_is_in_the_table() -> None:
    assert sorted(ERROR_CODES) == [str(code) for code in range(101, 112)]
    assert [c for c, meaning in ERROR_CODES.items() if meaning.no_credits] == ["110"]
    assert not any(meaning.retryable for meaning in ERROR_CODES.values())


# --- query.php answers --------------------------------------------------------------------

STATUS_CASES: list[tuple[str, HttpResponse, Raises | DeliveryStatus | None]] = [
    ("0-sent", text("STATUS:0"), DeliveryStatus("sent", "sent to the platform")),
    ("1-delivered", text("STATUS:1"), DeliveryStatus("delivered", "delivered to the recipient")),
    ("2-unreachable", text("STATUS:2"), DeliveryStatus("failed", "could not reach the phone")),
    ("3-invalid", text("STATUS:3"), DeliveryStatus("failed", "invalid mobile number")),
    ("4-scheduled", text("STATUS:4"), DeliveryStatus("scheduled", "scheduled, waiting to be sent")),
    ("5-blocked", text("STATUS:5"), DeliveryStatus("failed", "number blocked for deliveries")),
    (
        "6-no-balance",
        text("STATUS:6"),
        DeliveryStatus("failed", "no credits: insufficient balance"),
    ),
    ("7-no-coverage", text("STATUS:7"), DeliveryStatus("failed", "destination not covered")),
    ("newline", text("STATUS:1\n"), DeliveryStatus("delivered", "delivered to the recipient")),
    ("notfound", text("NOTFOUND"), None),
    ("notfound-newline", text("NOTFOUND\r\n"), None),
    ("9-unknown", text("STATUS:9"), Raises(BadResponse, True, None)),
    ("no-code", text("STATUS:"), Raises(BadResponse, True, None)),
    ("two-codes", text("STATUS:1,STATUS:2"), Raises(BadResponse, True, None)),
    ("lowercase", text("status:1"), Raises(BadResponse, True, None)),
    ("107-credentials", text("107"), Raises(Rejected, False, "107")),
    ("empty", text(""), Raises(BadResponse, True, None)),
    ("html-200", text(MAINTENANCE_PAGE), Raises(BadResponse, True, None)),
    ("html-500", text(ERROR_PAGE, 500), Raises(BadResponse, True, "500")),
    ("http-404", text("Not Found", 404), Raises(ProviderError, False, "404")),
]


@pytest.mark.parametrize(
    ("response", "expected"),
    [case[1:] for case in STATUS_CASES],
    ids=[case[0] for case in STATUS_CASES],
)
def test_parse_status(response: HttpResponse, expected: Raises | DeliveryStatus | None) -> None:
    check(expected, lambda: parse_status(response))


# --- getbalance.php answers ---------------------------------------------------------------

BALANCE_CASES: list[tuple[str, HttpResponse, Raises | float]] = [
    ("points", text("1000"), 1000.0),
    ("zero", text("0"), 0.0),
    ("decimal-point", text("12.50"), 12.5),
    ("decimal-comma", text("12,50\n"), 12.5),
    ("negative", text("-3"), -3.0),
    ("107-credentials", text("107"), Raises(Rejected, False, "107")),
    ("nan", text("nan"), Raises(BadResponse, True, None)),
    ("infinity", text("Infinity"), Raises(BadResponse, True, None)),
    ("exponent", text("1e9"), Raises(BadResponse, True, None)),
    ("words", text("saldo: 10"), Raises(BadResponse, True, None)),
    ("empty", text(""), Raises(BadResponse, True, None)),
    ("html-200", text(MAINTENANCE_PAGE), Raises(BadResponse, True, None)),
    ("html-500", text(ERROR_PAGE, 500), Raises(BadResponse, True, "500")),
    ("http-403", text("Forbidden", 403), Raises(ProviderError, False, "403")),
]


@pytest.mark.parametrize(
    ("response", "expected"),
    [case[1:] for case in BALANCE_CASES],
    ids=[case[0] for case in BALANCE_CASES],
)
def test_parse_balance(response: HttpResponse, expected: Raises | float) -> None:
    check(expected, lambda: parse_balance(response))


# --- the client against the fake MasSMS ---------------------------------------------------


@pytest.fixture
def massms(shared_server: tuple[SwappableApp, str]) -> Iterator[tuple[FakeMasSMS, str]]:
    """conftest's `massms` (a fresh fake and its base URL) on one server for the module:
    stopping uvicorn costs 0.1 s, which one server per test would pay some thirty times."""
    current, url = shared_server
    fake = FakeMasSMS()
    current.app = fake.app
    yield fake, f"{url}/massms/api"
    fake.release()
    current.app = None


def settings_for(fake: FakeMasSMS, url: str, sender_id: str | None = "MiTienda") -> MasSMSSettings:
    return MasSMSSettings(url, fake.api_id, fake.user, fake.password, sender_id)


@pytest.fixture
async def client(massms: tuple[FakeMasSMS, str]) -> AsyncIterator[MasSMSClient]:
    fake, url = massms
    client = MasSMSClient(settings_for(fake, url), HttpTransport(url, "massms", timeout=5))
    yield client
    await client.aclose()


async def test_send_many_numbers(massms: tuple[FakeMasSMS, str]) -> None:
    fake, url = massms
    client = MasSMSClient(settings_for(fake, url))
    try:
        results = await client.send(sms("Mañana & más", A, B, C))
    finally:
        await client.aclose()
    assert results == [SendResult(i, s.id) for i, s in enumerate(fake.sent, start=1)]
    assert [(s.phone, s.text, s.senderid, s.smstype) for s in fake.sent] == [
        (phone, "Mañana & más", "MiTienda", "y") for phone in (A, B, C)
    ]
    assert fake.balance == 997
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/massms/api/sendmsg.php")
    assert request.params["to"] == f"{A},{B},{C}"


async def test_scheduled_send_and_status(
    massms: tuple[FakeMasSMS, str], client: MasSMSClient
) -> None:
    fake, _ = massms
    [result] = await client.send(sms("luego", A, send_at=datetime(2030, 1, 2, 8, 30)))
    [sent] = fake.sent
    assert result == SendResult(1, sent.id)
    assert (sent.smstype, sent.date_delivery, sent.time_delivery) == ("p", "2030-01-02", "08:30")
    assert await client.query_status(sent.id) == DeliveryStatus(
        "scheduled", "scheduled, waiting to be sent"
    )


QUERIED = [
    (0, "sent"),
    (1, "delivered"),
    (2, "failed"),
    (3, "failed"),
    (4, "scheduled"),
    (5, "failed"),
    (6, "failed"),
    (7, "failed"),
]


async def test_query_status(massms: tuple[FakeMasSMS, str], client: MasSMSClient) -> None:
    fake, _ = massms
    results = await client.send(sms("x", A, B))
    msgid = results[1].provider_id
    assert msgid is not None
    assert await client.query_status(msgid) == DeliveryStatus("sent", "sent to the platform")
    seen = []
    for code, _status in QUERIED:
        fake.set_status(msgid, code)
        answer = await client.query_status(msgid)
        assert answer is not None
        seen.append((code, answer.status))
    assert seen == QUERIED
    assert await client.query_status("0" * 32) is None
    request = fake.requests[-1]
    assert (request.method, request.path) == ("GET", "/massms/api/query.php")
    assert request.params == {"api_id": "miempresa", "user": "demo", "msgid": "0" * 32}


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("wrong-password", Raises(Rejected, False, "107")),
        ("product-inactive", Raises(Rejected, False, "108")),
        ("company-inactive", Raises(Rejected, False, "109")),
        ("no-balance", Raises(NoCredits, False, "110")),
    ],
    ids=["wrong-password", "product-inactive", "company-inactive", "no-balance"],
)
async def test_send_refused(
    massms: tuple[FakeMasSMS, str], client: MasSMSClient, setup: str, expected: Raises
) -> None:
    fake, _ = massms
    if setup == "wrong-password":
        fake.password = "another"
    elif setup == "product-inactive":
        fake.product_active = False
    elif setup == "company-inactive":
        fake.company_active = False
    else:
        fake.balance = 1
    with pytest.raises(ProviderError) as caught:
        await client.send(sms("x", A, B))
    err = caught.value
    assert (type(err), err.retryable, err.code) == (
        expected.error,
        expected.retryable,
        expected.code,
    )
    assert fake.sent == []


async def test_sender_id_too_long(massms: tuple[FakeMasSMS, str]) -> None:
    fake, url = massms
    client = MasSMSClient(settings_for(fake, url, sender_id="MiTiendaOnline"))
    try:
        with pytest.raises(Rejected) as caught:
            await client.send(sms("x", A))
    finally:
        await client.aclose()
    assert caught.value.code == "106"


async def test_one_text_per_batch(massms: tuple[FakeMasSMS, str], client: MasSMSClient) -> None:
    fake, _ = massms
    with pytest.raises(ValueError, match="a MasSMS batch carries one text"):
        await client.send([OutboundSMS(1, A, "uno"), OutboundSMS(2, B, "dos")])
    assert await client.send([]) == []
    assert fake.requests == []


async def test_balance(massms: tuple[FakeMasSMS, str], client: MasSMSClient) -> None:
    fake, _ = massms
    assert await client.balance() == 1000.0
    await client.send(sms("x", A, B))
    assert await client.balance() == 998.0
    request = fake.requests[-1]
    assert (request.method, request.path) == ("GET", "/massms/api/getbalance.php")
    assert "password" not in request.params  # the manual's balance query takes no password
    fake.user = "other"
    with pytest.raises(Rejected) as caught:
        await client.balance()
    assert (caught.value.code, caught.value.retryable) == ("107", False)


# An answer with HTTP 200 that cannot be read leaves a send unconfirmed (it may have gone out),
# a query just asks again.
ON_SEND = {kind: Raises(Unconfirmed, False, None) for kind in ("html", "empty", "garbage")}
FAULTS = [
    ("http500", Raises(BadResponse, True, "500")),
    ("html", Raises(BadResponse, True, None)),
    ("empty", Raises(BadResponse, True, None)),
    ("garbage", Raises(BadResponse, True, None)),
    ("status:503", Raises(BadResponse, True, "503")),
    ("status:404", Raises(ProviderError, False, "404")),
    ("status:429", Raises(Throttled, True, "429")),
    ("hang", Raises(ConnectionFailed, True, None)),
]


@pytest.mark.parametrize("operation", ["send", "balance", "query_status"])
@pytest.mark.parametrize(("fault", "expected"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_faults(
    massms: tuple[FakeMasSMS, str],
    client: MasSMSClient,
    fault: str,
    expected: Raises,
    operation: str,
) -> None:
    fake, url = massms
    [first] = await client.send(sms("x", A))
    msgid = first.provider_id
    assert msgid is not None

    async def call(client: MasSMSClient) -> object:
        if operation == "send":
            return len(await client.send(sms("y", B)))
        if operation == "balance":
            return await client.balance()
        return await client.query_status(msgid)

    # A hung request fails once the transport's timeout runs out: keep that one short.
    failing = client
    if fault == "hang":
        failing = MasSMSClient(client.settings, HttpTransport(url, "massms", timeout=HANG_TIMEOUT))
    fake.fail_next(fault)
    try:
        with pytest.raises(ProviderError) as caught:
            await call(failing)
    finally:
        if failing is not client:
            await failing.aclose()
    expected = ON_SEND.get(fault, expected) if operation == "send" else expected
    err = caught.value
    assert (type(err), err.retryable, err.code) == (
        expected.error,
        expected.retryable,
        expected.code,
    )
    assert [s.phone for s in fake.sent] == [A]
    # The fault is over: the same call now goes through (a hung request stays hung).
    expected_after = {
        "send": 1,
        "balance": 999.0,
        "query_status": DeliveryStatus("sent", "sent to the platform"),
    }
    assert await call(client) == expected_after[operation]
