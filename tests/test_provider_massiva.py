"""Massiva: requests built, answers parsed (tables, no network), and the client over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import pytest

from responder.config import MassivaSettings
from responder.providers.base import (
    UNCONFIRMED,
    BadResponse,
    ConnectionFailed,
    NoCredits,
    OutboundSMS,
    ProviderError,
    Rejected,
    SendResult,
    Throttled,
    Unconfirmed,
)
from responder.providers.massiva import (
    STATUS_CODES,
    MassivaClient,
    build_send,
    parse_balance,
    parse_send,
)
from responder.providers.transport import HttpRequest, HttpResponse, HttpTransport
from tests.fakes.common import ERROR_PAGE, GARBAGE, MAINTENANCE_PAGE
from tests.fakes.massiva import FakeMassiva
from tests.fakes.server import SwappableApp
from tests.provider_cases import Raises
from tests.provider_cases import check as check_call

USER, PASSWORD = "demo@example.com", "secret"
A, B, C = "584164248750", "584265207594", "584242195147"
HANG_TIMEOUT = 0.1


def sms(*pairs: tuple[str, str]) -> list[OutboundSMS]:
    return [OutboundSMS(i, phone, text) for i, (phone, text) in enumerate(pairs, start=1)]


def check(expected: Raises | object, call: Callable[[], object]) -> None:
    check_call(expected, call, "massiva")


# --- requests -----------------------------------------------------------------------------

AUTH = {"usuario": USER, "clave": PASSWORD}

SEND_REQUESTS = [
    (
        sms((A, "hola")),
        {**AUTH, "telefonos": A, "texto": "hola"},
    ),
    (
        sms((A, "uno"), (B, "dos"), (C, "tres")),
        {**AUTH, "telefonos": f"{A};{B};{C}", "texto": "uno|dos|tres"},
    ),
    (
        sms((A, "igual"), (B, "igual"), (C, "igual")),
        {**AUTH, "telefonos": f"{A};{B};{C}", "texto": "igual"},
    ),
    (
        sms((A, "sí | no"), (B, "a|b|c")),
        {**AUTH, "telefonos": f"{A};{B}", "texto": "sí / no|a/b/c"},
    ),
    (
        sms((A, "x|y"), (B, "x/y")),  # equal once made safe: one text for both
        {**AUTH, "telefonos": f"{A};{B}", "texto": "x/y"},
    ),
    (
        sms((A, "uno; dos"), (B, "tres")),
        {**AUTH, "telefonos": f"{A};{B}", "texto": "uno; dos|tres"},
    ),
]


@pytest.mark.parametrize(
    ("batch", "params"),
    SEND_REQUESTS,
    ids=["one", "texts-per-phone", "same-text", "pipe-to-slash", "same-after-pipe", "semicolon"],
)
def test_build_send(batch: list[OutboundSMS], params: dict[str, str]) -> None:
    request = build_send(batch, USER, PASSWORD)
    assert request == HttpRequest("POST", "SendSms", params)
    # However texts look, the request keeps one text per phone (or one for all).
    assert len(request.params["texto"].split("|")) in (1, len(batch))


def test_build_send_group() -> None:
    request = build_send(sms((A, "hola")), USER, PASSWORD, group="clientes")
    assert request.params == {**AUTH, "telefonos": A, "texto": "hola", "grupo": "clientes"}


# --- SendSms answers ----------------------------------------------------------------------


def cell(id: str, phone: str, status: str = "0", texto: str = "t") -> str:
    sid = f"{phone}000420111115161438" if status == "0" else "N/A"
    return (
        f'<celular id="{id}" sid="{sid}" status="{status}" num_celular="{phone}" texto="{texto}"/>'
    )


def answer(status: int | str, *cells: str, mensaje: str = "Envio Exitoso") -> HttpResponse:
    telefonos = f"<telefonos>{''.join(cells)}</telefonos>" if cells else ""
    return HttpResponse(
        200,
        f"<respuesta><mensaje>{mensaje}</mensaje><status>{status}</status>{telefonos}</respuesta>",
    )


def error(status: int, mensaje: str = "error") -> HttpResponse:
    return answer(status, mensaje=mensaje)


THREE = sms((A, "a"), (B, "b"), (C, "c"))
MANUAL = sms((A, "m"), (B, "m"), (C, "m"), ("786786786", "m"), ("877668", "m"))
NONE_SENT = "No se logro ningún envío. Verifique la longitud de el(los) mensaje(s)"
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE respuesta [<!ENTITY a "ja">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    '<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    "<respuesta><mensaje>&d;</mensaje><status>1</status>"
    f"<telefonos>{cell('1', A)}</telefonos></respuesta>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE respuesta [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<respuesta><mensaje>&x;</mensaje><status>1</status>"
    f"<telefonos>{cell('1', A)}</telefonos></respuesta>"
)
PARAMETER_ENTITY = (
    '<!DOCTYPE respuesta [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>'
    "<respuesta><status>1</status></respuesta>"
)


def rejected(id: int, provider_id: str | None, reason: str) -> SendResult:
    return SendResult(id, provider_id, f"massiva: rejected ({reason})", False)


SEND_CASES: list[tuple[str, HttpResponse, Sequence[OutboundSMS], Raises | list[SendResult]]] = [
    (
        "3-all-in-process",
        answer(3, cell("11", A), cell("12", B), cell("13", C)),
        THREE,
        [SendResult(1, "11"), SendResult(2, "12"), SendResult(3, "13")],
    ),
    (
        "manual-example",
        answer(
            3,
            cell("123451", A),
            cell("123452", B),
            cell("123453", C),
            cell("123454", "786786786", "2"),
            cell("123455", "877668", "2"),
        ),
        MANUAL,
        [
            SendResult(1, "123451"),
            SendResult(2, "123452"),
            SendResult(3, "123453"),
            rejected(4, "123454", "number status 2"),
            rejected(5, "123455", "number status 2"),
        ],
    ),
    (
        "1-mixed-0-and-2",
        answer(1, cell("21", A, "2"), cell("22", B, "0"), cell("23", C, "2")),
        THREE,
        [
            rejected(1, "21", "number status 2"),
            SendResult(2, "22"),
            rejected(3, "23", "number status 2"),
        ],
    ),
    (
        "reordered",
        answer(3, cell("33", C), cell("31", A), cell("32", B)),
        THREE,
        [SendResult(1, "31"), SendResult(2, "32"), SendResult(3, "33")],
    ),
    (
        "missing-number",
        answer(2, cell("41", A), cell("43", C)),
        THREE,
        [
            SendResult(1, "41"),
            SendResult(
                2,
                None,
                f"massiva: the answer does not list this number; {UNCONFIRMED}",
                unconfirmed=True,
            ),
            SendResult(3, "43"),
        ],
    ),
    (
        "number-status-the-manual-does-not-name",
        answer(1, cell("81", A), cell("82", B, "7")),
        sms((A, "a"), (B, "b")),
        [
            SendResult(1, "81"),
            SendResult(
                2,
                "82",
                "massiva: the answer gives this number status '7', which the manual does not "
                f"describe; {UNCONFIRMED}",
                unconfirmed=True,
            ),
        ],
    ),
    (
        # Massiva echoes each texto: a form feed in one makes the whole answer unreadable XML.
        "control-character-echoed",
        answer(2, cell("91", A, texto="a"), cell("92", B, texto="b\x0cc")),
        sms((A, "a"), (B, "b\x0cc")),
        Raises(Unconfirmed, False, None),
    ),
    (
        "same-number-twice",
        answer(2, cell("51", A, texto="x"), cell("52", A, texto="y")),
        sms((A, "x"), (A, "y")),
        [SendResult(1, "51"), SendResult(2, "52")],
    ),
    (
        "whitespace-and-xml-declaration",
        HttpResponse(
            200,
            '\n<?xml version="1.0" encoding="UTF-8"?>\n<respuesta>\n <mensaje>Envio Exitoso'
            f"</mensaje>\n <status> 1 </status>\n <telefonos>{cell('61', A)}</telefonos>\n"
            "</respuesta>\n",
        ),
        sms((A, "a")),
        [SendResult(1, "61")],
    ),
    (
        "accepted-without-id",
        answer(1, '<celular sid="x" status="0" num_celular="584164248750" texto="t"/>'),
        sms((A, "a")),
        [SendResult(1, None)],  # taken ("en proceso"): sent, though no report can match it
    ),
    (
        "0-per-number-errors",
        answer(0, cell("71", A, "2"), cell("72", B, "2"), mensaje=NONE_SENT),
        sms((A, "a"), (B, "b")),
        [rejected(1, "71", NONE_SENT), rejected(2, "72", NONE_SENT)],
    ),
    ("0-no-detail", error(0, NONE_SENT), THREE, Raises(Rejected, False, "0")),
    (
        "0-empty-telefonos",
        HttpResponse(200, "<respuesta><status>0</status><telefonos/></respuesta>"),
        THREE,
        Raises(Rejected, False, "0"),
    ),
    ("-1-credentials", error(-1), THREE, Raises(Rejected, False, "-1")),
    ("-2-missing-fields", error(-2), THREE, Raises(Rejected, False, "-2")),
    ("-3-phones-and-text", error(-3), THREE, Raises(Rejected, False, "-3")),
    ("-4-no-plan", error(-4), THREE, Raises(Rejected, False, "-4")),
    ("-5-company-no-credits", error(-5), THREE, Raises(NoCredits, False, "-5")),
    ("-6-user-no-credits", error(-6), THREE, Raises(NoCredits, False, "-6")),
    ("-7-unknown", error(-7), THREE, Raises(Rejected, False, "-7")),
    (
        "-1-with-telefonos",
        answer(-1, cell("1", A, "2")),
        sms((A, "a")),
        Raises(Rejected, False, "-1"),
    ),
    ("empty-body", HttpResponse(200, ""), THREE, Raises(Unconfirmed, False, None)),
    ("blank-body", HttpResponse(200, " \n "), THREE, Raises(Unconfirmed, False, None)),
    ("plain-text", HttpResponse(200, "OK"), THREE, Raises(Unconfirmed, False, None)),
    ("truncated-xml", HttpResponse(200, GARBAGE), THREE, Raises(Unconfirmed, False, None)),
    ("html-200", HttpResponse(200, MAINTENANCE_PAGE), THREE, Raises(Unconfirmed, False, None)),
    (
        "html-200-not-xml",
        HttpResponse(200, "<html><body>Error<br>mantenimiento</body></html>"),
        THREE,
        Raises(Unconfirmed, False, None),
    ),
    ("html-500", HttpResponse(500, ERROR_PAGE), THREE, Raises(BadResponse, True, "500")),
    ("xml-but-500", HttpResponse(500, error(3).body), THREE, Raises(BadResponse, True, "500")),
    ("http-502", HttpResponse(502, ""), THREE, Raises(BadResponse, True, "502")),
    ("http-503", HttpResponse(503, ""), THREE, Raises(BadResponse, True, "503")),
    ("http-404", HttpResponse(404, "Not Found"), THREE, Raises(ProviderError, False, "404")),
    ("http-403", HttpResponse(403, "Forbidden"), THREE, Raises(ProviderError, False, "403")),
    ("billion-laughs", HttpResponse(200, BILLION_LAUGHS), THREE, Raises(Unconfirmed, False, None)),
    (
        "external-entity",
        HttpResponse(200, EXTERNAL_ENTITY),
        THREE,
        Raises(Unconfirmed, False, None),
    ),
    (
        "parameter-entity",
        HttpResponse(200, PARAMETER_ENTITY),
        THREE,
        Raises(Unconfirmed, False, None),
    ),
    (
        "foo-root",
        HttpResponse(200, "<foo><status>3</status></foo>"),
        THREE,
        Raises(Unconfirmed, False, None),
    ),
    ("status-not-numeric", answer("tres"), THREE, Raises(Unconfirmed, False, None)),
    ("status-decimal", answer("3.0"), THREE, Raises(Unconfirmed, False, None)),
    (
        "status-missing",
        HttpResponse(200, "<respuesta><mensaje>x</mensaje></respuesta>"),
        THREE,
        Raises(Unconfirmed, False, None),
    ),
]


@pytest.mark.parametrize(
    ("response", "batch", "expected"),
    [case[1:] for case in SEND_CASES],
    ids=[case[0] for case in SEND_CASES],
)
def test_parse_send(
    response: HttpResponse,
    batch: Sequence[OutboundSMS],
    expected: Raises | list[SendResult],
) -> None:
    check(expected, lambda: parse_send(response, batch))


def test_every_manual_status_is_in_the_table() -> None:
    assert sorted(STATUS_CODES) == [-6, -5, -4, -3, -2, -1, 0]
    assert [s for s, code in STATUS_CODES.items() if code.no_credits] == [-5, -6]
    assert not any(code.retryable for code in STATUS_CODES.values())
    assert "MASSIVA_PASSWORD" in STATUS_CODES[-1].meaning  # names what to fix


def test_parse_send_does_not_expand_entities() -> None:
    with pytest.raises(Unconfirmed) as caught:
        parse_send(HttpResponse(200, BILLION_LAUGHS), THREE)
    assert "jaja" not in str(caught.value)
    with pytest.raises(Unconfirmed) as caught:
        parse_send(HttpResponse(200, EXTERNAL_ENTITY), THREE)
    assert "root:" not in str(caught.value)


# --- obtenerCreditoDisponible answers ----------------------------------------------------


def credits(value: str, mensaje: str = "consulta exitosa") -> HttpResponse:
    return HttpResponse(
        200, f"<respuesta><creditos>{value}</creditos><mensaje>{mensaje}</mensaje></respuesta>"
    )


BALANCE_CASES: list[tuple[str, HttpResponse, Raises | int]] = [
    ("manual-907", credits("907"), 907),
    ("zero", credits("0"), 0),
    ("spaces", credits(" 12 "), 12),
    ("-1-credentials", credits("-1", "Autenticación fallida"), Raises(Rejected, False, "-1")),
    ("not-numeric", credits("muchos"), Raises(BadResponse, True, None)),
    ("missing", HttpResponse(200, "<respuesta/>"), Raises(BadResponse, True, None)),
    ("empty", HttpResponse(200, ""), Raises(BadResponse, True, None)),
    ("html-200", HttpResponse(200, MAINTENANCE_PAGE), Raises(BadResponse, True, None)),
    ("html-500", HttpResponse(500, ERROR_PAGE), Raises(BadResponse, True, "500")),
    ("http-404", HttpResponse(404, "Not Found"), Raises(ProviderError, False, "404")),
    (
        "foo-root",
        HttpResponse(200, "<foo><creditos>9</creditos></foo>"),
        Raises(BadResponse, True, None),
    ),
    (
        "entity",
        HttpResponse(
            200,
            '<!DOCTYPE r [<!ENTITY n "9">]><respuesta><creditos>&n;</creditos></respuesta>',
        ),
        Raises(BadResponse, True, None),
    ),
]


@pytest.mark.parametrize(
    ("response", "expected"),
    [case[1:] for case in BALANCE_CASES],
    ids=[case[0] for case in BALANCE_CASES],
)
def test_parse_balance(response: HttpResponse, expected: Raises | int) -> None:
    check(expected, lambda: parse_balance(response))


# --- the client against the fake Massiva -------------------------------------------------


@pytest.fixture
def massiva(shared_server: tuple[SwappableApp, str]) -> Iterator[tuple[FakeMassiva, str]]:
    """conftest's `massiva` (a fresh fake and its base URL) on one server for the module:
    stopping uvicorn costs 0.1 s, which one server per test would pay some twenty times."""
    current, url = shared_server
    fake = FakeMassiva()
    current.app = fake.app
    yield fake, f"{url}/webservices"
    fake.release()
    current.app = None


@pytest.fixture
async def client(massiva: tuple[FakeMassiva, str]) -> AsyncIterator[MassivaClient]:
    fake, url = massiva
    settings = MassivaSettings(url, fake.user, fake.password, batch_size=50)
    client = MassivaClient(settings, HttpTransport(url, "massiva", timeout=5))
    yield client
    await client.aclose()


async def test_send_many_numbers(massiva: tuple[FakeMassiva, str]) -> None:
    fake, url = massiva
    client = MassivaClient(MassivaSettings(url, fake.user, fake.password, batch_size=50))
    batch = sms((A, "Hola Ana"), (B, "a | b; c"), (C, "Mañana"))
    try:
        results = await client.send(batch)
    finally:
        await client.aclose()
    assert [r.provider_id for r in results] == [s.id for s in fake.sent]
    assert all(r.accepted for r in results)
    assert [r.id for r in results] == [1, 2, 3]
    assert [(s.phone, s.text) for s in fake.sent] == [
        (A, "Hola Ana"),
        (B, "a / b; c"),
        (C, "Mañana"),
    ]
    assert len(set(s.id for s in fake.sent)) == 3
    assert fake.credits == 997
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/webservices/SendSms")
    assert request.params["telefonos"] == f"{A};{B};{C}"


async def test_send_one_number_the_provider_refuses(
    massiva: tuple[FakeMassiva, str], client: MassivaClient
) -> None:
    fake, _ = massiva
    results = await client.send(sms((A, "x"), ("877668", "x")))
    assert results[0] == SendResult(1, fake.sent[0].id)
    assert results[1].provider_id is not None
    assert (results[1].accepted, results[1].retryable) == (False, False)
    assert [s.phone for s in fake.sent] == [A]


async def test_long_number_fails_alone_without_a_request(
    massiva: tuple[FakeMassiva, str], client: MassivaClient
) -> None:
    fake, _ = massiva
    too_long = "5841642487501"  # 13 digits
    results = await client.send(sms((A, "a"), (too_long, "b"), ("58416x248750", "c"), (C, "d")))
    assert [r.accepted for r in results] == [True, False, False, True]
    assert [r.provider_id for r in results] == [fake.sent[0].id, None, None, fake.sent[1].id]
    assert results[1].error is not None and "12 digits" in results[1].error
    assert not results[1].retryable
    [request] = fake.requests
    assert request.params["telefonos"] == f"{A};{C}"
    assert request.params["texto"] == "a|d"

    assert [r.accepted for r in await client.send(sms((too_long, "x")))] == [False]
    assert len(fake.requests) == 1  # nothing valid left: no request at all


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("wrong-password", Raises(Rejected, False, "-1")),
        ("no-plan", Raises(Rejected, False, "-4")),
        ("company-no-credits", Raises(NoCredits, False, "-5")),
        ("user-no-credits", Raises(NoCredits, False, "-6")),
    ],
    ids=["wrong-password", "no-plan", "company-no-credits", "user-no-credits"],
)
async def test_send_refused(
    massiva: tuple[FakeMassiva, str], client: MassivaClient, setup: str, expected: Raises
) -> None:
    fake, _ = massiva
    if setup == "wrong-password":
        fake.password = "another"
    elif setup == "no-plan":
        fake.plan_active = False
    elif setup == "company-no-credits":
        fake.company_credits_exhausted = True
    else:
        fake.credits = 1
    with pytest.raises(ProviderError) as caught:
        await client.send(sms((A, "a"), (B, "b")))
    err = caught.value
    assert (type(err), err.retryable, err.code) == (
        expected.error,
        expected.retryable,
        expected.code,
    )
    assert fake.sent == []


async def test_balance(massiva: tuple[FakeMassiva, str], client: MassivaClient) -> None:
    fake, _ = massiva
    assert await client.balance() == 1000
    await client.send(sms((A, "a"), (B, "b")))
    assert await client.balance() == 998
    assert fake.requests[-1].path == "/webservices/obtenerCreditoDisponible"
    fake.password = "changed"
    with pytest.raises(Rejected) as caught:
        await client.balance()
    assert (caught.value.code, caught.value.retryable) == ("-1", False)


# An answer with HTTP 200 that cannot be read leaves a send unconfirmed (it may have gone out),
# a balance query just asks again.
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


@pytest.mark.parametrize("operation", ["send", "balance"])
@pytest.mark.parametrize(("fault", "expected"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_faults(
    massiva: tuple[FakeMassiva, str],
    client: MassivaClient,
    fault: str,
    expected: Raises,
    operation: str,
) -> None:
    fake, url = massiva

    async def call(client: MassivaClient) -> object:
        if operation == "send":
            return [r.provider_id for r in await client.send(sms((A, "a")))]
        return await client.balance()

    # A hung request fails once the transport's timeout runs out: keep that one short.
    failing = client
    if fault == "hang":
        failing = MassivaClient(
            client.settings, HttpTransport(url, "massiva", timeout=HANG_TIMEOUT)
        )
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
    assert fake.sent == []
    # The fault is over: the same call now goes through (a hung request stays hung).
    assert await call(client) == ([fake.sent[0].id] if operation == "send" else 1000)


async def test_group_setting_reaches_the_request(massiva: tuple[FakeMassiva, str]) -> None:
    fake, url = massiva
    settings = MassivaSettings(url, fake.user, fake.password, 50, group="clientes")
    client = MassivaClient(settings)
    await client.send(sms((A, "a")))
    assert fake.requests[-1].params["grupo"] == "clientes"
    await client.aclose()
