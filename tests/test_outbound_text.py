"""What goes out is sendable and affordable, at every door: control characters typed by a
person are refused (API, admin, CLI) and cleaned from template output; one auto-reply costs at
most `max_reply_sms`; the reply limit counts SMS; long messages are stored whole."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner

from responder import text as sms_text
from responder.cli import main
from tests import loopback
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, Clock, RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.test_admin import csrf_of, sign_in

PHONE = "584121234567"
LONG_REPLY = "Nuestro catálogo completo: " + "cafe, te, torta, jugo, " * 12  # 2 SMS
RULES = f"""\
settings:
  timezone: America/Caracas
  reply_limit: {{count: 4, per: 1h}}
rules:
  - name: largo
    keywords: [largo]
    reply: "{LONG_REPLY.strip()}"
  - name: horario
    keywords: [horario]
    reply: "Abrimos a las 8."
  - name: eco
    fallback: true
    reply: "Recibido: {{{{ message.text }}}}"
"""


@pytest.fixture
def rules(workdir: Path) -> Path:
    (workdir / "rules.yaml").write_text(RULES, encoding="utf-8")
    return workdir


def inbound(app: RunningApp, text: str, phone: str = PHONE) -> None:
    response = loopback.post(app.webhook(), data={"msg": text, "phone": phone})
    assert (response.status_code, response.text) == (200, "OK")


def outbound(app: RunningApp, phone: str = PHONE) -> list[dict[str, object]]:
    return [m for m in app.messages(phone) if m["direction"] == "out"]


def settled(app: RunningApp, phone: str, count: int) -> list[dict[str, object]]:
    """The phone's outbound messages once `count` of them left the outbox."""
    done = ("sent", "delivered", "failed", "unconfirmed")
    app.wait_for(phone, lambda ms: sum(m["status"] in done for m in ms) >= count)
    return outbound(app, phone)


# --- refused where a person typed it ----------------------------------------------------------

TYPED = [
    ("form-feed", "hola\x0cmundo", "invisible control character (U+000C) at position 5"),
    ("nul", "\x00", "invisible control character (U+0000) at position 1"),
    ("c1-control", "precio\x9b", "invisible control character (U+009B) at position 7"),
    ("zero-width-only", "\u200b\u2060", "nothing visible to send"),
]


@pytest.mark.parametrize(("text", "reason"), [t[1:] for t in TYPED], ids=[t[0] for t in TYPED])
def test_the_api_refuses_control_characters(
    start_app: Callable[..., RunningApp], text: str, reason: str
) -> None:
    app = start_app()
    inbound(app, "hola")
    before = app.messages(PHONE)
    with app.api() as api:
        response = api.post(f"/api/conversations/{PHONE}/messages", json={"text": text})
    assert response.status_code == 400
    assert response.json()["error"].startswith("'text': the text ")
    assert reason in response.json()["error"]
    assert app.messages(PHONE) == before


def test_the_admin_refuses_control_characters_in_spanish(
    start_app: Callable[..., RunningApp],
) -> None:
    app = start_app()
    inbound(app, "hola")
    before = app.messages(PHONE)
    page = f"/admin/conversations/{PHONE}"
    with closing(sign_in(app)) as staff:
        csrf = csrf_of(staff.get(page).text)
        typed = staff.post(f"{page}/reply", data={"csrf": csrf, "text": "hola\x0cmundo"})
        blank = staff.post(f"{page}/reply", data={"csrf": csrf, "text": "\u200b"})
    assert typed.status_code == 400
    assert "carácter de control invisible (U+000C) en la posición 5" in typed.text
    assert blank.status_code == 400
    assert "no tiene nada visible que enviar" in blank.text
    assert app.messages(PHONE) == before


def test_responder_send_refuses_control_characters(workdir: Path) -> None:
    env = {
        "RESPONDER_DATABASE": str(workdir / "cli.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    result = CliRunner().invoke(main, ["send", "04121234567", "pago\x1b listo"], env=env)
    assert result.exit_code == 1
    assert "invisible control character (U+001B) at position 5" in result.output
    # A byte that is not UTF-8 in the shell's argument reaches Python as a lone surrogate.
    result = CliRunner().invoke(main, ["send", "04121234567", "pago \udcff"], env=env)
    assert result.exit_code == 1
    assert "invisible control character (U+DCFF) at position 6" in result.output
    exported = CliRunner().invoke(main, ["export", "--format", "jsonl"], env=env)
    assert exported.output.strip() == ""  # nothing was queued


# --- cleaned where a template produced it -----------------------------------------------------


def test_a_control_character_echoed_by_a_template_is_cleaned_and_sent_once(
    start_app: Callable[..., RunningApp],
    massiva: tuple[FakeMassiva, str],
    rules: Path,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The issue's case: a form feed in one of a batch of replies made Massiva's answer
    unreadable, and the whole batch was sent again and again."""
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    app.service.worker.poll_interval = 0.1  # from its next pass on (each webhook wakes it)
    phones = ["584121234567", "584141234567", "584161234567"]
    for phone, text in zip(phones, ["hola\x0cque tal", "buenas", "gracias"], strict=True):
        inbound(app, text, phone)
    for phone in phones:
        settled(app, phone, 1)
    clock.advance(3600)  # any retry is due now
    time.sleep(0.5)  # the outbox has looked a few times
    assert sorted((s.phone, s.text) for s in fake.sent) == [
        ("584121234567", "Recibido: holaque tal"),
        ("584141234567", "Recibido: buenas"),
        ("584161234567", "Recibido: gracias"),
    ]
    assert all(m["status"] == "sent" for p in phones for m in outbound(app, p))
    logged = [r.getMessage() for r in caplog.records if r.name == "responder"]
    assert "rule eco: control character U+000C removed from the reply" in logged
    assert not any("holaque" in line or "hola\x0c" in line for line in caplog.messages)


# --- what one inbound SMS may cost ------------------------------------------------------------


def test_precio_with_a_60_kb_word_costs_at_most_3_sms(
    start_app: Callable[..., RunningApp], bundled: Path
) -> None:
    app = start_app(
        RESPONDER_RULES=str(bundled / "rules.yaml"),
        RESPONDER_TEMPLATES=str(bundled / "templates"),
    )
    word = "x" * 60_000
    inbound(app, f"precio {word}")
    replies = settled(app, PHONE, 1)
    assert 1 <= sum(sms_text.segments(str(m["text"])) for m in replies) <= 3
    assert replies[0]["rule"] == "precio"
    [received] = [m for m in app.messages(PHONE) if m["direction"] == "in"]
    assert received["text"] == f"precio {word}"  # stored whole


def test_a_long_reply_is_cut_and_logged_by_rule_not_text(
    start_app: Callable[..., RunningApp], rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = start_app()
    inbound(app, "palabra " * 180)
    replies = settled(app, PHONE, 3)
    assert len(replies) == 3 and sum(sms_text.segments(str(m["text"])) for m in replies) == 3
    assert str(replies[-1]["text"]).endswith("...")
    assert "rule eco: reply of 1449 characters cut to 3 SMS (settings.max_reply_sms)" in (
        caplog.messages
    )
    assert not any("palabra palabra" in line for line in caplog.messages)


def test_a_long_message_is_stored_whole_but_matched_on_its_first_1600_characters(
    start_app: Callable[..., RunningApp], rules: Path
) -> None:
    app = start_app()
    late = "bla " * 450 + "horario"  # the keyword after 1,800 characters
    inbound(app, late)
    [received, *_] = app.wait_for(PHONE, lambda ms: len(ms) >= 2)
    assert (received["text"], received["rule"]) == (late, "eco")
    early = "horario " + "bla " * 450
    inbound(app, early, "584141234567")
    [received, *_] = app.wait_for("584141234567", lambda ms: len(ms) >= 2)
    assert (received["text"], received["rule"]) == (early, "horario")


def test_the_reply_limit_counts_sms(start_app: Callable[..., RunningApp], rules: Path) -> None:
    app = start_app()  # reply_limit: 4 SMS an hour; the "largo" reply costs 2
    for n in range(1, 4):
        inbound(app, f"largo {n}")  # answered once its replies are committed with it
    messages = app.messages(PHONE)
    # The third got no reply: it would have made six.
    assert [m["direction"] for m in messages] == ["in", "out", "out", "in", "out", "out", "in"]
    replies = [str(m["text"]) for m in messages if m["direction"] == "out"]
    assert sum(sms_text.segments(text) for text in replies) == 4  # two replies of two SMS
