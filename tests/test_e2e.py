"""From a Massiva webhook to the fake Massiva's received request to the API's view."""

from __future__ import annotations

from collections.abc import Callable

from tests import loopback
from tests.conftest import RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva


def test_inbound_keyword_reply_goes_out_through_massiva(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    response = loopback.get(
        app.webhook(),
        params={"msg": "¿A QUÉ HORA abren?", "phone": "584121234567", "linea": "584141234567"},
    )
    assert response.status_code == 200
    assert response.text == "OK"
    messages = app.wait_for("584121234567", lambda m: len(m) == 2 and m[1]["status"] == "sent")
    assert [m["direction"] for m in messages] == ["in", "out"]
    assert messages[0]["text"] == "¿A QUÉ HORA abren?"
    assert messages[0]["rule"] == "horario"
    assert messages[1]["text"] == "Abrimos de lunes a viernes, 8:00 a 17:00."
    assert messages[1]["provider"] == "massiva"
    assert [(s.phone, s.text) for s in fake.sent] == [
        ("584121234567", "Abrimos de lunes a viernes, 8:00 a 17:00.")
    ]
    assert messages[1]["provider_id"] == fake.sent[0].id
