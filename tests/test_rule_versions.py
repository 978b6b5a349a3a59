"""The rules in force are versions in the store: files are imported, every instance answers
with the newest version within two seconds, a stale draft is refused."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from responder.rules.reload import read_files, version_sha
from responder.store.models import StaleRuleVersion
from tests import loopback
from tests.conftest import RunningApp

PHONE = "584121234567"
T = TypeVar("T")


def versions(app: RunningApp) -> list[tuple[int, str, str]]:
    with sqlite3.connect(app.service.settings.database) as db:
        return db.execute("SELECT id, source, note FROM rule_versions ORDER BY id").fetchall()


def answer(app: RunningApp, text: str, phone: str = PHONE) -> str:
    """The auto-reply `text` from `phone` gets (the number's first message in the test)."""
    response = loopback.get(app.webhook(), params={"msg": text, "phone": phone})
    assert response.status_code == 200
    replies = [m["text"] for m in app.messages(phone) if m["direction"] == "out"]
    assert len(replies) == 1
    return str(replies[0])


def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> float:
    """Seconds until `condition` held; fails the test after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not true within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - started


def test_the_files_become_the_first_version_once(
    start_app: Callable[..., RunningApp],
) -> None:
    first = start_app()
    assert versions(first) == [(1, "file", "imported from rules.yaml")]
    assert first.service.rules.version_id == 1
    second = start_app()  # the same files on a second instance: nothing new to import
    assert versions(second) == [(1, "file", "imported from rules.yaml")]
    assert second.service.rules.current.version.number == 1


def test_a_file_edit_on_one_instance_is_answered_by_the_other_within_two_seconds(
    start_app: Callable[..., RunningApp], workdir: Path, tmp_path: Path
) -> None:
    # Two machines: each has its own copy of the files, both share the database.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(workdir / "rules.yaml", elsewhere / "rules.yaml")
    shutil.copytree(workdir / "templates", elsewhere / "templates")
    editor = start_app()
    other = start_app(
        RESPONDER_RULES=str(elsewhere / "rules.yaml"),
        RESPONDER_TEMPLATES=str(elsewhere / "templates"),
    )
    assert answer(other, "horario") == "Abrimos de lunes a viernes, 8:00 a 17:00."
    rules = workdir / "rules.yaml"
    rules.write_text(rules.read_text().replace("8:00 a 17:00", "9:00 a 18:00"), encoding="utf-8")
    wait_for(lambda: len(versions(editor)) == 2)
    assert versions(editor)[1][1] == "file"
    waited = wait_for(lambda: other.service.rules.version_id == 2)
    assert waited < 2.0
    assert answer(other, "horario", "584121234568") == "Abrimos de lunes a viernes, 9:00 a 18:00."
    # A template edit is a new version too.
    (workdir / "templates" / "precio.txt").write_text("Cuesta 7 USD.", encoding="utf-8")
    wait_for(lambda: other.service.rules.version_id == 3)
    assert answer(other, "precio cafe", "584121234569") == "Cuesta 7 USD."


def test_a_broken_edit_is_not_imported(
    start_app: Callable[..., RunningApp], workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = start_app()
    rules = workdir / "rules.yaml"
    rules.write_text(rules.read_text() + "  - name: roto\n    pattern: '(\n", encoding="utf-8")
    # The watcher has looked, and refused it (said at the end of its look, after any import).
    wait_for(lambda: "rules not imported, the version in force stays" in caplog.text, 10)
    assert versions(app) == [(1, "file", "imported from rules.yaml")]
    assert app.service.rules.last_problems  # and says why
    assert answer(app, "horario") == "Abrimos de lunes a viernes, 8:00 a 17:00."


def test_a_draft_from_an_older_version_is_refused(
    start_app: Callable[..., RunningApp], workdir: Path
) -> None:
    app = start_app()
    store, loop = app.service.store, app.service.loop
    assert loop is not None

    def on_app_loop(work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=5)

    rules, templates = read_files(workdir / "rules.yaml", workdir / "templates")
    edited = rules.replace("8:00 a 17:00", "10:00 a 16:00")
    sha = version_sha(edited, templates)
    published = on_app_loop(
        store.add_rule_version(edited, templates, sha256=sha, source="api", base=1, check_base=True)
    )
    assert published.id == 2
    with pytest.raises(StaleRuleVersion) as refused:
        on_app_loop(
            store.add_rule_version(
                edited + "\n", templates, sha256="x", source="api", base=1, check_base=True
            )
        )
    assert refused.value.active == 2
    assert [v.id for v in on_app_loop(store.rule_versions())] == [2, 1]
    wait_for(lambda: app.service.rules.version_id == 2)  # in force within a poll
    assert answer(app, "horario", "584121234568") == "Abrimos de lunes a viernes, 10:00 a 16:00."
