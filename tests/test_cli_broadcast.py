"""`responder broadcast ...`: create with a confirmation, list, status, pause/resume/cancel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from responder.broadcasts import Broadcast, Segment
from responder.cli import main
from responder.commands.broadcast import counts_line, progress_bar
from tests.conftest import WEBHOOK_TOKEN


@pytest.fixture
def run(workdir: Path) -> Callable[..., tuple[int, str]]:
    env = {
        "RESPONDER_DATABASE": str(workdir / "cli.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }

    def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), env=env, input=stdin)
        return result.exit_code, result.output

    return invoke


def test_send_confirms_then_list_status_and_changes(run: Callable[..., tuple[int, str]]) -> None:
    for phone in ("04121234567", "04241234567"):
        assert run("send", phone, "hola")[0] == 0  # the contacts exist now
    code, output = run("broadcast", "send", "--text", "Hola {{ contact.phone }}", stdin="n\n")
    assert code == 1
    assert output.splitlines()[:3] == [
        "2 recipient(s); 1 SMS each (GSM-7), about 2 SMS in all",
        "  584121234567: Hola 584121234567",
        "  584241234567: Hola 584241234567",
    ]
    assert "Error: nothing was sent" in output
    assert run("broadcast", "list") == (0, "")
    code, output = run("broadcast", "send", "--text", "Hola", "--name", "Saludo", stdin="y\n")
    assert code == 0, output
    assert output.splitlines()[-1] == "broadcast 1 created (running): 2 recipient(s)"
    code, output = run("broadcast", "list")
    assert output.strip() == (
        "#1 running: 2 recipients; queued 2, sent 0, delivered 0, failed 0, skipped 0, "
        "cancelled 0  Saludo"
    )
    assert run("broadcast", "status", "1")[1].startswith("#1 running: 2 recipients; queued 2")
    assert run("broadcast", "pause", "1")[1].startswith("#1 paused:")
    code, output = run("broadcast", "pause", "1")
    assert (code, output.strip()) == (1, "Error: broadcast 1 is paused: it cannot be paused")
    assert run("broadcast", "resume", "1")[1].startswith("#1 running:")
    assert run("broadcast", "cancel", "1")[1].startswith(
        "#1 cancelled: 2 recipients; queued 0, sent 0, delivered 0, failed 0, skipped 0, "
        "cancelled 2"
    )
    code, output = run("broadcast", "status", "1", "--follow", "--every", "0.01")
    assert (code, output.count("\n")) == (0, 1)  # final already: one line, and it ends
    assert run("broadcast", "status", "7")[1].strip() == "Error: no broadcast 7"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--text", "{{ contact.nombre "), "'text' line 1"),
        (("--text", "x", "--field", "ciudad"), "--field 'ciudad': write it as name=value"),
        (("--text", "x", "--via", "massms"), "via must be a configured provider"),
        (("--text", "x", "--at", "mañana"), "--at: 'mañana' is not an ISO 8601"),
        (("--text", "x", "--label", "nadie"), "the segment has no recipients"),
        (("--text", "x", "--active-within-days", "0"), "active_within_days"),
    ],
)
def test_send_refuses_clearly(
    run: Callable[..., tuple[int, str]], args: tuple[str, ...], message: str
) -> None:
    assert run("send", "04121234567", "hola")[0] == 0
    code, output = run("broadcast", "send", "--yes", *args)
    assert code == 1
    assert output.splitlines()[-1].startswith("Error: ") and message in output, output


def test_the_progress_bar_counts_what_is_final() -> None:
    at = datetime(2026, 11, 23, 14, tzinfo=UTC)
    counts = {"queued": 5, "sent": 3, "delivered": 1, "failed": 1, "skipped": 0, "cancelled": 0}
    found = Broadcast(
        3, "Promo", "x", Segment(), "massiva", None, "running", 10, counts, None, at, at, None
    )
    assert progress_bar(found) == ("[###############...............]  50% " + counts_line(found))
    assert counts_line(found) == (
        "#3 running: 10 recipients; queued 5, sent 3, delivered 1, failed 1, skipped 0, cancelled 0"
    )
