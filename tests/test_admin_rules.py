"""The rules editor, the versions and their differences in the admin, through real HTTP: a
draft checked as one types, tried beside the rules in force, published, refused when broken or
stale, restored in one click."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests import loopback
from tests.conftest import RunningApp
from tests.test_admin import csrf_of, sign_in

HOURS = "Abrimos de lunes a viernes, 8:00 a 17:00."
NEW_HOURS = "Abrimos de lunes a viernes, 9:00 a 18:00."


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


@pytest.fixture
def staff(app: RunningApp) -> Iterator[httpx.Client]:
    client = sign_in(app)
    yield client
    client.close()


def editor_form(page: str) -> dict[str, str]:
    """The editor form's fields as the browser would send them (text areas unescaped)."""
    fields = {"csrf": csrf_of(page)}
    base = re.search(r'name="base" value="(\d*)"', page)
    assert base
    fields["base"] = base.group(1)
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S):
        fields[html.unescape(name)] = html.unescape(body)
    return fields


def test_the_editor_shows_the_version_in_force_and_publishes_a_draft(
    staff: httpx.Client, app: RunningApp, workdir: Path
) -> None:
    page = staff.get("/admin/rules/editor")
    assert page.status_code == 200
    form = editor_form(page.text)
    assert form["rules"] == (workdir / "rules.yaml").read_text(encoding="utf-8")
    assert form["template:precio.txt"] == "El precio de {{ match.producto }} es 5 USD."
    assert "Al publicar también se actualizan" in page.text
    # a browser sends line ends as CRLF: stored as LF
    form["rules"] = form["rules"].replace("8:00 a 17:00", "9:00 a 18:00").replace("\n", "\r\n")
    published = staff.post(
        "/admin/rules/editor", data={**form, "do": "publish", "note": "horario nuevo"}
    )
    assert published.status_code == 303
    assert published.headers["location"].startswith("/admin/rules/versions/2")
    shown = staff.get(published.headers["location"])
    assert "Versión 2 publicada" in shown.text
    assert (
        "<ins>+    reply: &#34;Abrimos de lunes a viernes, 9:00 a 18:00.&#34;</ins>" in shown.text
    )
    assert "horario nuevo" in shown.text
    assert "\r" not in (workdir / "rules.yaml").read_text(encoding="utf-8")
    assert app.service.rules_source()[2] == 2
    with app.api() as api:
        result = api.post("/api/simulate", json={"phone": "584121234567", "text": "horario"})
        assert [r["text"] for r in result.json()["replies"]] == [NEW_HOURS]
    versions = staff.get("/admin/rules/versions")
    assert "admin" in versions.text and "navegador" in versions.text


def test_a_broken_draft_is_shown_with_its_line_and_nothing_changes(
    staff: httpx.Client, app: RunningApp, workdir: Path
) -> None:
    form = editor_form(staff.get("/admin/rules/editor").text)
    form["rules"] += "  - name: roto\n    pattern: '(abc'\n    reply: x\n"
    refused = staff.post("/admin/rules/editor", data={**form, "do": "publish"})
    assert refused.status_code == 422
    assert "No se publicó" in refused.text
    line = len(form["rules"].splitlines()) - 1
    assert f'data-line="{line}"' in refused.text
    assert "roto" in editor_form(refused.text)["rules"]  # the draft is kept on the page
    assert app.service.rules_source()[2] == 1
    assert "roto" not in (workdir / "rules.yaml").read_text(encoding="utf-8")


def test_a_stale_draft_is_refused_with_a_way_to_see_what_changed(
    staff: httpx.Client, app: RunningApp
) -> None:
    old_form = editor_form(staff.get("/admin/rules/editor").text)
    newer = editor_form(staff.get("/admin/rules/editor").text)
    newer["rules"] += "# primero\n"
    assert staff.post("/admin/rules/editor", data={**newer, "do": "publish"}).status_code == 303
    old_form["rules"] += "# segundo\n"
    stale = staff.post("/admin/rules/editor", data={**old_form, "do": "publish"})
    assert stale.status_code == 409
    assert "alguien publicó la versión 2" in stale.text
    assert 'href="/admin/rules/versions/2?contra=1"' in stale.text
    assert app.service.rules_source()[0].endswith("# primero\n")


def test_the_try_box_answers_with_the_draft_beside_the_rules_in_force(
    staff: httpx.Client, app: RunningApp
) -> None:
    form = editor_form(staff.get("/admin/rules/editor").text)
    form["rules"] = form["rules"].replace("8:00 a 17:00", "9:00 a 18:00")
    tried = staff.post("/admin/rules/editor", data={**form, "do": "try", "try_text": "¿horario?"})
    assert tried.status_code == 200
    flat = " ".join(tried.text.split())
    draft_at, in_force_at = flat.index("Con el borrador"), flat.index("Con las reglas en uso")
    assert draft_at < flat.index(NEW_HOURS, draft_at) < in_force_at < flat.index(HOURS, in_force_at)
    assert NEW_HOURS not in flat[in_force_at:]
    assert app.service.rules_source()[2] == 1  # trying publishes nothing


def test_the_check_endpoint_needs_the_form_token_and_answers_in_spanish(
    staff: httpx.Client, app: RunningApp
) -> None:
    page = staff.get("/admin/rules/editor").text
    rules = editor_form(page)["rules"]
    no_token = staff.post("/admin/rules/check", json={"rules": rules})
    assert no_token.status_code == 403
    checked = staff.post(
        "/admin/rules/check", json={"rules": "rules: [\n"}, headers={"X-CSRF": csrf_of(page)}
    )
    assert checked.status_code == 200
    assert checked.json()["ok"] is False and checked.json()["problems"][0]["line"] >= 1
    anonymous = loopback.post(f"{app.url}/admin/rules/check", json={"rules": rules})
    assert anonymous.status_code == 401


def test_restore_brings_an_old_version_back_as_the_newest(
    staff: httpx.Client, app: RunningApp, workdir: Path
) -> None:
    form = editor_form(staff.get("/admin/rules/editor").text)
    original = form["rules"]
    form["rules"] = original.replace("8:00 a 17:00", "9:00 a 18:00")
    assert staff.post("/admin/rules/editor", data={**form, "do": "publish"}).status_code == 303
    page = staff.get("/admin/rules/versions/1")
    assert "Restaurar esta versión" in page.text
    restored = staff.post("/admin/rules/versions/1/restore", data={"csrf": csrf_of(page.text)})
    assert restored.status_code == 303
    shown = staff.get(restored.headers["location"])
    assert "Versión 1 restaurada como versión 3" in shown.text
    assert app.service.rules_source()[0] == original
    assert (workdir / "rules.yaml").read_text(encoding="utf-8") == original
    assert staff.get("/admin/rules/versions/99").status_code == 404
    no_csrf = staff.post("/admin/rules/versions/1/restore", data={})
    assert no_csrf.status_code == 403


def test_unreadable_drafts_and_dates_are_refused_with_a_reason(
    staff: httpx.Client, app: RunningApp
) -> None:
    page = staff.get("/admin/rules/editor").text
    token = {"X-CSRF": csrf_of(page)}
    for body in ({"rules": 5}, {"rules": "x", "templates": {"a.txt": 1}}):
        refused = staff.post("/admin/rules/check", json=body, headers=token)
        assert refused.status_code == 400 and refused.json()["error"] == "borrador ilegible"
    garbled = staff.post(
        "/admin/rules/check",
        content=b"{not json",
        headers={**token, "Content-Type": "application/json"},
    )
    assert garbled.status_code == 400
    form = editor_form(page)
    tried = staff.post(
        "/admin/rules/editor",
        data={**form, "do": "try", "try_text": "horario", "try_at": "mañana"},
    )
    assert tried.status_code == 400 and "no es válida" in tried.text
    assert app.service.rules_source()[2] == 1
