"""Drafts checked, published, compared and restored through the API (DESIGN §10): a version
with errors changes nothing, a stale draft is refused with 409, the files follow the version
in force when they are writable, and the browser (or the API) is the way in when they are not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import loopback
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN, RunningApp
from tests.served import ServeProcess
from tests.test_admin import sign_in_at

HOURS = "Abrimos de lunes a viernes, 8:00 a 17:00."
NEW_HOURS = "Abrimos de lunes a viernes, 9:00 a 18:00."
NOBODY = 65534


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


@pytest.fixture
def api(app: RunningApp) -> Iterator[httpx.Client]:
    with app.api() as client:
        yield client


def in_force(api: httpx.Client) -> dict[str, Any]:
    versions = api.get("/api/rules/versions").json()["versions"]
    active = [v for v in versions if v["active"]]
    assert len(active) == 1
    return dict(active[0])


def source(api: httpx.Client) -> tuple[str, dict[str, str], int]:
    version = in_force(api)
    whole = api.get(f"/api/rules/versions/{version['id']}").json()["version"]
    return whole["rules"], whole["templates"], whole["id"]


def simulate(api: httpx.Client, text: str, **draft: Any) -> dict[str, Any]:
    answer = api.post("/api/simulate", json={"phone": "584121234567", "text": text, **draft})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def replies(result: dict[str, Any]) -> list[str]:
    return [r["text"] for r in result["replies"]]


def test_check_reports_errors_by_line_and_warnings_and_changes_nothing(
    api: httpx.Client, workdir: Path
) -> None:
    rules, _, _ = source(api)
    broken = rules + "  - name: roto\n    pattern: '(abc'\n    reply: x\n"
    answer = api.post("/api/rules/check", json={"rules": broken})
    assert answer.status_code == 200
    found = answer.json()
    assert found["ok"] is False
    assert [(p["kind"], p["rule"]) for p in found["problems"]] == [("regex", "roto")]
    assert found["problems"][0]["line"] == len(rules.splitlines()) + 2
    shadowed = rules.replace(
        "rules:\n", "rules:\n  - name: h2\n    keywords: [horario]\n    reply: y\n"
    )
    warned = api.post("/api/rules/check", json={"rules": shadowed}).json()
    assert warned["ok"] is True and warned["problems"] == []
    assert any(w["rule"] == "horario" for w in warned["warnings"])
    unreadable = api.post("/api/rules/check", json={"rules": "rules: [\n"}).json()
    assert unreadable["ok"] is False and unreadable["problems"][0]["kind"] == "syntax"
    assert len(api.get("/api/rules/versions").json()["versions"]) == 1  # nothing published
    assert (workdir / "rules.yaml").read_text(encoding="utf-8") == rules


def test_publish_is_in_force_at_once_and_written_back_to_the_files(
    api: httpx.Client, app: RunningApp, workdir: Path
) -> None:
    rules, templates, base = source(api)
    edited = rules.replace("8:00 a 17:00", "9:00 a 18:00")
    answer = api.post(
        "/api/rules/versions", json={"rules": edited, "base": base, "note": "nuevo horario"}
    )
    assert answer.status_code == 201, answer.text
    version = answer.json()["version"]
    assert version["active"] is True and version["source"] == "api"
    assert version["note"] == "nuevo horario" and version["author"] == "admin"
    assert replies(simulate(api, "horario")) == [NEW_HOURS]
    assert (workdir / "rules.yaml").read_text(encoding="utf-8") == edited
    # `templates` left out kept the ones in force
    assert source(api)[1] == templates
    time.sleep(1.5)  # the file watcher looks again: what it finds is the version in force
    assert [v["id"] for v in api.get("/api/rules/versions").json()["versions"]] == [2, 1]


def test_a_draft_with_errors_changes_nothing(api: httpx.Client, workdir: Path) -> None:
    rules, _, base = source(api)
    broken = rules.replace("keywords: [horario", "keywords: {horario")
    answer = api.post("/api/rules/versions", json={"rules": broken, "base": base})
    assert answer.status_code == 422
    assert answer.json()["problems"][0]["line"] >= 1
    assert in_force(api)["id"] == base
    assert (workdir / "rules.yaml").read_text(encoding="utf-8") == rules
    traversal = api.post(
        "/api/rules/versions",
        json={"rules": rules, "templates": {"../fuera.txt": "x"}, "base": base},
    )
    assert traversal.status_code == 422
    assert not (workdir / "fuera.txt").exists()


def test_a_stale_draft_is_refused_with_the_version_in_force(api: httpx.Client) -> None:
    rules, _, base = source(api)
    first = api.post("/api/rules/versions", json={"rules": rules + "# uno\n", "base": base})
    assert first.status_code == 201
    second = api.post("/api/rules/versions", json={"rules": rules + "# dos\n", "base": base})
    assert second.status_code == 409
    assert second.json()["active"] == first.json()["version"]["id"]
    assert source(api)[0].endswith("# uno\n")
    missing = api.post("/api/rules/versions", json={"rules": rules})
    assert missing.status_code == 400 and "base" in missing.json()["error"]


def test_restore_publishes_the_old_content_as_a_new_version(
    api: httpx.Client, workdir: Path
) -> None:
    rules, templates, base = source(api)
    edited = rules.replace("8:00 a 17:00", "9:00 a 18:00")
    templates_edited = {**templates, "precio.txt": "Cuesta 7 USD."}
    published = api.post(
        "/api/rules/versions",
        json={"rules": edited, "templates": templates_edited, "base": base},
    )
    assert published.status_code == 201
    assert (workdir / "templates" / "precio.txt").read_text(encoding="utf-8") == "Cuesta 7 USD."
    restored = api.post(f"/api/rules/versions/{base}/restore", json={"note": "volver"})
    assert restored.status_code == 201
    version = restored.json()["version"]
    assert (version["id"], version["source"], version["note"]) == (3, "restore", "volver")
    assert replies(simulate(api, "horario")) == [HOURS]
    assert (workdir / "rules.yaml").read_text(encoding="utf-8") == rules
    assert (workdir / "templates" / "precio.txt").read_text(encoding="utf-8") == templates[
        "precio.txt"
    ]
    whole = api.get("/api/rules/versions/3").json()["version"]
    assert (whole["rules"], whole["templates"]) == (rules, templates)
    assert api.post("/api/rules/versions/99/restore", json={}).status_code == 404
    assert api.get("/api/rules/versions/abc").status_code == 404


def test_simulate_tries_a_draft_without_publishing_it(api: httpx.Client) -> None:
    rules, _, _ = source(api)
    draft = rules.replace("8:00 a 17:00", "9:00 a 18:00")
    assert replies(simulate(api, "horario", rules=draft)) == [NEW_HOURS]
    assert replies(simulate(api, "horario")) == [HOURS]
    bad = api.post(
        "/api/simulate", json={"phone": "584121234567", "text": "x", "rules": "rules: [\n"}
    )
    assert bad.status_code == 422 and bad.json()["problems"][0]["kind"] == "syntax"
    assert len(api.get("/api/rules/versions").json()["versions"]) == 1


def test_read_only_files_are_left_alone_and_the_version_still_published(
    workdir: Path, tmp_path: Path
) -> None:
    """A deploy whose files the service's user cannot write (as root, the service runs as
    `nobody`; otherwise the files are made read-only): publishing works, the files stay."""
    folder = Path(tempfile.mkdtemp(prefix="responder-ro-"))
    try:
        folder.chmod(0o755)
        shutil.copy(workdir / "rules.yaml", folder / "rules.yaml")
        shutil.copytree(workdir / "templates", folder / "templates")
        data = folder / "data"  # the database and the spool: writable by the service
        data.mkdir()
        prefix: tuple[str, ...] = ()
        if os.geteuid() == 0:
            os.chown(data, NOBODY, NOBODY)
            prefix = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
        else:
            for path in [folder / "rules.yaml", *(folder / "templates").iterdir()]:
                path.chmod(0o444)
            (folder / "templates").chmod(0o555)
            folder.chmod(0o555)
        before = (folder / "rules.yaml").read_text(encoding="utf-8")
        env = {
            "RESPONDER_DATABASE": str(data / "responder.db"),
            "RESPONDER_SPOOL": str(data / "spool"),
            "RESPONDER_RULES": str(folder / "rules.yaml"),
            "RESPONDER_TEMPLATES": str(folder / "templates"),
            "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        server = ServeProcess(data, env, prefix=prefix)
        try:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            with loopback.Client(base_url=server.url, headers=headers, timeout=10) as api:
                assert api.get("/api/rules").json()["files_writable"] is False
                rules, _, base = source(api)
                edited = rules.replace("8:00 a 17:00", "9:00 a 18:00")
                answer = api.post("/api/rules/versions", json={"rules": edited, "base": base})
                assert answer.status_code == 201, answer.text
                assert replies(simulate(api, "horario")) == [NEW_HOURS]
            with closing(sign_in_at(server.url)) as staff:  # the pages say where to edit
                for page in ("/admin/rules", "/admin/rules/editor"):
                    assert "son de solo lectura: edite las reglas aquí" in staff.get(page).text
        finally:
            assert server.stop() in (0, -15), server.output()
        assert (folder / "rules.yaml").read_text(encoding="utf-8") == before
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder)


def test_a_version_published_on_one_instance_answers_on_the_other_within_two_seconds(
    start_app: Callable[..., RunningApp], tmp_path: Path, workdir: Path
) -> None:
    first = start_app()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "rules.yaml").write_bytes((workdir / "rules.yaml").read_bytes())
    (elsewhere / "templates").mkdir()
    second = start_app(
        RESPONDER_RULES=str(elsewhere / "rules.yaml"),
        RESPONDER_TEMPLATES=str(workdir / "templates"),
    )
    with first.api() as api:
        rules, _, base = source(api)
        edited = rules.replace("8:00 a 17:00", "9:00 a 18:00")
        published = time.monotonic()
        assert api.post("/api/rules/versions", json={"rules": edited, "base": base}).is_success
    while second.service.active_rule_version() != 2:
        assert time.monotonic() - published < 2.0
        time.sleep(0.05)
    with second.api() as api:
        assert replies(simulate(api, "horario")) == [NEW_HOURS]
    # the second machine's files follow too, written once the version is in force there
    written = elsewhere / "rules.yaml"
    while written.read_text(encoding="utf-8") != edited:
        assert time.monotonic() - published < 5.0, written.read_text(encoding="utf-8")
        time.sleep(0.05)


def test_a_draft_that_is_not_text_is_a_400(api: httpx.Client) -> None:
    rules, _, base = source(api)
    for body in (
        {"rules": ["no"], "base": base},
        {"rules": rules, "templates": ["x"], "base": base},
        {"rules": rules, "templates": {"a.txt": 3}, "base": base},
        {"rules": rules, "base": "1"},
    ):
        answer = api.post("/api/rules/versions", json=body)
        assert answer.status_code == 400, body
    assert api.post("/api/rules/check", json={}).status_code == 400
    assert len(api.get("/api/rules/versions").json()["versions"]) == 1
