"""Every error a provider or the outbox produces has a plain Spanish reason: the providers'
codes are produced through their own parsers (and the transport through real sockets), so a
code added to a provider module without a sentence here fails."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from responder import failures
from responder.config import MassivaSettings
from responder.failures import MASSIVA_STATUS, MASSMS_ERRORS, MASSMS_STATUSES, UNKNOWN, reason
from responder.providers import massiva, massms
from responder.providers.base import OutboundSMS, ProviderError
from responder.providers.transport import HttpResponse, HttpTransport
from responder.store.models import OutboxItem
from responder.workers.outbox import _expiry_error
from tests.fakes.massiva import SEND_MESSAGES, FakeMassiva

SMS = [OutboundSMS(1, "584121234567", "hola")]


def test_every_provider_code_has_a_sentence() -> None:
    assert set(MASSIVA_STATUS) == set(massiva.STATUS_CODES)
    assert set(MASSMS_ERRORS) == set(massms.ERROR_CODES)
    failed = {code for code, (status, _) in massms.STATUS_CODES.items() if status == "failed"}
    assert set(MASSMS_STATUSES) == failed


@pytest.mark.parametrize("status", sorted(massiva.STATUS_CODES))
def test_massiva_send_codes(status: int) -> None:
    message = SEND_MESSAGES[status]
    body = f"<respuesta><mensaje>{message}</mensaje><status>{status}</status></respuesta>"
    with pytest.raises(ProviderError) as caught:
        massiva.parse_send(HttpResponse(200, body), SMS)
    assert reason(caught.value.message, "massiva") == MASSIVA_STATUS[status]


def test_massiva_credits_read_plainly() -> None:
    assert reason("massiva: no credits: the company has no SMS left (status -5: x)") == (
        "Sin saldo en Massiva (la empresa no tiene SMS)"
    )
    assert reason("massiva: unknown status -9 (status -9: ?)") == "Massiva respondió el código -9"


def test_massiva_per_number_outcomes() -> None:
    rejected = (
        "<respuesta><mensaje>Envio Exitoso</mensaje><status>0</status><telefonos>"
        '<celular id="1" sid="N/A" status="2" num_celular="584121234567" texto="hola"/>'
        "</telefonos></respuesta>"
    )
    [result] = massiva.parse_send(HttpResponse(200, rejected), SMS)
    assert reason(result.error, "massiva") == "Texto o número rechazado por Massiva"
    unlisted = "<respuesta><mensaje>x</mensaje><status>1</status><telefonos/></respuesta>"
    [doubt] = massiva.parse_send(HttpResponse(200, unlisted.replace("<telefonos/>", "")), SMS)
    assert doubt.unconfirmed
    assert reason(doubt.error, "massiva") == failures.OUTCOMES[0][1]
    with pytest.raises(ProviderError) as unreadable:
        massiva.parse_send(HttpResponse(200, "<html>no</html>"), SMS)
    assert reason(unreadable.value.message, "massiva") == failures.OUTCOMES[0][1]


async def test_a_number_too_long_for_massiva() -> None:
    client = massiva.MassivaClient(
        MassivaSettings(url="http://127.0.0.1:9", user="u", password="p", batch_size=50),
    )
    try:
        [result] = await client.send([OutboundSMS(1, "5841212345678", "hola")])
    finally:
        await client.aclose()
    assert reason(result.error, "massiva") == "Número inválido (más de 12 dígitos)"


@pytest.mark.parametrize("code", sorted(massms.ERROR_CODES))
def test_massms_error_codes(code: str) -> None:
    with pytest.raises(ProviderError) as caught:
        massms.parse_send(HttpResponse(200, code), SMS)
    assert reason(caught.value.message, "massms") == MASSMS_ERRORS[code]


@pytest.mark.parametrize("code", sorted(MASSMS_STATUSES))
def test_massms_delivery_failures(code: str) -> None:
    found = massms.parse_status(HttpResponse(200, f"STATUS:{code}"))
    assert found is not None and found.status == "failed"
    assert reason(found.detail, "massms") == MASSMS_STATUSES[code]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, "<html>oops</html>", "El proveedor tuvo una falla (error del servidor)"),
        (403, "", "El proveedor rechazó la petición"),
        (502, "", "El proveedor tuvo una falla (error del servidor)"),
    ],
)
def test_http_answers(status: int, body: str, expected: str) -> None:
    for parse, provider in ((massiva.parse_send, "massiva"), (massms.parse_send, "massms")):
        with pytest.raises(ProviderError) as caught:
            parse(HttpResponse(status, body), SMS)
        assert reason(caught.value.message, provider) == expected


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _transport_error(url: str) -> str:
    transport = HttpTransport(url, "massiva", timeout=0.1)
    try:
        with pytest.raises(ProviderError) as caught:
            await transport.call(massiva.build_send(SMS, "u", "p"))
    finally:
        await transport.aclose()
    return caught.value.message


async def test_a_provider_that_does_not_answer(closed_url: str, silent_url: str) -> None:
    assert (
        reason(await _transport_error(closed_url))
        == "El proveedor no respondió: no se pudo conectar"
    )
    assert reason(await _transport_error(silent_url)) == "El proveedor no respondió a tiempo"


async def test_a_provider_that_asks_to_slow_down(massiva: tuple[FakeMassiva, str]) -> None:
    fake, url = massiva
    fake.fail_next("status:429")
    assert reason(await _transport_error(url)) == "El proveedor pidió enviar más despacio"


def _item(origin: str) -> OutboxItem:
    return OutboxItem(
        1, "584121234567", "x", "massiva", 1, datetime(2026, 1, 1, tzinfo=UTC), origin
    )


@pytest.mark.parametrize(
    ("error", "provider", "expected"),
    [
        (
            _expiry_error(_item("auto")),
            "massiva",
            "Caducó: la respuesta automática esperó demasiado",
        ),
        (
            _expiry_error(_item("agent")),
            "massiva",
            "Caducó: el mensaje esperó demasiado para enviarse",
        ),
        ("provider massms is not configured", "massms", "El proveedor elegido no está configurado"),
        (
            "interrupted while sending; not retried (delivery: at_most_once)",
            "massiva",
            "Se interrumpió al enviarse y no se reintentó",
        ),
        ("not sent: the number opted out", "massiva", "No enviado: el número se dio de baja"),
        ("internal error: boom", "massiva", "Error interno de responder (vea el registro)"),
        ("ERROR EN ENVIO", "massiva", failures.MASSIVA_REPORT),  # Massiva's delivery report
        ("delivery failed", "massiva", "El proveedor informa que no se entregó"),
        ("cancelled by ana", "massiva", "Cancelado por ana"),
        (
            "massiva: no credits: the company has no SMS left (status -5: x) (failing over to "
            "massms)",
            "massms",
            "Sin saldo en Massiva (la empresa no tiene SMS)",
        ),
        ("something nobody wrote", "sandbox", UNKNOWN),
        (None, "massiva", None),
        ("", "massiva", None),
    ],
)
def test_outbox_outcomes(error: str | None, provider: str, expected: str | None) -> None:
    assert reason(error, provider) == expected


def test_sent_and_delivered_are_told_apart() -> None:
    assert "no confirma" in failures.STATUS_HELP["sent"]
    assert "confirmó que llegó" in failures.STATUS_HELP["delivered"]
