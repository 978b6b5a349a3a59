"""The `responder` command: send, urls, balance, export, and start-up errors."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from responder import export
from responder.cli import main
from tests.conftest import WEBHOOK_TOKEN, massiva_env, massms_env
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS


@pytest.fixture
def env(workdir: Path) -> dict[str, str]:
    return {
        "RESPONDER_DATABASE": str(workdir / "cli.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }


@pytest.fixture
def run(env: dict[str, str]) -> Callable[..., tuple[int, str]]:
    def invoke(*args: str, **extra: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), env={**env, **extra})
        return result.exit_code, result.output

    return invoke


def test_send_queues_and_export_shows_it(run: Callable[..., tuple[int, str]]) -> None:
    code, output = run("send", "0412-123.45.67", "Su pedido está listo")
    assert code == 0, output
    assert output.strip() == "queued message(s) 1"
    code, output = run("export", "--format", "jsonl")
    assert code == 0
    [conversation] = [json.loads(line) for line in output.splitlines()]
    assert conversation["phone"] == "584121234567"
    assert conversation["fields"] == {}
    [row] = conversation["messages"]
    assert row["text"] == "Su pedido esta listo"  # smart encoding: á → a
    assert (row["status"], row["origin"], row["provider"]) == ("queued", "cli", "sandbox")
    code, output = run("export")
    lines = list(csv.reader(io.StringIO(output)))
    assert lines[0][:5] == ["id", "phone", "direction", "text", "status"]
    assert lines[0][-3:] == ["mode", "opted_out", "contact_fields"]
    assert lines[1][1] == "584121234567"
    assert lines[1][-3:] == ["bot", "False", "{}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("send", "12ab", "hola"), "'12ab' is not a valid phone number for region VE"),
        (("send", "04121234567", "hola", "--via", "massms"), "not configured"),
    ],
)
def test_send_refuses_clearly(
    run: Callable[..., tuple[int, str]], args: tuple[str, ...], message: str
) -> None:
    code, output = run(*args)
    assert code == 1
    [line] = output.splitlines()
    assert line.startswith("Error: ") and message in line


def test_urls_mask_the_token_unless_asked(run: Callable[..., tuple[int, str]]) -> None:
    code, output = run("urls", RESPONDER_PUBLIC_URL="https://sms.example.com")
    assert code == 0
    assert WEBHOOK_TOKEN not in output
    masked = f"https://sms.example.com/webhooks/massiva/{WEBHOOK_TOKEN[:3]}…"
    assert f"inbound: {masked}/inbound" in output
    assert "--show-secrets" in output
    code, output = run("urls", "--show-secrets", RESPONDER_PUBLIC_URL="https://sms.example.com")
    assert code == 0
    base = f"https://sms.example.com/webhooks/massiva/{WEBHOOK_TOKEN}"
    assert f"inbound: {base}/inbound" in output
    assert f"status: {base}/status" in output


def test_token_prints_the_api_token(
    run: Callable[..., tuple[int, str]], env: dict[str, str]
) -> None:
    code, output = run("token", RESPONDER_ADMIN_TOKEN="chosen-admin-token-42")
    assert (code, output) == (0, "chosen-admin-token-42\n")
    code, generated = run("token")  # none chosen: the one generated and kept in the database
    assert code == 0 and len(generated.strip()) == 32
    with sqlite3.connect(env["RESPONDER_DATABASE"]) as db:
        [(kept,)] = db.execute("SELECT value FROM meta WHERE key = 'admin_token'").fetchall()
    assert generated == f"{kept}\n"
    assert run("token") == (0, generated)


def test_balance_of_each_provider(
    run: Callable[..., tuple[int, str]],
    massiva: tuple[FakeMassiva, str],
    massms: tuple[FakeMasSMS, str],
) -> None:
    (fake_a, url_a), (fake_b, url_b) = massiva, massms
    fake_a.credits, fake_b.balance = 907, 1234
    code, output = run("balance", **massiva_env(url_a, fake_a), **massms_env(url_b, fake_b))
    assert code == 0, output
    assert output.splitlines() == ["massiva: 907", "massms: 1234"]
    code, output = run("balance", **{**massiva_env(url_a, fake_a), "MASSIVA_PASSWORD": "wrong"})
    assert code == 0, output
    [line] = output.splitlines()
    assert line.startswith("massiva: error: massiva: authentication failed")


def test_bad_configuration_is_one_line(run: Callable[..., tuple[int, str]]) -> None:
    code, output = run("urls", RESPONDER_PROVIDER="twilio")
    assert code == 1
    assert output.strip() == "Error: RESPONDER_PROVIDER: expected one of massiva, massms, sandbox"


def test_broken_rules_stop_start_up_with_the_line(
    run: Callable[..., tuple[int, str]], workdir: Path
) -> None:
    (workdir / "rules.yaml").write_text(
        "rules:\n  - name: a\n    keywords: [x]\n    pattern: '('\n    reply: hi\n",
        encoding="utf-8",
    )
    code, output = run("urls")
    assert code == 1
    assert "rules.yaml:4: bad regular expression" in output


@pytest.mark.parametrize(
    ("database", "words"),
    [("missing-dir/x.db", "cannot open "), ("rules.yaml", "")],
    ids=["no-folder", "not-sqlite"],
)
def test_unusable_database_is_one_line(
    run: Callable[..., tuple[int, str]], workdir: Path, database: str, words: str
) -> None:
    code, output = run("urls", RESPONDER_DATABASE=str(workdir / database))
    assert code == 1
    [line] = output.splitlines()
    assert line.startswith(f"Error: RESPONDER_DATABASE: {words}{workdir / database}: "), line


def test_serve_with_an_unusable_database_is_one_line(
    run: Callable[..., tuple[int, str]], workdir: Path
) -> None:
    code, output = run("serve", "--port", "1", RESPONDER_DATABASE=str(workdir / "no" / "x.db"))
    assert code == 1
    [line] = output.splitlines()
    assert line.startswith(f"Error: RESPONDER_DATABASE: cannot open {workdir / 'no' / 'x.db'}:")


def test_export_streams_pages_and_keeps_every_message(
    run: Callable[..., tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of 2 (conversations, and messages of one conversation or of several) still give
    every message once, in order, each conversation on one JSON line; no progress bar off a
    terminal."""
    monkeypatch.setattr(export, "CONVERSATION_PAGE", 2)
    monkeypatch.setattr(export, "MESSAGE_PAGE", 2)
    phones = ["04121000001", "04121000002", "04121000003"]
    for n in range(5):
        assert run("send", phones[0], f"mensaje {n}")[0] == 0
    for phone in phones[1:]:
        assert run("send", phone, "hola")[0] == 0
    code, output = run("export", "--format", "jsonl")
    assert code == 0, output
    lines = [json.loads(line) for line in output.splitlines()]
    assert [c["phone"] for c in lines] == ["584121000001", "584121000002", "584121000003"]
    assert [m["text"] for m in lines[0]["messages"]] == [f"mensaje {n}" for n in range(5)]
    assert [len(c["messages"]) for c in lines[1:]] == [1, 1]
    code, output = run("export")
    rows = list(csv.reader(io.StringIO(output)))
    assert len(rows) == 1 + 7
    assert len({row[0] for row in rows[1:]}) == 7


def test_forget_erases_a_person_and_an_opted_out_number_stays_refused(
    run: Callable[..., tuple[int, str]], env: dict[str, str]
) -> None:
    assert run("send", "04121234567", "hola Ana")[0] == 0
    assert run("send", "04241234567", "hola Luis")[0] == 0
    code, output = run("forget", "04121234567")
    assert code == 1 and "--yes" in output
    code, output = run("forget", "04121234567", "--yes")
    assert (code, output) == (0, "forgot 584121234567: 1 message(s) erased\n")
    code, output = run("export", "--format", "jsonl")
    assert [json.loads(line)["phone"] for line in output.splitlines()] == ["584241234567"]
    code, output = run("forget", "04121234567", "--yes")
    assert code == 1 and "nothing is known of 584121234567" in output
    # Luis opted out (as a BAJA would leave him): forgotten, he stays opted out.
    with sqlite3.connect(env["RESPONDER_DATABASE"]) as db:
        db.execute(
            "UPDATE contacts SET opted_out = 1, opted_out_at = '2026-01-01T00:00:00.000000Z'"
        )
    code, output = run("forget", "04241234567", "--yes")
    assert (code, output) == (0, "forgot 584241234567: 1 message(s) erased; it stays opted out\n")
    assert run("export", "--format", "jsonl")[1] == ""
    code, output = run("send", "04241234567", "oferta")
    assert code == 1 and "opted out" in output
