"""One crafted SMS or one runaway template must not freeze the service: while it is answered,
other webhooks and /healthz keep answering within 100 ms (issue 11, point 2)."""

from __future__ import annotations

import statistics
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, RunningApp
from tests.test_admin import sign_in

# A 28-character SMS that takes `re` 2**27 tries to give up on; the second pattern also makes
# the `regex` module backtrack, so its time limit is what ends it.
CRAFTED = "a" * 27 + "#"
SLOW_TEXT = "a" * 30 + "#"
RUNAWAY = "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}"
RULES = rf"""
settings:
  timezone: America/Caracas
  country: VE
  reply_limit: {{count: 1000, per: 1h}}
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos de 8:00 a 17:00."
  - name: bucle
    keywords: [bucle]
    reply: "{RUNAWAY}"
  - name: palabras
    pattern: '^(\w+\s?)+$'
    reply: "Solo palabras."
  - name: alternancia
    pattern: '^(\w|\w\w)+$'
    reply: "Una palabra."
  - name: otro
    fallback: true
    reply: "No entendi."
"""
OTHERS = 50  # requests measured while the crafted messages are answered
LIMIT = 0.1  # seconds: the p99 every other request must keep


@pytest.fixture
def app(start_app: Callable[..., RunningApp], workdir: Path) -> RunningApp:
    (workdir / "rules.yaml").write_text(textwrap.dedent(RULES), encoding="utf-8")
    running = start_app()
    with httpx.Client(timeout=30) as client:  # warm up: the first request pays for imports
        client.get(running.webhook(), params={"msg": "horario", "phone": "584120000000"})
        client.get(f"{running.url}/healthz")
    return running


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def _while_running(app: RunningApp, attack: Callable[[httpx.Client, int], None]) -> list[float]:
    """Latencies of webhooks and /healthz, sent one after another while `attack` runs five
    times in another thread, spread over them."""
    latencies: list[float] = []
    errors: list[BaseException] = []

    def run_attack() -> None:
        with httpx.Client(timeout=120) as client:
            for round_ in range(5):
                try:
                    attack(client, round_)
                except BaseException as err:  # reported below, in the test's thread
                    errors.append(err)
                time.sleep(0.05)

    attacker = threading.Thread(target=run_attack)
    with httpx.Client(timeout=120) as client:
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


@pytest.mark.parametrize(("text", "rule"), [(CRAFTED, "palabras"), (SLOW_TEXT, "alternancia")])
def test_a_crafted_sms_does_not_stall_other_webhooks(
    app: RunningApp, text: str, rule: str, caplog: pytest.LogCaptureFixture
) -> None:
    def attack(client: httpx.Client, round_: int) -> None:
        response = client.get(app.webhook(), params={"msg": text, "phone": f"58424{round_:07d}"})
        assert response.status_code == 200

    latencies = _while_running(app, attack)
    assert _p99(latencies) < LIMIT, sorted(latencies)[-5:]
    # The crafted message is answered: a pattern out of time does not match, the fallback does.
    messages = app.wait_for("584240000000", lambda m: len(m) == 2)
    assert [(m["direction"], m["rule"]) for m in messages] == [("in", "otro"), ("out", "otro")]
    assert text not in caplog.text  # logs name the rule, never the message
    if rule == "alternancia":
        assert "rule alternancia (line 17): pattern over budget (out of time)" in caplog.text
        with app.api() as api:
            overruns = api.get("/api/rules").json()["overruns"]
        assert [(o["kind"], o["rule"], o["line"], o["why"]) for o in overruns] == [
            ("pattern", "alternancia", 17, "out of time")
        ]
        assert overruns[0]["count"] >= 1


def test_a_runaway_template_does_not_stall_other_webhooks(
    app: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    def attack(client: httpx.Client, round_: int) -> None:
        response = client.get(app.webhook(), params={"msg": "bucle", "phone": f"58426{round_:07d}"})
        assert response.status_code == 200

    latencies = _while_running(app, attack)
    assert _p99(latencies) < LIMIT, sorted(latencies)[-5:]
    # Like any render error: nothing is sent, the error is kept on the message.
    (message,) = app.wait_for("584260000000", lambda m: len(m) == 1)
    assert message["rule"] == "bucle"
    assert "template over budget" in message["error"]
    assert "rule bucle (line 12): template over budget (" in caplog.text
    with app.api() as api:
        overruns = api.get("/api/rules").json()["overruns"]
    assert [(o["kind"], o["rule"], o["line"]) for o in overruns] == [("template", "bucle", 12)]


@pytest.mark.parametrize("text", [CRAFTED, SLOW_TEXT, "bucle"])
def test_trying_a_crafted_message_answers_quickly(app: RunningApp, text: str) -> None:
    """`POST /api/simulate` and the admin's "Probar un mensaje" run the same rules on the
    same loop: they answer quickly, and so does everything else meanwhile."""
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
