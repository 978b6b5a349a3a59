"""The HTTP transport: failures become our errors; credentials never reach logs or errors."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import quote, quote_plus, urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from responder.config import MassivaSettings, MasSMSSettings
from responder.providers.base import (
    BadResponse,
    ConnectionFailed,
    OutboundSMS,
    Provider,
    ProviderError,
    Rejected,
    Throttled,
)
from responder.providers.massiva import MassivaClient
from responder.providers.massms import MasSMSClient
from responder.providers.transport import HttpRequest, HttpResponse, HttpTransport
from tests.fakes.server import FakeServer

TIMEOUT = 0.1  # against a socket that never answers


async def echo(request: Request) -> Response:
    form = await request.form()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "form": {k: str(v) for k, v in form.items()},
        }
    )


def raw(content_type: str, body: bytes, status: int = 200) -> Callable[[Request], Response]:
    # `headers=` rather than `media_type=`: Starlette would add "charset=utf-8" to text/*.
    def endpoint(request: Request) -> Response:
        return Response(body, status_code=status, headers={"content-type": content_type})

    return endpoint


APP = Starlette(
    routes=[
        Route("/api/echo", echo, methods=["GET", "POST"]),
        Route("/api/slow-down", raw("text/plain", b"Too Many", 429), methods=["GET", "POST"]),
        Route("/api/broken", raw("text/html", b"<h1>Internal Server Error</h1>", 500)),
        Route("/api/utf8", raw("text/plain; charset=utf-8", "Envío ñ".encode())),
        Route("/api/undeclared-utf8", raw("text/xml", "Envío ñ".encode())),
        Route("/api/undeclared-latin1", raw("text/xml", "Envío ñ".encode("latin-1"))),
        Route("/api/declared-latin1", raw("text/plain; charset=ISO-8859-1", b"Env\xedo \xf1")),
        Route("/api/unknown-charset", raw("text/plain; charset=x-klingon", "Envío ñ".encode())),
    ]
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with FakeServer(APP) as server:
        yield f"{server.url}/api"


@pytest.fixture
async def transport(base_url: str) -> AsyncIterator[HttpTransport]:
    transport = HttpTransport(base_url + "/", "massiva", timeout=5)
    yield transport
    await transport.aclose()


@pytest.fixture
def closed_url() -> str:
    """A local URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/webservices"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A local URL that accepts connections (the kernel's backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(32)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/webservices"


# --- the transport alone ------------------------------------------------------------------


async def test_get_puts_params_in_the_query(transport: HttpTransport) -> None:
    response = await transport.call(HttpRequest("GET", "/echo", {"a": "1 2", "b": "ñ&="}))
    assert response.status == 200
    assert httpx.Response(200, text=response.body).json() == {
        "method": "GET",
        "path": "/api/echo",
        "query": {"a": "1 2", "b": "ñ&="},
        "form": {},
    }


async def test_post_puts_params_in_the_form_body(transport: HttpTransport) -> None:
    response = await transport.call(HttpRequest("POST", "echo", {"clave": "p@ss&w=rd", "t": "a|b"}))
    assert httpx.Response(200, text=response.body).json() == {
        "method": "POST",
        "path": "/api/echo",
        "query": {},
        "form": {"clave": "p@ss&w=rd", "t": "a|b"},
    }


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("utf8", HttpResponse(200, "Envío ñ")),
        ("undeclared-utf8", HttpResponse(200, "Envío ñ")),
        ("undeclared-latin1", HttpResponse(200, "Envío ñ")),
        ("declared-latin1", HttpResponse(200, "Envío ñ")),
        ("unknown-charset", HttpResponse(200, "Envío ñ")),
        ("broken", HttpResponse(500, "<h1>Internal Server Error</h1>")),
    ],
    ids=["utf8", "undeclared-utf8", "undeclared-latin1", "declared-latin1", "bad-charset", "500"],
)
async def test_answers_are_decoded_never_raised(
    transport: HttpTransport, path: str, expected: HttpResponse
) -> None:
    assert await transport.call(HttpRequest("GET", path)) == expected


async def test_429_is_throttled(transport: HttpTransport) -> None:
    with pytest.raises(Throttled) as caught:
        await transport.call(HttpRequest("POST", "slow-down", {"clave": "x"}))
    assert (caught.value.retryable, caught.value.code) == (True, "429")
    assert str(caught.value) == "massiva: HTTP 429, too many requests"


async def test_connection_refused(closed_url: str) -> None:
    transport = HttpTransport(closed_url, "massms", timeout=TIMEOUT)
    try:
        with pytest.raises(ConnectionFailed) as caught:
            await transport.call(HttpRequest("GET", "getbalance.php", {"user": "u"}))
    finally:
        await transport.aclose()
    assert (caught.value.retryable, caught.value.code) == (True, None)
    assert str(caught.value) == "massms: ConnectError"


async def test_timeout(silent_url: str) -> None:
    transport = HttpTransport(silent_url, "massiva", timeout=TIMEOUT)
    try:
        with pytest.raises(ConnectionFailed) as caught:
            await transport.call(HttpRequest("POST", "SendSms", {"clave": "x"}))
    finally:
        await transport.aclose()
    assert caught.value.retryable
    assert str(caught.value) == "massiva: no answer in time (ReadTimeout)"


# --- credentials never leak ----------------------------------------------------------------

# Characters that URL-encoding changes, so that encoded copies are looked for too.
PASSWORD = "S3cr3t p@ss&w=rd/ñ"
WRONG_PASSWORD = "Wr0ng p@ss&w=rd/ñ"


def secrets_of(password: str) -> list[str]:
    encoded = [quote(password, safe=""), quote_plus(password), quote(password.encode("latin-1"))]
    return [
        password,
        *encoded,
        urlencode({"usuario": "demo@example.com", "clave": password}),
        urlencode({"api_id": "miempresa", "user": "demo", "password": password}),
        *(f"{field}={value}" for field in ("clave", "password") for value in encoded),
    ]


def exception_texts(exc: BaseException) -> list[str]:
    """What an error shows about itself and everything chained to it."""
    texts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(vars(current)), repr(current.args)]
        if isinstance(current, httpx.RequestError):  # carries the request, URL and body
            texts += [str(current.request.url), current.request.content.decode("latin-1")]
        current = current.__cause__ or current.__context__
    return texts


def massiva_client(url: str, password: str) -> MassivaClient:
    settings = MassivaSettings(url, "demo@example.com", password, batch_size=50)
    return MassivaClient(settings, HttpTransport(url, "massiva", timeout=TIMEOUT))


def massms_client(url: str, password: str) -> MasSMSClient:
    settings = MasSMSSettings(url, "miempresa", "demo", password, "MiTienda")
    return MasSMSClient(settings, HttpTransport(url, "massms", timeout=TIMEOUT))


Scenario = Callable[[pytest.FixtureRequest], list[tuple[Provider, type[ProviderError]]]]


def refused(request: pytest.FixtureRequest) -> list[tuple[Provider, type[ProviderError]]]:
    url = request.getfixturevalue("closed_url")
    return [
        (massiva_client(url, PASSWORD), ConnectionFailed),
        (massms_client(url, PASSWORD), ConnectionFailed),
    ]


def timeout(request: pytest.FixtureRequest) -> list[tuple[Provider, type[ProviderError]]]:
    url = request.getfixturevalue("silent_url")
    return [
        (massiva_client(url, PASSWORD), ConnectionFailed),
        (massms_client(url, PASSWORD), ConnectionFailed),
    ]


def http500(request: pytest.FixtureRequest) -> list[tuple[Provider, type[ProviderError]]]:
    fake_massiva, massiva_url = request.getfixturevalue("massiva")
    fake_massms, massms_url = request.getfixturevalue("massms")
    fake_massiva.password = fake_massms.password = PASSWORD
    for fake in (fake_massiva, fake_massms):
        fake.fail_next("http500", times=10)
    return [
        (massiva_client(massiva_url, PASSWORD), BadResponse),
        (massms_client(massms_url, PASSWORD), BadResponse),
    ]


def wrong_password(request: pytest.FixtureRequest) -> list[tuple[Provider, type[ProviderError]]]:
    fake_massiva, massiva_url = request.getfixturevalue("massiva")
    fake_massms, massms_url = request.getfixturevalue("massms")
    fake_massiva.password = fake_massms.password = PASSWORD
    fake_massms.user = "someone-else"  # so that the balance query (no password) is refused too
    return [
        (massiva_client(massiva_url, WRONG_PASSWORD), Rejected),
        (massms_client(massms_url, WRONG_PASSWORD), Rejected),
    ]


@pytest.mark.parametrize(
    "scenario", [refused, timeout, http500, wrong_password], ids=lambda s: s.__name__
)
async def test_credentials_never_reach_logs_or_errors(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, scenario: Scenario
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "responder"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[ProviderError] = []
    for provider, expected in scenario(request):
        try:
            for operation in ("send", "balance"):
                with pytest.raises(ProviderError) as caught:
                    if operation == "send":
                        await provider.send([OutboundSMS(1, "584121234567", "hola")])
                    else:
                        await provider.balance()
                assert type(caught.value) is expected, (operation, caught.value)
                errors.append(caught.value)
        finally:
            await provider.aclose()

    assert len(errors) == 4
    # Proof that the capture works: httpcore traces every connection attempt at DEBUG, and
    # httpx logs each answered request at INFO (told apart by logger, not by their wording).
    loggers = {(r.name.split(".")[0], r.levelno) for r in caplog.records}
    assert ("httpcore", logging.DEBUG) in loggers
    if scenario in (http500, wrong_password):
        assert ("httpx", logging.INFO) in loggers
    secrets = secrets_of(PASSWORD) + secrets_of(WRONG_PASSWORD)
    for secret in secrets:
        assert secret not in caplog.text
        for err in errors:
            for text in exception_texts(err):
                assert secret not in text, (err, text)
