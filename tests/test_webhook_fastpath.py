"""The webhook URLs served before Starlette's middleware and routing: the same answers as the
routes gave, the rest left to Starlette, an unexpected error answered 500 and logged."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from starlette.routing import Match

from responder.store.models import InboundJob, InboundResult
from responder.web import webhooks
from tests import loopback
from tests.conftest import WEBHOOK_TOKEN, RunningApp
from tests.test_metrics import samples, value
from tests.test_webhooks import rows

PHONE = "584121234567"
T = WEBHOOK_TOKEN
TEXT_PLAIN = "text/plain; charset=utf-8"


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def routed(path: str) -> tuple[str, str | None] | None:
    """What Starlette's webhook routes match: the token and the kind."""
    scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    for route in webhooks.routes:
        found, child = route.matches(scope)
        if found is Match.FULL:
            return child["path_params"]["token"], cast(webhooks.RoutedWebhook, route.endpoint).kind
    return None


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/webhooks/massiva/{T}/inbound", (T, "inbound")),
        (f"/webhooks/massiva/{T}/status", (T, "status")),
        (f"/webhooks/massiva/{T}", (T, None)),
        ("/webhooks/massiva/inbound", ("inbound", None)),
        ("/webhooks/massiva/status/status", ("status", "status")),
        ("/webhooks/massiva/a b%?/inbound", ("a b%?", "inbound")),  # the path comes decoded
        ("/webhooks/massiva/", None),
        ("/webhooks/massiva", None),
        ("/webhooks/massiva//inbound", None),
        ("/webhooks/massiva/a/b/inbound", None),
        (f"/webhooks/massiva/{T}/other", None),
        (f"/webhooks/massiva/{T}/inbound/", None),  # Starlette redirects it
        (f"/webhooks/massiva/{T}/inbound\n", None),  # Starlette's `$` takes it: routed
        (f"/webhooks/massivas/{T}", None),
        ("/healthz", None),
    ],
)
def test_the_fast_path_takes_only_what_the_routes_would_take_alike(
    path: str, expected: tuple[str, str | None] | None
) -> None:
    assert webhooks.match(path) == expected
    if expected is not None:
        assert routed(path) == expected


@pytest.mark.parametrize("method", ["PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("token", [T, "wrong-token-0123456789abc"])
@pytest.mark.parametrize("suffix", ["/inbound", "/status", ""])
def test_other_methods_get_starlettes_405_whatever_the_token(
    app: RunningApp, method: str, token: str, suffix: str
) -> None:
    params = {"msg": "horario", "phone": PHONE, "id": "1", "estatus": "1"}
    response = loopback.request(method, app.webhook(suffix, token=token), params=params)
    assert (response.status_code, response.text) == (405, "Method Not Allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST", "HEAD"}
    assert response.headers["content-type"] == TEXT_PLAIN
    assert response.headers["content-length"] == "18"
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(0,)]
    assert rows(app, "SELECT COUNT(*) FROM rejected_webhooks") == [(0,)]


def test_answers_carry_the_same_headers_as_starlettes(app: RunningApp) -> None:
    ok = loopback.get(app.webhook(), params={"msg": "horario", "phone": PHONE})
    wrong = loopback.get(app.webhook(token="wrong-token-0123456789abc"), params={"msg": "x"})
    head = loopback.head(app.webhook(), params={"msg": "horario", "phone": PHONE})
    bad = loopback.get(app.webhook(), params={"msg": "horario"})
    answers = [
        (r.status_code, r.text, r.headers.get("allow"), r.headers["content-length"])
        for r in (ok, wrong, head, bad)
    ]
    assert answers == [
        (200, "OK", None, "2"),
        (404, "Not Found", None, "9"),
        (405, "", "GET, POST", "15"),  # "use GET or POST", its body left out for a HEAD
        (400, "missing field(s): phone", None, "23"),
    ]
    assert {r.headers["content-type"] for r in (ok, wrong, head, bad)} == {TEXT_PLAIN}


def test_a_chunked_body_over_64_kib_is_413_and_changes_nothing(app: RunningApp) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is found while reading
        yield f"phone={PHONE}&msg=".encode()
        for _ in range(70):
            yield b"x" * 1024

    response = loopback.post(
        app.webhook(),
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (response.status_code, response.text) == (413, "request body too large (64 KiB at most)")
    assert "content-length" not in response.request.headers
    assert rows(app, "SELECT COUNT(*) FROM messages") == [(0,)]


def test_other_paths_under_webhooks_are_left_to_starlette(app: RunningApp) -> None:
    redirect = loopback.get(f"{app.webhook()}/?msg=horario&phone={PHONE}")
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{app.webhook()}?msg=horario&phone={PHONE}"
    for path in [f"/webhooks/massiva/{T}/other", "/webhooks/massiva/", "/webhooks/other"]:
        response = loopback.get(app.url + path)
        assert (response.status_code, response.text) == (404, "Not Found")
    # Starlette's routes take a path the fast path leaves (a trailing newline, through its
    # `$`), and hand it to the same code.
    routed = loopback.get(f"{app.webhook()}%0A?msg=horario&phone={PHONE}")
    assert (routed.status_code, routed.text) == (200, "OK")
    assert [m["direction"] for m in app.messages(PHONE)] == ["in", "out"]
    assert rows(app, "SELECT COUNT(*) FROM rejected_webhooks") == [(0,)]


def test_an_unexpected_error_is_a_plain_500_logged_and_the_next_webhook_is_answered(
    app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    store: Any = app.service.store

    async def broken(job: InboundJob) -> InboundResult:
        raise RuntimeError("a bug in the store")

    store.receive_inbound = broken
    before = value(samples(app), "responder_webhook_seconds_count")
    with loopback.Client(timeout=10) as client, caplog.at_level(logging.ERROR, "responder"):
        failed = client.get(app.webhook(), params={"msg": "horario", "phone": PHONE})
        assert (failed.status_code, failed.text) == (500, "Internal Server Error")
        assert failed.headers["content-type"] == TEXT_PLAIN
        del store.receive_inbound  # the store's own method again
        answered = client.get(app.webhook(), params={"msg": "hola", "phone": PHONE})
        assert (answered.status_code, answered.text) == (200, "OK")
        # On the same connection: the failure did not close it.
        kept = [
            r.extensions["network_stream"].get_extra_info("client_addr") for r in (failed, answered)
        ]
        assert kept[0] == kept[1]
    [logged] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged.name == "responder.webhooks"
    assert logged.getMessage() == "GET /webhooks/massiva/{token}/inbound webhook failed"
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], RuntimeError)
    assert T not in caplog.text
    assert [m["text"] for m in app.messages(PHONE) if m["direction"] == "in"] == ["hola"]
    assert value(samples(app), "responder_webhook_seconds_count") == before + 2


def test_a_status_report_that_fails_unexpectedly_is_a_500_too(app: RunningApp) -> None:
    store: Any = app.service.store

    async def broken(*args: object) -> bool:
        raise KeyError("a bug")

    store.apply_status = broken
    response = loopback.get(app.webhook("/status"), params={"id": "5", "estatus": "1"})
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    del store.apply_status
    response = loopback.get(app.webhook("/status"), params={"id": "5", "estatus": "1"})
    assert (response.status_code, response.text) == (200, "OK")
