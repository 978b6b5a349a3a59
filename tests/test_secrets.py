"""Secrets stay out of logs and out of the start-up banner (issue 11 §7): tokens are printed in
full only when just generated and a person watches a terminal; no token, password or provider
account reaches any log line, through start, webhooks, provider errors, retries and shutdown."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from responder.app import create_app
from responder.cli import mask
from responder.config import Settings
from tests import loopback
from tests.conftest import Clock
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS
from tests.fakes.server import FakeServer
from tests.served import ServeProcess

WEBHOOK_TOKEN = "whk-Secret-7d1Q0pLm2Zx9"
ADMIN_TOKEN = "adm-Secret-4Hq8RtY2vB6n"
MASSIVA_USER = "tienda-7Rq@example.com"
MASSIVA_PASSWORD = "Massiva-Pw-Q7zX9v2K"
MASSMS_API_ID = "emp-4kR8sW1"
MASSMS_USER = "tienda-ms-9vT"
MASSMS_PASSWORD = "MasSMS-Pw-w3Jp5nB8"
SECRETS = {
    "webhook token": WEBHOOK_TOKEN,
    "admin token": ADMIN_TOKEN,
    "Massiva user": MASSIVA_USER,
    "Massiva password": MASSIVA_PASSWORD,
    "MasSMS api_id": MASSMS_API_ID,
    "MasSMS user": MASSMS_USER,
    "MasSMS password": MASSMS_PASSWORD,
}
PHONES = [f"58412{1000000 + i:07d}" for i in range(5)]


@dataclass
class Gateways:
    massiva: FakeMassiva
    massms: FakeMasSMS
    massms_server: FakeServer
    env: dict[str, str]


@pytest.fixture
def gateways(workdir: Path) -> Iterator[Gateways]:
    """Both fake gateways, with accounts whose every value is easy to find in a log."""
    massiva = FakeMassiva(user=MASSIVA_USER, password=MASSIVA_PASSWORD)
    massms = FakeMasSMS(api_id=MASSMS_API_ID, user=MASSMS_USER, password=MASSMS_PASSWORD)
    with FakeServer(massiva.app) as massiva_server, FakeServer(massms.app) as massms_server:
        yield Gateways(
            massiva,
            massms,
            massms_server,
            {
                "RESPONDER_DATABASE": str(workdir / "responder.db"),
                "RESPONDER_RULES": str(workdir / "rules.yaml"),
                "RESPONDER_TEMPLATES": str(workdir / "templates"),
                "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
                "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
                "RESPONDER_PROVIDER": "massiva",
                "MASSIVA_URL": f"{massiva_server.url}/webservices",
                "MASSIVA_USER": MASSIVA_USER,
                "MASSIVA_PASSWORD": MASSIVA_PASSWORD,
                "MASSMS_URL": f"{massms_server.url}/massms/api",
                "MASSMS_API_ID": MASSMS_API_ID,
                "MASSMS_USER": MASSMS_USER,
                "MASSMS_PASSWORD": MASSMS_PASSWORD,
            },
        )
        massiva.release()
        massms.release()


def wait(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def statuses(url: str, phone: str) -> list[tuple[str, str | None]]:
    """(status, error) of each outbound message to `phone`, through the API."""
    answer = loopback.get(
        f"{url}/api/conversations/{phone}/messages",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=5,
    )
    answer.raise_for_status()
    return [(m["status"], m["error"]) for m in answer.json()["messages"] if m["direction"] == "out"]


def assert_no_secret(text: str) -> None:
    leaked = [name for name, value in SECRETS.items() if value in text]
    assert not leaked, f"{', '.join(leaked)} in the output"


def test_no_secret_reaches_the_output_of_a_running_server(
    workdir: Path, gateways: Gateways
) -> None:
    massiva, massms = gateways.massiva, gateways.massms
    massms.fail_next("garbage")  # the balance check at start gets an unreadable answer
    server = ServeProcess(workdir, gateways.env)
    hook = f"{server.url}/webhooks/massiva/{WEBHOOK_TOKEN}"
    api = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        # Webhooks with the token in the URL, as a query and as a form; the replies go out.
        get = loopback.get(f"{hook}/inbound", params={"phone": PHONES[0], "msg": "horario"})
        post = loopback.post(f"{hook}/inbound", data={"phone": PHONES[1], "msg": "horario"})
        assert (get.text, post.text) == ("OK", "OK")
        assert wait(lambda: {s.phone for s in massiva.sent} >= set(PHONES[:2]))
        # A wrong token, a request the webhook cannot use, a report for an unknown id.
        wrong = f"{server.url}/webhooks/massiva/{'x' * 24}/inbound"
        assert loopback.get(wrong, params={"phone": PHONES[0], "msg": "hola"}).status_code == 404
        assert loopback.get(f"{hook}/inbound", params={"phone": PHONES[0]}).status_code == 400
        report = loopback.get(f"{hook}/status", params={"id": "987654", "estatus": "1"})
        assert report.status_code == 200
        # Massiva answers 500, then the retry goes through.
        massiva.fail_next("http500")
        loopback.get(f"{hook}/inbound", params={"phone": PHONES[2], "msg": "horario"})
        assert wait(lambda: PHONES[2] in {s.phone for s in massiva.sent})
        # Massiva refuses the credentials: failed at once, logged loudly.
        massiva.password = "another-password"
        loopback.get(f"{hook}/inbound", params={"phone": PHONES[3], "msg": "horario"})
        assert wait(lambda: [s for s, _ in statuses(server.url, PHONES[3])] == ["failed"])
        massiva.password = MASSIVA_PASSWORD
        # MasSMS answers 500, then accepts the retry; then it cannot be reached at all.
        massms.fail_next("http500")
        sent = loopback.post(
            f"{server.url}/api/conversations/{PHONES[0]}/messages",
            json={"text": "Hola, soy Ana", "via": "massms"},
            headers=api,
        )
        assert sent.status_code == 202
        assert wait(lambda: PHONES[0] in {s.phone for s in massms.sent})
        gateways.massms_server.__exit__(None, None, None)
        loopback.post(
            f"{server.url}/api/conversations/{PHONES[1]}/messages",
            json={"text": "Hola de nuevo", "via": "massms"},
            headers=api,
        )
        assert wait(lambda: any(e for _, e in statuses(server.url, PHONES[1]) if e))
    finally:
        assert server.stop() in (0, -15)
    output = server.output()
    # Each scenario left its line: the check below looked at real error paths.
    for line in (
        "balance of massms unknown",
        "rejected /webhooks/massiva/{token}/inbound webhook",
        "massiva status for id 987654 not recorded yet",
        "massiva: HTTP 500",
        "massms: HTTP 500",
        "massms: ConnectError",
        f"API token (Authorization: Bearer ...): {mask(ADMIN_TOKEN)}",
        f"/webhooks/massiva/{mask(WEBHOOK_TOKEN)}/inbound",
        "Application shutdown complete",
    ):
        assert line in output, line
    assert_no_secret(output)
    with sqlite3.connect(workdir / "responder.db") as db:
        kept = dict(db.execute("SELECT key, value FROM meta").fetchall())
    # The secrets the service keeps there (besides counters such as the search index's mark,
    # a message id that may well appear in a log line).
    secrets = {
        key: kept[key] for key in ("webhook_token", "admin_token", "session_secret") if key in kept
    }
    assert "session_secret" in secrets
    assert all(value not in output for value in secrets.values())


def stored_balances(workdir: Path) -> list[tuple[object, ...]]:
    """The providers whose balance the app has stored, read from its file."""
    with sqlite3.connect(workdir / "responder.db") as db:
        return db.execute("SELECT provider FROM balances").fetchall()


def test_no_secret_in_any_log_record_even_at_debug(
    workdir: Path,
    gateways: Gateways,
    make_settings: Callable[..., Settings],
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app as a library would run it (no `serve` to set log levels), every logger at
    DEBUG: httpx, httpcore and aiosqlite included."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore"):  # whatever an earlier `serve` in this process set
        caplog.set_level(logging.DEBUG, logger=name)
    gateways.massiva.fail_next("garbage")  # the balance checks at start
    gateways.massms.fail_next("http500")
    settings = make_settings(**gateways.env)
    with FakeServer(create_app(settings, clock=clock), lifespan="on") as server:
        # The start-up balance checks take the faults above: a send that came first would.
        assert wait(lambda: len(stored_balances(workdir)) == 2)
        hook = f"{server.url}/webhooks/massiva/{WEBHOOK_TOKEN}"
        assert loopback.get(f"{hook}/inbound", params={"phone": PHONES[0], "msg": "horario"}).text
        assert wait(lambda: any(r.path.endswith("SendSms") for r in gateways.massiva.requests))
        assert loopback.get(f"{server.url}/webhooks/massiva/{'y' * 20}/inbound").status_code == 404
        answer = loopback.post(
            f"{server.url}/api/conversations/{PHONES[0]}/messages",
            json={"text": "Hola", "via": "massms"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert answer.status_code == 202
        assert wait(lambda: bool(gateways.massms.sent))
    assert "balance of massiva unknown: massiva: obtenerCreditoDisponible" in caplog.text
    assert "balance of massms unknown: massms: HTTP 500 on getbalance.php" in caplog.text
    assert "httpcore" in caplog.text  # the HTTP libraries' own debug lines were captured
    assert '/massms/api/getbalance.php "HTTP/1.1 500' in caplog.text  # httpx's, redacted
    # What the test itself logs calling the app (as the gateway would, token in the URL) is not
    # the app's logging.
    own = f"HTTP Request: GET {server.url}/webhooks/"
    assert_no_secret("\n".join(line for line in caplog.text.splitlines() if own not in line))
    assert_no_secret("\n".join(str(r.args) for r in caplog.records if own not in r.getMessage()))


@pytest.mark.parametrize("terminal", [True, False])
def test_the_banner_shows_tokens_in_full_only_when_just_generated_on_a_terminal(
    workdir: Path, terminal: bool
) -> None:
    env = {
        "RESPONDER_DATABASE": str(workdir / "responder.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
    }
    first = ServeProcess(workdir, env, terminal=terminal)
    first.stop()
    with sqlite3.connect(workdir / "responder.db") as db:
        tokens = dict(db.execute("SELECT key, value FROM meta").fetchall())
    webhook, admin = tokens["webhook_token"], tokens["admin_token"]
    output = first.output()
    if terminal:  # generated by this start, and a person is watching: shown once
        assert f"/webhooks/massiva/{webhook}/inbound" in output
        assert f"API token (Authorization: Bearer ...): {admin}\n" in output
        assert "shown in full only this once" in output
    else:  # generated, but the output may be going to a log collector
        assert webhook not in output and admin not in output
        assert f"/webhooks/massiva/{mask(webhook)}/inbound" in output
        assert "responder token" in output
        return
    second = ServeProcess(workdir, env, terminal=True)  # the tokens come from the database
    second.stop()
    output = second.output()
    assert webhook not in output and admin not in output
    assert f"API token (Authorization: Bearer ...): {mask(admin)}\n" in output


def test_tokens_from_the_environment_are_masked_on_a_terminal_too(workdir: Path) -> None:
    env = {
        "RESPONDER_DATABASE": str(workdir / "responder.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    server = ServeProcess(workdir, env, terminal=True)
    server.stop()
    output = server.output()
    assert f"API token (Authorization: Bearer ...): {mask(ADMIN_TOKEN)}\n" in output
    assert_no_secret(output)
