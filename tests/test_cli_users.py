"""`responder users`: people added, listed, disabled, given a new password or a token from the
command line, on the same database the service uses; and authors in `responder export`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner

from responder.cli import main
from responder.config import load_settings
from responder.service import Service
from tests.conftest import WEBHOOK_TOKEN, Clock

Run = Callable[..., tuple[int, str]]
T = TypeVar("T")


@pytest.fixture
def env(workdir: Path) -> dict[str, str]:
    return {
        "RESPONDER_DATABASE": str(workdir / "cli.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RESPONDER_ADMIN_TOKEN": "cli-admin-token-0123456789",
    }


@pytest.fixture
def run(env: dict[str, str]) -> Run:
    def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), env=env, input=stdin)
        return result.exit_code, result.output

    return invoke


def with_service(env: dict[str, str], clock: Clock, work: Callable[[Service], Awaitable[T]]) -> T:
    """`work` on a service opened on the command's database, as the server would open it."""

    async def run() -> T:
        service = Service(load_settings(env, env_file="/nonexistent"), clock=clock)
        await service.open()
        try:
            return await work(service)
        finally:
            await service.close()

    return asyncio.run(run())


def test_people_are_added_listed_disabled_and_given_new_passwords(
    run: Run, env: dict[str, str], clock: Clock
) -> None:
    assert run(
        "users", "add", "Ana", "--role", "agent", "--password-stdin", stdin="clave-ana-1\n"
    ) == (
        0,
        "added ana (agent)\n",
    )
    # At a terminal the password is asked for twice.
    code, output = run("users", "add", "bea", "--role", "owner", stdin="clave-bea-2\nclave-bea-2\n")
    assert code == 0 and output.endswith("added bea (owner)\n")
    assert "Password" in output and "Repeat the password" in output
    code, output = run("users", "add", "luis", "--role", "agent", stdin="clave-1234\notra-1234\n")
    assert code == 1  # the two did not match, and nothing was stored
    code, output = run("users", "list")
    assert code == 0
    assert [line.split("\t")[:3] for line in output.splitlines()] == [
        ["ana", "agent", "active"],
        ["bea", "owner", "active"],
    ]

    async def both_sign_in(service: Service) -> bool:
        ana = await service.accounts.authenticate("ana", "clave-ana-1")
        bea = await service.accounts.authenticate("bea", "clave-bea-2")
        return ana is not None and bea is not None

    assert with_service(env, clock, both_sign_in)
    assert run("users", "disable", "ana") == (0, "disabled ana\n")
    assert run("users", "passwd", "bea", "--password-stdin", stdin="nueva-clave-3\n") == (
        0,
        "password of bea changed\n",
    )

    async def after(
        service: Service,
    ) -> tuple[list[bool], list[tuple[str | None, str, str | None]]]:
        accounts = service.accounts
        signed = [
            await accounts.authenticate("ana", "clave-ana-1") is None,  # disabled
            await accounts.authenticate("bea", "clave-bea-2") is None,
            await accounts.authenticate("bea", "nueva-clave-3") is not None,
        ]
        return signed, [(e.actor, e.action, e.subject) for e in await accounts.audit()]

    signed, actions = with_service(env, clock, after)
    assert signed == [True, True, True]
    assert actions == [
        (None, "user_changed", "bea"),
        (None, "user_changed", "ana"),
        (None, "user_created", "bea"),
        (None, "user_created", "ana"),
    ]
    assert "disabled" in run("users", "list")[1].splitlines()[0]
    assert run("users", "enable", "ana") == (0, "enabled ana\n")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("users", "add", "admin", "--role", "owner", "--password-stdin"),
            "clave-larga\n",
            "built-in owner",
        ),
        (
            ("users", "add", "a b", "--role", "owner", "--password-stdin"),
            "clave-larga\n",
            "lower-case",
        ),
        (("users", "add", "ana", "--role", "agent", "--password-stdin"), "corta\n", "at least 8"),
        (("users", "disable", "nadie"), None, "no person named nadie"),
        (
            ("users", "passwd", "nadie", "--password-stdin"),
            "clave-larga\n",
            "no person named nadie",
        ),
        (("users", "token", "nadie"), None, "no person named nadie"),
    ],
)
def test_refusals_are_one_line(
    run: Run, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    code, output = run(*args, stdin=stdin)
    assert code == 1
    [line] = output.splitlines()
    assert line.startswith("Error: ") and message in line


def test_a_name_is_taken_once(run: Run) -> None:
    add = ("users", "add", "ana", "--role", "agent", "--password-stdin")
    assert run(*add, stdin="clave-ana-1\n")[0] == 0
    assert run(*add, stdin="clave-ana-1\n") == (1, "Error: a person named ana exists already\n")


def test_a_token_is_printed_once_and_acts_as_its_person(
    run: Run, env: dict[str, str], clock: Clock
) -> None:
    run("users", "add", "ana", "--role", "agent", "--password-stdin", stdin="clave-ana-1\n")
    code, output = run("users", "token", "ana")
    assert code == 0
    token = output.strip()
    assert token.startswith("rsp_") and len(token) > 40
    assert run("users", "token", "ana")[1].strip() != token  # a new one each time
    identity = with_service(env, clock, lambda service: service.accounts.bearer(token))
    assert identity is not None and (identity.name, identity.role) == ("ana", "agent")
    run("users", "disable", "ana")
    assert run("users", "token", "ana")[0] == 1  # not for a disabled person


def test_export_shows_who_wrote_each_message(run: Run, env: dict[str, str], clock: Clock) -> None:
    async def send(service: Service) -> None:
        await service.send("584121234567", "Le atiende Ana", None, "agent", author="ana")
        await service.send("584121234567", "Desde la consola", None, "cli")

    with_service(env, clock, send)
    code, output = run("export", "--format", "jsonl")
    assert code == 0
    [conversation] = [json.loads(line) for line in output.splitlines()]
    assert [(m["text"], m["author"]) for m in conversation["messages"]] == [
        ("Le atiende Ana", "ana"),
        ("Desde la consola", None),
    ]
    rows = list(csv.DictReader(io.StringIO(run("export")[1])))
    assert [(r["text"], r["author"]) for r in rows] == [
        ("Le atiende Ana", "ana"),
        ("Desde la consola", ""),
    ]
