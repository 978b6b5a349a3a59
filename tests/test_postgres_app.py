"""The whole app on PostgreSQL, over real HTTP with the fake Massiva: webhooks to replies and
delivery reports, the API, an admin's sign-in and reply, the CLI's send and export, and two
instances sharing the database."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner

from responder.cli import main
from responder.store.postgres import PostgresStore
from tests import loopback
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, RunningApp, massiva_env
from tests.fakes.massiva import DELIVERED_LINE, FakeMassiva
from tests.test_admin import post, sign_in

PHONE = "584121234567"


def test_a_webhook_is_answered_through_massiva_and_its_report_recorded(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    app = start_app(backend="postgres", **massiva_env(url, fake))
    assert isinstance(app.service.store, PostgresStore)
    params = {"msg": "¿A qué hora abren?", "phone": PHONE, "linea": "584141234567"}
    response = loopback.get(app.webhook(), params=params)
    assert (response.status_code, response.text) == (200, "OK")
    messages = app.wait_for(PHONE, lambda m: len(m) == 2 and m[1]["status"] == "sent")
    assert [(m["direction"], m["rule"]) for m in messages] == [
        ("in", "horario"),
        ("out", "horario"),
    ]
    assert [s.text for s in fake.sent] == ["Abrimos de lunes a viernes, 8:00 a 17:00."]
    assert messages[1]["provider_id"] == fake.sent[0].id
    assert messages[0]["created_at"] == "2026-11-23T14:00:00.000000Z"
    report = {"id": fake.sent[0].id, "estatus": "1", "detalle": DELIVERED_LINE}
    assert loopback.get(app.webhook("/status"), params=report).text == "OK"
    delivered = app.wait_for(PHONE, lambda m: m[1]["status"] == "delivered")
    assert delivered[1]["line"] == DELIVERED_LINE
    assert loopback.get(app.webhook(), params=params).status_code == 200  # a retry: answered once
    assert len(app.messages(PHONE)) == 2
    health = loopback.get(f"{app.url}/healthz")
    assert (health.status_code, health.json()["status"]) == (200, "ok")


def test_the_api_and_an_admin_reply(start_app: Callable[..., RunningApp]) -> None:
    app = start_app(backend="postgres")
    assert loopback.get(app.webhook(), params={"msg": "asesor", "phone": PHONE}).status_code == 200
    with app.api() as api:
        [conversation] = api.get("/api/conversations").json()["conversations"]
        assert (conversation["phone"], conversation["mode"]) == (PHONE, "human")
        sent = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "Hola, soy Ana"})
        assert sent.status_code == 202
        message_id = sent.json()["message"]["id"]
        app.wait_for(PHONE, lambda m: m[-1]["status"] == "delivered")
        detail = api.get(f"/api/messages/{message_id}").json()
        assert [a["outcome"] for a in detail["attempts"]] == ["delivered"]
        assert api.post(f"/api/conversations/{PHONE}/mode", json={"mode": "bot"}).status_code == 200
    with closing(sign_in(app)) as staff:
        page = f"/admin/conversations/{PHONE}"
        response = post(staff, f"{page}/reply", page, text="¿En qué le ayudo?")
        assert (response.status_code, response.headers["location"]) == (303, f"{page}?ok=sent")
        assert "Hola, soy Ana" in staff.get(page).text
        assert staff.get("/admin/dashboard").status_code == 200
    messages = app.wait_for(PHONE, lambda m: m[-1]["status"] == "delivered")
    assert [(m["origin"], m["text"]) for m in messages[-2:]] == [
        ("agent", "Hola, soy Ana"),
        ("agent", "¿En qué le ayudo?"),
    ]


def test_cli_send_and_export(workdir: Path, postgres_url: str) -> None:
    env = {
        "RESPONDER_DATABASE": postgres_url,
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    runner = CliRunner()
    sent = runner.invoke(main, ["send", "0412-123.45.67", "Su pedido está listo"], env=env)
    assert (sent.exit_code, sent.output.strip()) == (0, "queued message(s) 1")
    exported = runner.invoke(main, ["export", "--format", "jsonl"], env=env)
    assert exported.exit_code == 0, exported.output
    [conversation] = [json.loads(line) for line in exported.output.splitlines()]
    assert (conversation["phone"], conversation["fields"]) == (PHONE, {})
    [row] = conversation["messages"]
    assert (row["text"], row["status"], row["origin"]) == ("Su pedido esta listo", "queued", "cli")
    assert row["created_at"].endswith("Z")
    csv_out = runner.invoke(main, ["export"], env=env)
    assert csv_out.exit_code == 0 and csv_out.output.splitlines()[1].split(",")[1] == PHONE


def test_two_instances_share_the_database(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    first = start_app(backend="postgres", **massiva_env(url, fake))
    second = start_app(backend="postgres", **massiva_env(url, fake))
    params = {"msg": "horario", "phone": PHONE}
    assert loopback.get(first.webhook(), params=params).status_code == 200
    assert loopback.get(second.webhook(), params=params).status_code == 200  # the provider's retry
    second.wait_for(PHONE, lambda m: m[-1]["status"] == "sent")
    assert len(fake.sent) == 1 and len(first.messages(PHONE)) == 2
    with closing(sign_in(first)) as staff:  # a session opened on one instance holds on both
        cookie = {"responder_admin": staff.cookies["responder_admin"]}
        assert loopback.get(f"{second.url}/admin", cookies=cookie).status_code == 200
