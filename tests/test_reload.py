"""Live reload: edits to rules.yaml and templates take effect; broken edits are rejected."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import loopback
from tests.conftest import RunningApp


def simulate(app: RunningApp, text: str) -> dict[str, object]:
    with app.api() as api:
        result: dict[str, object] = api.post(
            "/api/simulate", json={"phone": "04121234567", "text": text}
        ).json()
        return result


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    running = start_app()
    running.service.rules.interval = 0.1
    return running


def test_an_edit_is_picked_up_and_a_broken_one_rejected(app: RunningApp, workdir: Path) -> None:
    rules = workdir / "rules.yaml"
    with app.api() as api:
        before = api.get("/api/rules").json()["version"]["sha256"]
    text = rules.read_text(encoding="utf-8")
    rules.write_text(
        text.replace(
            "rules:\n", "rules:\n  - name: promo\n    keywords: [promo]\n    reply: 2x1\n"
        ),
        encoding="utf-8",
    )
    assert wait_until(lambda: simulate(app, "promo")["rule"] == "promo")
    with app.api() as api:
        after = api.get("/api/rules").json()
    assert after["version"]["sha256"] != before
    assert after["rules"][0]["name"] == "promo"

    # A broken edit: the last good rules keep answering, and the problem is visible.
    rules.write_text(text.replace("pattern: 'precio", "pattern: '(precio"), encoding="utf-8")
    with app.api() as api:
        assert wait_until(lambda: bool(api.get("/api/rules").json()["problems"]))
        problems = api.get("/api/rules").json()["problems"]
    assert any("rules.yaml:" in p and "bad regular expression" in p for p in problems)
    assert simulate(app, "promo")["rule"] == "promo"
    response = loopback.get(app.webhook(), params={"msg": "promo", "phone": "584121234567"})
    assert response.status_code == 200
    assert app.messages("584121234567")[-1]["text"] == "2x1"


def test_a_template_edit_is_picked_up(app: RunningApp, workdir: Path) -> None:
    (workdir / "templates" / "precio.txt").write_text("Nuevo precio de {{ match.producto }}.")
    assert wait_until(
        lambda: (
            simulate(app, "precio te")["replies"]
            == [{"text": "Nuevo precio de te.", "segments": 1}]
        )
    )
