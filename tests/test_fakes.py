"""Sanity checks of the fake provider servers used by the rest of the suite."""

from __future__ import annotations

import asyncio
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests import loopback
from tests.fakes.common import GARBAGE, Recorded, SentSms
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS
from tests.fakes.server import FakeServer

AUTH = {"usuario": "demo@example.com", "clave": "secret"}
MS_AUTH = {"api_id": "miempresa", "user": "demo", "password": "secret"}


@pytest.fixture
def massiva() -> Iterator[tuple[FakeMassiva, httpx.Client]]:
    fake = FakeMassiva(credits=10)
    with (
        FakeServer(fake.app) as server,
        loopback.Client(base_url=f"{server.url}/webservices") as client,
    ):
        yield fake, client


@pytest.fixture
def massms() -> Iterator[tuple[FakeMasSMS, httpx.Client]]:
    fake = FakeMasSMS(balance=10)
    with (
        FakeServer(fake.app) as server,
        loopback.Client(base_url=f"{server.url}/massms/api") as client,
    ):
        yield fake, client


def test_massiva_multi_text_send(massiva: tuple[FakeMassiva, httpx.Client]) -> None:
    fake, client = massiva
    texts = ["hola 1", 'a <b> & "c"\nd', "tres"]
    answer = client.post(
        "/SendSms",
        data={**AUTH, "telefonos": "584164248750;584241234567;877668", "texto": "|".join(texts)},
    )
    assert answer.status_code == 200
    root = ET.fromstring(answer.text)
    assert root.findtext("mensaje") == "Envio Exitoso"
    assert root.findtext("status") == "2"
    cells = root.findall("telefonos/celular")
    assert [(c.get("num_celular"), c.get("status"), c.get("texto")) for c in cells] == [
        ("584164248750", "0", texts[0]),
        ("584241234567", "0", texts[1]),
        ("877668", "2", texts[2]),
    ]
    assert re.fullmatch(r"584164248750\d{18}", cells[0].get("sid", ""))
    assert cells[2].get("sid") == "N/A"
    ids = [c.get("id") for c in cells]
    assert len(set(ids)) == 3
    assert fake.sent == [
        SentSms(str(ids[0]), "584164248750", texts[0]),
        SentSms(str(ids[1]), "584241234567", texts[1]),
    ]
    assert fake.credits == 8
    assert fake.requests[0].method == "POST"
    assert fake.requests[0].params["telefonos"] == "584164248750;584241234567;877668"


def test_massiva_errors(massiva: tuple[FakeMassiva, httpx.Client]) -> None:
    fake, client = massiva
    one = {"telefonos": "584164248750", "texto": "hola"}

    def status(params: dict[str, str]) -> str | None:
        return ET.fromstring(client.get("/SendSms", params=params).text).findtext("status")

    assert status({"clave": "secret", **one}) == "-2"
    assert status({**AUTH, "usuario": ""}) == "-2"
    assert status({**AUTH, "texto": "hola"}) == "-3"
    assert status({**AUTH, "clave": "wrong", **one}) == "-1"
    assert status({**AUTH, "telefonos": "584164248750;584241234567", "texto": "a|b|c"}) == "0"
    assert status({**AUTH, "telefonos": "584164248750", "texto": "x" * 161}) == "0"
    fake.credits = 1
    assert status({**AUTH, "telefonos": "584164248750;584241234567", "texto": "hola"}) == "-6"
    fake.company_credits_exhausted = True
    assert status({**AUTH, **one}) == "-5"
    fake.plan_active = False
    assert status({**AUTH, **one}) == "-4"
    assert fake.sent == []
    assert fake.credits == 1


def test_massiva_long_get_and_credits(massiva: tuple[FakeMassiva, httpx.Client]) -> None:
    fake, client = massiva
    long = client.get("/SendSms", params={**AUTH, "telefonos": "584164248750", "texto": "x" * 2100})
    assert long.status_code == 414
    credits = ET.fromstring(client.post("/obtenerCreditoDisponible", data=AUTH).text)
    assert credits.findtext("creditos") == "10"
    assert credits.findtext("mensaje") == "consulta exitosa"
    wrong = ET.fromstring(client.get("/obtenerCreditoDisponible", params={"usuario": "x"}).text)
    assert wrong.findtext("creditos") == "-1"
    assert len(fake.requests) == 3


def test_massms_send_query_balance(massms: tuple[FakeMasSMS, httpx.Client]) -> None:
    fake, client = massms
    answer = client.post(
        "/sendmsg.php", data={**MS_AUTH, "to": "584121234567,573001234567", "text": "Mañana"}
    )
    pairs = [item.split(":") for item in answer.text.split(",")]
    assert [phone for phone, _ in pairs] == ["584121234567", "573001234567"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", msgid) for _, msgid in pairs)
    assert [(s.id, s.phone, s.text) for s in fake.sent] == [
        (msgid, phone, "Mañana") for phone, msgid in pairs
    ]
    ident = {"api_id": "miempresa", "user": "demo"}
    msgid = pairs[0][1]
    assert client.get("/query.php", params={**ident, "msgid": msgid}).text == "STATUS:0"
    fake.deliver_all()
    assert client.get("/query.php", params={**ident, "msgid": msgid}).text == "STATUS:1"
    assert client.get("/query.php", params={**ident, "msgid": "0" * 32}).text == "NOTFOUND"
    assert client.get("/query.php", params={"api_id": "x", "user": "demo"}).text == "107"
    assert client.get("/getbalance.php", params=ident).text == "8"


def test_massms_errors_and_schedule(massms: tuple[FakeMasSMS, httpx.Client]) -> None:
    fake, client = massms

    def send(**params: str) -> str:
        return client.get("/sendmsg.php", params=params).text

    assert send(user="demo", password="secret", to="584121234567", text="x") == "101"
    assert send(**{**MS_AUTH, "password": "bad"}, to="584121234567", text="x") == "107"
    assert send(**MS_AUTH, to="584121234567", text="x", senderid="x" * 12) == "106"
    assert send(**MS_AUTH, to=",".join(["584121234567"] * 101), text="x") == "111"
    assert send(**MS_AUTH, to=",".join(["584121234567"] * 11), text="x") == "110"
    scheduled = send(
        **MS_AUTH,
        to="584121234567",
        text="luego",
        smstype="p",
        date_delivery="2030-01-02",
        time_delivery="08:30",
    )
    msgid = scheduled.split(":")[1]
    ident = {"api_id": "miempresa", "user": "demo", "msgid": msgid}
    assert client.get("/query.php", params=ident).text == "STATUS:4"
    fake.deliver(msgid)
    assert client.get("/query.php", params=ident).text == "STATUS:1"
    assert (fake.sent[0].date_delivery, fake.sent[0].time_delivery) == ("2030-01-02", "08:30")
    assert fake.balance == 9


def test_faults_are_served_and_recorded(massms: tuple[FakeMasSMS, httpx.Client]) -> None:
    fake, client = massms
    for kind in ("http500", "html", "empty", "garbage", "status:503"):
        fake.fail_next(kind)
    answers = [client.get("/getbalance.php", params=MS_AUTH) for _ in range(6)]
    assert [a.status_code for a in answers] == [500, 200, 200, 200, 503, 200]
    assert "<html>" in answers[0].text
    assert "<html>" in answers[1].text
    assert answers[2].text == ""
    assert answers[3].text.startswith("<respuesta><status>")
    assert answers[5].text == "10"
    assert len(fake.requests) == 6
    with pytest.raises(ValueError, match="unknown fault kind 'status:abc'"):
        fake.fail_next("status:abc")


async def test_hang_until_released() -> None:
    fake = FakeMasSMS()
    fake.fail_next("hang")
    with FakeServer(fake.app) as server:
        async with loopback.AsyncClient(base_url=f"{server.url}/massms/api") as client:
            hanging = asyncio.create_task(client.get("/getbalance.php", params=MS_AUTH))
            for _ in range(500):  # until the fake has the request: at most 5 s
                if fake.requests:
                    break
                await asyncio.sleep(0.01)
            assert len(fake.requests) == 1
            other = await client.get("/getbalance.php", params=MS_AUTH)
            assert other.text == "1000"
            assert not hanging.done()
            fake.release()
            assert (await hanging).text == "1000"


def test_delay(massms: tuple[FakeMasSMS, httpx.Client]) -> None:
    fake, client = massms
    fake.delay = 0.2
    started = time.monotonic()
    assert client.get("/getbalance.php", params=MS_AUTH).text == "10"
    assert time.monotonic() - started >= 0.2


async def test_webhooks_reach_the_user() -> None:
    received: list[Recorded] = []

    async def hook(request: Request) -> PlainTextResponse:
        body = (await request.body()).decode()
        received.append(
            Recorded(request.method, request.url.path, dict(request.query_params), body)
        )
        return PlainTextResponse("OK")

    app = Starlette(routes=[Route("/hook", hook, methods=["GET", "POST"])])
    fake = FakeMassiva()
    with FakeServer(app) as server:
        status = await fake.report_status(f"{server.url}/hook", "1000", 2)
        inbound = await fake.send_inbound(
            f"{server.url}/hook", "Mañana", "584121234567", method="POST", encoding="latin-1"
        )
    assert (status.text, inbound.text) == ("OK", "OK")
    params = received[0].params
    assert (params["id"], params["estatus"], params["detalle"]) == ("1000", "2", "ERROR EN ENVIO")
    assert params["usuario"] == "demo@example.com"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", params["fecha_actualizacion"])
    assert received[1].method == "POST"
    assert received[1].raw == "msg=Ma%F1ana&phone=584121234567&linea=584141234567"


def test_garbage_after_sending_sends_then_answers_junk(
    massiva: tuple[FakeMassiva, httpx.Client], massms: tuple[FakeMasSMS, httpx.Client]
) -> None:
    fake, client = massiva
    fake.fail_next("garbage-after-sending")
    answer = client.post("/SendSms", data={**AUTH, "telefonos": "584164248750", "texto": "hola"})
    assert answer.status_code == 200
    with pytest.raises(ET.ParseError):
        ET.fromstring(answer.text)
    assert [s.text for s in fake.sent] == ["hola"] and fake.credits == 9
    other, other_client = massms
    other.fail_next("garbage-after-sending")
    answer = other_client.get("/sendmsg.php", params={**MS_AUTH, "to": "584121234567", "text": "x"})
    assert (answer.status_code, answer.text) == (200, GARBAGE)
    assert [s.text for s in other.sent] == ["x"] and other.balance == 9


def test_massiva_echoes_control_characters_into_unreadable_xml(
    massiva: tuple[FakeMassiva, httpx.Client],
) -> None:
    fake, client = massiva
    send = {**AUTH, "telefonos": "584164248750;584241234567", "texto": "a\x0cb|5 €"}
    with pytest.raises(ET.ParseError):
        ET.fromstring(client.post("/SendSms", data=send).text)
    send["texto"] = "ab|5 €"
    ET.fromstring(client.post("/SendSms", data=send).text)  # clean texts: readable
    fake.echo_gsm7_escapes = True
    with pytest.raises(ET.ParseError):
        ET.fromstring(client.post("/SendSms", data=send).text)
    assert [s.text for s in fake.sent] == ["a\x0cb", "5 €", "ab", "5 €", "ab", "5 €"]


def test_massms_can_leave_numbers_out_of_its_answer(
    massms: tuple[FakeMasSMS, httpx.Client],
) -> None:
    fake, client = massms
    a, b, c = "584121234567", "584141234567", "584161234567"
    fake.unlisted, fake.garbled = {b}, {c}
    answer = client.get("/sendmsg.php", params={**MS_AUTH, "to": f"{a},{b},{c}", "text": "x"})
    items = answer.text.split(",")
    assert [item.split(":")[0] for item in items] == [a, c]
    assert items[1] == f"{c}:"
    assert [s.phone for s in fake.sent] == [a, b, c]
