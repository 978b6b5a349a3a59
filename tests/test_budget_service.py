"""One crafted SMS or one runaway template must not freeze the service: while it is answered,
other webhooks and /healthz keep answering within 100 ms (issue 11, point 2)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests import loopback
from tests.conftest import ADMIN_TOKEN, RunningApp
from tests.test_admin import sign_in

# The issue's crafted SMS: 28 characters that take Python's `re` 2**27 tries to give up on
# with the first pattern. The second pattern makes the `regex` module backtrack too, so its
# time limit is what ends it (and `re` needs seconds for this text).
ISSUE = (r"^(\w+\s?)+$", "a" * 27 + "#")
SLOW = (r"^(\w|\w\w)+$", "a" * 30 + "#")
RUNAWAY = "{% for a in range(3000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}"
RULES = """
settings:
  timezone: America/Caracas
  country: VE
  reply_limit: {count: 1000, per: 1h}
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos de 8:00 a 17:00."
  - name: bucle
    keywords: [bucle]
    reply: "RUNAWAY"
  - name: lenta
    pattern: 'PATTERN'
    reply: "Solo palabras."
  - name: otro
    fallback: true
    reply: "No entendi."
"""
PATTERN_LINE, TEMPLATE_LINE = 14, 12
# Requests measured while the crafted messages are answered: enough that the p99 is not the
# slowest one or two, which a busy machine alone can push past 100 ms now and then.
OTHERS = 200
LIMIT = 0.1  # seconds: the p99 every other request must keep


@pytest.fixture
def serve(start_app: Callable[..., RunningApp], workdir: Path) -> Callable[[str], RunningApp]:
    """The app answering with rules whose `lenta` rule has the given pattern."""

    def start(pattern: str) -> RunningApp:
        rules = RULES.replace("RUNAWAY", RUNAWAY).replace("PATTERN", pattern)
        (workdir / "rules.yaml").write_text(rules, encoding="utf-8")
        running = start_app()
        with loopback.Client(timeout=30) as client:  # warm up: the first request pays for imports
            client.get(running.webhook(), params={"msg": "horario", "phone": "584120000000"})
            client.get(f"{running.url}/healthz")
        return running

    return start


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def _while_running(app: RunningApp, attack: Callable[[httpx.Client, int], None]) -> list[float]:
    """Latencies of webhooks and /healthz, sent one after another while `attack` runs five
    times in another thread, spread over them."""
    latencies: list[float] = []
    errors: list[BaseException] = []

    def run_attack() -> None:
        with loopback.Client(timeout=120) as client:
            for round_ in range(5):
                try:
                    attack(client, round_)
                except BaseException as err:  # reported below, in the test's thread
                    errors.append(err)
                time.sleep(0.2)

    attacker = threading.Thread(target=run_attack)
    with loopback.Client(timeout=120) as client:
        attacker.start()
        time.sleep(0.005)  # the first crafted request is on its way
        for i in range(OTHERS):
            if i % 5 == 0:
                url, params = f"{app.url}/healthz", {}
            else:
                url, params = app.webhook(), {"msg": "horario", "phone": f"58412{i:07d}"}
            started = time.perf_counter()
            response = client.get(url, params=params)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
        attacker.join(timeout=300)
    assert not errors, errors
    return latencies


@pytest.mark.parametrize(("pattern", "text"), [ISSUE, SLOW], ids=["issue", "slow"])
def test_a_crafted_sms_does_not_stall_other_webhooks(
    serve: Callable[[str], RunningApp], pattern: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = serve(pattern)

    def attack(client: httpx.Client, round_: int) -> None:
        response = client.get(app.webhook(), params={"msg": text, "phone": f"58424{round_:07d}"})
        assert response.status_code == 200

    latencies = _while_running(app, attack)
    assert _p99(latencies) < LIMIT, sorted(latencies)[-5:]
    # The crafted message is answered: a pattern out of time does not match, the fallback does.
    messages = app.wait_for("584240000000", lambda m: len(m) == 2)
    assert [(m["direction"], m["rule"]) for m in messages] == [("in", "otro"), ("out", "otro")]
    assert text not in caplog.text  # logs name the rule, never the message
    if (pattern, text) == SLOW:  # `regex` fails the issue's pattern fast: no overrun there
        line = f"rule lenta (line {PATTERN_LINE}): pattern over budget (out of time)"
        assert line in caplog.text
        with app.api() as api:
            overruns = api.get("/api/rules").json()["overruns"]
        assert [(o["kind"], o["rule"], o["line"], o["why"]) for o in overruns] == [
            ("pattern", "lenta", PATTERN_LINE, "out of time")
        ]
        assert overruns[0]["count"] == 5


def test_a_runaway_template_does_not_stall_other_webhooks(
    serve: Callable[[str], RunningApp], caplog: pytest.LogCaptureFixture
) -> None:
    app = serve(SLOW[0])

    def attack(client: httpx.Client, round_: int) -> None:
        response = client.get(app.webhook(), params={"msg": "bucle", "phone": f"58426{round_:07d}"})
        assert response.status_code == 200

    latencies = _while_running(app, attack)
    assert _p99(latencies) < LIMIT, sorted(latencies)[-5:]
    # Like any render error: nothing is sent, the error is kept on the message.
    (message,) = app.wait_for("584260000000", lambda m: len(m) == 1)
    assert message["rule"] == "bucle"
    assert "template over budget" in message["error"]
    assert f"rule bucle (line {TEMPLATE_LINE}): template over budget (" in caplog.text
    with app.api() as api:
        overruns = api.get("/api/rules").json()["overruns"]
    assert [(o["kind"], o["rule"], o["line"], o["count"]) for o in overruns] == [
        ("template", "bucle", TEMPLATE_LINE, 5)
    ]


@pytest.mark.parametrize(
    ("pattern", "text"), [ISSUE, SLOW, (SLOW[0], "bucle")], ids=["issue", "slow", "template"]
)
def test_trying_a_crafted_message_answers_quickly(
    serve: Callable[[str], RunningApp], pattern: str, text: str
) -> None:
    """`POST /api/simulate` and the admin's "Probar un mensaje" run the same rules on the
    same loop: they answer quickly, and so does everything else meanwhile."""
    app = serve(pattern)
    durations: list[float] = []
    staff = sign_in(app)
    assert staff.get("/admin/rules").status_code == 200  # compiles the page's templates

    def attack(client: httpx.Client, round_: int) -> None:
        started = time.perf_counter()
        if round_ % 2:
            response = staff.get("/admin/rules", params={"text": text})
        else:
            body = {"phone": "584121234567", "text": text}
            bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            response = client.post(f"{app.url}/api/simulate", json=body, headers=bearer)
        durations.append(time.perf_counter() - started)
        assert response.status_code == 200

    try:
        latencies = _while_running(app, attack)
    finally:
        staff.close()
    assert _p99(latencies) < LIMIT, sorted(latencies)[-5:]
    assert max(durations) < 1.0, durations  # seconds before; a page and its rules now
