"""The contact book (DESIGN §12) over real HTTP, on SQLite and PostgreSQL: CSV import (all or
nothing, line by line problems, updates, opt-out kept), export (round trip, formulas), the
list's search, label filter and keyset pages, labels for many, permissions, the audit trail,
and contacts that never wrote staying out of the inbox; the CLI's import and export."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from responder.contacts_csv import escape, parse, unescape
from tests.conftest import RunningApp
from tests.test_admin import csrf_of, inbound, sign_in
from tests.test_cli_users import Run, env, run
from tests.test_team import add_person, bearer, sign_in_as, token_of

CLEAN = (
    "phone,labels,nombre,ciudad\n"
    "0412-555 0001,promo;vip,José Pérez,Mérida\n"
    "+58 414 555 0002,promo,Ana,\n"
    "584245550003,,Luis,Caracas\n"
)
AGENT_PASSWORD = "clave-de-bea-2"

__all__ = ["env", "run"]  # fixtures used here (the CLI run on its own database)


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app(backend=request.param)


def import_csv(api: httpx.Client, text: str | bytes, **params: str) -> httpx.Response:
    body = text.encode("utf-8") if isinstance(text, str) else text
    return api.post(
        "/api/contacts/import", content=body, params=params, headers={"Content-Type": "text/csv"}
    )


def listed(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = api.get("/api/contacts", params=params)
    assert response.status_code == 200, response.text
    contacts: list[dict[str, Any]] = response.json()["contacts"]
    return contacts


def by_phone(api: httpx.Client) -> dict[str, dict[str, Any]]:
    return {c["phone"]: c for c in listed(api, limit="500")}


def test_a_clean_file_is_imported_and_a_second_import_updates(app: RunningApp) -> None:
    with app.api() as api:
        first = import_csv(api, CLEAN)
        assert first.status_code == 200, first.text
        assert first.json() == {"imported": 3, "updated": 0, "problems": []}
        contacts = by_phone(api)
        assert set(contacts) == {"584125550001", "584145550002", "584245550003"}
        jose = contacts["584125550001"]
        assert set(jose) == {
            "phone",
            "fields",
            "labels",
            "opted_out",
            "first_seen_at",
            "last_activity_at",
            "conversation",
        }
        assert jose["fields"] == {"nombre": "José Pérez", "ciudad": "Mérida"}
        assert jose["labels"] == ["promo", "vip"]
        assert (jose["opted_out"], jose["last_activity_at"], jose["conversation"]) == (
            False,
            None,
            False,
        )
        assert contacts["584145550002"]["fields"] == {"nombre": "Ana"}  # empty cell: no field
        # Again, changed: an empty cell keeps the value, labels are only added.
        again = import_csv(
            api, "phone,labels,nombre,ciudad\n04125550001,nuevo,,Caracas\n04125550009,,Eva,\n"
        )
        assert again.json() == {"imported": 1, "updated": 1, "problems": []}
        jose = by_phone(api)["584125550001"]
        assert jose["fields"] == {"nombre": "José Pérez", "ciudad": "Caracas"}
        assert jose["labels"] == ["nuevo", "promo", "vip"]
        assert len(listed(api, limit="500")) == 4
        events = api.get("/api/audit").json()["events"]
    imports = [e for e in events if e["action"] == "contacts_imported"]
    assert [(e["detail"]["imported"], e["detail"]["updated"]) for e in imports] == [(1, 1), (3, 0)]


def test_a_file_with_problems_is_reported_line_by_line_and_nothing_is_written(
    app: RunningApp,
) -> None:
    text = (
        "phone;labels;nombre\n"
        "04125550001;promo;Ana\n"  # fine
        "not a number;;Bea\n"  # 3
        "04125550001;;Otra vez\n"  # 4: the same number as line 2
        "04145550002;mal etiqueta;Carla\n"  # 5
        f"04145550003;;{'x' * 501}\n"  # 6
        "04145550004;;Dora;de más\n"  # 7
        ";;Eva\n"  # 8
        ";;\n"  # blank in a spreadsheet's way: skipped
    )
    with app.api() as api:
        response = import_csv(api, text)
        assert response.status_code == 422
        body = response.json()
        assert (body["imported"], body["updated"]) == (0, 0)
        lines = [p["line"] for p in body["problems"]]
        assert lines == [3, 4, 5, 6, 7, 8]
        messages = {p["line"]: p["message"] for p in body["problems"]}
        assert "not a valid phone number" in messages[3]
        assert "also on line 2" in messages[4]
        assert "mal etiqueta" in messages[5]
        assert "at most 500" in messages[6]
        assert "4 cells where the header has 3" in messages[7]
        assert messages[8] == "no phone number"
        assert listed(api) == []  # not even line 2
        dry = import_csv(api, text, dry_run="1")
        assert dry.status_code == 422
        header = import_csv(api, "telefono,Fecha de alta\n04125550001,hoy\n")
        assert header.status_code == 422
        assert [p["line"] for p in header.json()["problems"]] == [1, 1]
        empty = import_csv(api, b"")
        assert empty.json()["problems"] == [{"line": 1, "message": "the file is empty"}]
        too_big = import_csv(api, b"phone\n" + b"x" * (16 * 1024 * 1024))
        assert too_big.status_code == 413
        assert "too large" in too_big.json()["error"]
        assert listed(api) == []


def test_semicolons_a_byte_order_mark_and_quoted_cells(app: RunningApp) -> None:
    text = '\ufeffphone;labels;nombre;nota\r\n04125550001;promo;"Pérez; José";"dos\r\nlíneas"\r\n'
    with app.api() as api:
        response = import_csv(api, text.encode("utf-8"))
        assert response.json() == {"imported": 1, "updated": 0, "problems": []}
        [contact] = listed(api)
    assert contact["fields"] == {"nombre": "Pérez; José", "nota": "dos\r\nlíneas"}
    assert contact["labels"] == ["promo"]


def test_an_import_never_opts_anyone_in(app: RunningApp) -> None:
    inbound(app, "BAJA", phone="584125550001")
    inbound(app, "BAJA", phone="584125550002")
    with app.api() as api:
        # Her opt-out confirmation may still be on its way out: it goes with the rest, and its
        # send's outcome is dropped when it comes (tests/test_privacy_races.py pins that down).
        forgotten = api.delete("/api/contacts/584125550002")
        assert forgotten.status_code == 200
        assert forgotten.json() == {
            "phone": "584125550002",
            "messages": 2,  # BAJA and its confirmation
            "kept_opted_out": True,
        }
        response = import_csv(
            api, "phone,opted_out,nombre\n04125550001,false,Ana\n04125550002,false,Bea\n"
        )
        assert response.json() == {"imported": 1, "updated": 1, "problems": []}
        contacts = by_phone(api)
        assert contacts["584125550001"]["opted_out"] is True
        assert contacts["584125550002"]["opted_out"] is True
        assert contacts["584125550002"]["conversation"] is False
        refused = api.post("/api/conversations/584125550002/messages", json={"text": "Hola"})
        assert refused.status_code == 409
    loop = app.service.loop or asyncio.new_event_loop()
    asyncio.run_coroutine_threadsafe(app.service.worker.wait_idle(), loop).result(timeout=10)
    with app.api() as api:  # nothing of her came back with the confirmation's outcome
        assert api.get("/api/conversations/584125550002").status_code == 404


def test_imported_contacts_are_not_in_the_inbox_until_they_write(app: RunningApp) -> None:
    inbound(app, "hola", phone="584125559999")
    with app.api() as api:
        assert import_csv(api, CLEAN).status_code == 200
        conversations = api.get("/api/conversations").json()["conversations"]
        assert [c["phone"] for c in conversations] == ["584125559999"]
    with closing(sign_in(app)) as owner:
        inbox = owner.get("/admin").text
        assert "5550001" not in inbox
        found = owner.get("/admin", params={"q": "José"}).text
        assert "5550001" not in found
        dashboard = owner.get("/admin/dashboard")
        assert dashboard.status_code == 200
    counts = asyncio.run_coroutine_threadsafe(
        app.service.store.conversation_counts(), app.service.loop or asyncio.new_event_loop()
    ).result(timeout=10)
    assert counts["all"] == 1
    inbound(app, "horario", phone="584125550001")
    messages = app.wait_for("584125550001", lambda m: len(m) == 2)
    assert messages[1]["text"].startswith("Abrimos")
    with app.api() as api:
        phones = [c["phone"] for c in api.get("/api/conversations").json()["conversations"]]
        assert sorted(phones) == ["584125550001", "584125559999"]
        jose = by_phone(api)["584125550001"]
        assert jose["conversation"] is True
        assert jose["fields"]["nombre"] == "José Pérez"  # kept when the person wrote


def test_search_label_filter_and_keyset_pages(app: RunningApp) -> None:
    rows = "".join(f"0412555{n:04d},{'par' if n % 2 == 0 else ''},Cliente {n}\n" for n in range(7))
    with app.api() as api:
        assert import_csv(api, "phone,labels,nombre\n" + rows).status_code == 200
        assert import_csv(api, CLEAN.replace("0412-555 0001", "04165550001")).status_code == 200
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
            page = api.get("/api/contacts", params=params).json()
            seen += [c["phone"] for c in page["contacts"]]
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == sorted(seen) and len(seen) == len(set(seen)) == 10
        paired = [c["phone"] for c in listed(api, label="par")]
        assert paired == ["584125550000", "584125550002", "584125550004", "584125550006"]
        first = api.get("/api/contacts", params={"label": "par", "limit": "3"}).json()
        rest = api.get(
            "/api/contacts", params={"label": "par", "limit": "3", "cursor": first["next"]}
        ).json()
        assert [c["phone"] for c in first["contacts"] + rest["contacts"]] == paired
        assert rest["next"] is None
        for query, expected in [
            ("jose perez", ["584165550001"]),  # accents and case folded
            ("MÉRIDA", ["584165550001"]),
            ("0416-555.0001", ["584165550001"]),  # a number as typed
            ("+58 416 5550001", ["584165550001"]),
            ("vip", ["584165550001"]),  # a label
            ("cliente 6", ["584125550006"]),
            ("nadie así", []),
            ("a[b (c) %_\\", []),  # taken literally by LIKE and by the regular expression
        ]:
            assert [c["phone"] for c in listed(api, q=query)] == expected, query
        assert [c["phone"] for c in listed(api, q="cliente", label="par", limit="1")] == [
            "584125550000"
        ]
        assert api.get("/api/contacts", params={"cursor": "!!"}).status_code == 400
        assert api.get("/api/contacts", params={"label": "a b"}).status_code == 400
        assert api.get("/api/contacts", params={"limit": "x"}).status_code == 400


def test_export_round_trips_and_defuses_formulas(app: RunningApp) -> None:
    text = (
        "phone,labels,nombre,nota\n"
        '04125550001,promo;vip,=HYPERLINK("http://x"),+1\n'
        "04125550002,,'-debe,@SUM(A1)\n"
        "04125550003,,'hola,-5\n"
    )
    with app.api() as api:
        assert import_csv(api, text).json()["imported"] == 3
        api.patch("/api/contacts/584125550003", json={"fields": {"edad": 30, "activo": True}})
        before = by_phone(api)
        assert before["584125550001"]["fields"]["nombre"] == '=HYPERLINK("http://x")'
        assert before["584125550002"]["fields"]["nombre"] == "-debe"  # the ' came off
        assert before["584125550003"]["fields"]["nombre"] == "'hola"  # its own '
        exported = api.get("/api/contacts/export")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        body = exported.content.decode("utf-8")
        assert body.startswith("\ufeffphone,labels,opted_out,")
        table = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
        assert table[0] == ["phone", "labels", "opted_out", "activo", "edad", "nombre", "nota"]
        assert table[1] == [
            "584125550001",
            "promo;vip",
            "false",
            "",
            "",
            '\'=HYPERLINK("http://x")',
            "'+1",
        ]
        assert table[2][5:] == ["'-debe", "'@SUM(A1)"]
        assert table[3][3:] == ["true", "30", "''hola", "'-5"]
        for row in table[1:]:
            assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)
        again = import_csv(api, exported.content)
        assert again.json() == {"imported": 0, "updated": 3, "problems": []}
        after = by_phone(api)
    for phone, contact in after.items():
        # Imported values are text: the number and the boolean come back as their CSV words.
        expected = {k: v for k, v in before[phone]["fields"].items() if k not in ("edad", "activo")}
        assert {k: v for k, v in contact["fields"].items() if k not in ("edad", "activo")} == (
            expected
        )
        assert contact["labels"] == before[phone]["labels"]


@pytest.mark.parametrize(
    "value", ["=1+1", "+58", "-3", "@x", "\tx", "'", "''", "'=x", "'hola", "hola", "", "a'b"]
)
def test_escape_and_unescape_are_inverse(value: str) -> None:
    assert unescape(escape(value)) == value
    assert not escape(value).startswith(("=", "+", "-", "@", "\t", "\r"))


def test_the_csv_reader_without_a_database() -> None:
    plan = parse(b"phone,labels\n04125550001,a;b;a\n", "VE")
    assert plan.clean and plan.rows[0].labels == ("a", "b")
    latin = parse("phone;nombre\n04125550001;José\n".encode("cp1252"), "VE")
    assert latin.rows[0].fields == {"nombre": "José"}  # Excel's "CSV" in Spanish
    unclosed = parse(b'phone,nombre\n04125550001,"abierta\n', "VE")
    assert [p.line for p in unclosed.problems] == [2]
    twice = parse(b"phone,Phone\n1,2\n", "VE")
    assert "twice" in twice.problems[0].message


def test_patch_takes_the_whole_label_set_and_is_audited(app: RunningApp) -> None:
    inbound(app, "hola", phone="584125550001")
    with app.api() as api:
        api.patch("/api/contacts/584125550001", json={"labels": ["a", "b"]})
        response = api.patch(
            "/api/contacts/584125550001",
            json={"labels": ["b", "c"], "fields": {"nombre": "Ana"}},
        )
        assert response.status_code == 200
        assert response.json()["labels"] == ["b", "c"]
        assert response.json()["fields"] == {"nombre": "Ana"}
        events = api.get("/api/audit").json()["events"]
    changed = [e for e in events if e["action"] == "contact_changed"]
    assert changed[0]["subject"] == "584125550001"
    assert changed[0]["actor"] == "admin"
    assert changed[0]["detail"] == {
        "fields": ["nombre"],
        "labels_added": ["c"],
        "labels_removed": ["a"],
    }


def test_agents_list_and_label_but_do_not_import_or_export(app: RunningApp) -> None:
    add_person(app, "bea", "agent", AGENT_PASSWORD)
    with app.api() as api:
        import_csv(api, CLEAN)
    with closing(bearer(app, token_of(app, "bea"))) as agent:
        assert len(agent.get("/api/contacts").json()["contacts"]) == 3
        assert import_csv(agent, CLEAN).status_code == 403
        assert agent.get("/api/contacts/export").status_code == 403
        patched = agent.patch("/api/contacts/584245550003", json={"labels": {"add": ["x"]}})
        assert patched.status_code == 200
    with closing(sign_in(app)) as owner:
        page = owner.get("/admin/contacts").text
        assert 'action="/admin/contacts/import"' in page
        assert 'href="/admin/contacts/export"' in page
    stranger = httpx.Client(base_url=app.url, trust_env=False)
    with closing(stranger):
        assert stranger.get("/api/contacts").status_code == 401


def test_the_contacts_page_labels_many_at_once(app: RunningApp) -> None:
    with app.api() as api:
        import_csv(api, CLEAN)
    inbound(app, "hola", phone="584245550003")
    with closing(sign_in(app)) as owner:
        page = owner.get("/admin/contacts")
        assert page.status_code == 200
        assert "Contactos" in page.text and "José Pérez" in page.text
        # Only the one that wrote links to a conversation.
        assert page.text.count('href="/admin/conversations/') == 1
        assert 'href="/admin/conversations/584245550003"' in page.text
        csrf = csrf_of(page.text)
        form = {
            "csrf": csrf,
            "label": "feria",
            "do": "add",
            "sel.584125550001": "1",
            "sel.584145550002": "1",
        }
        done = owner.post("/admin/contacts/labels", data=form)
        assert done.status_code == 303
        shown = owner.get(done.headers["location"]).text
        assert "2 contactos" in shown
        filtered = owner.get("/admin/contacts", params={"label": "feria"}).text
        assert "584125550001" in filtered.replace(" ", "") or "5550001" in filtered
        assert "Luis" not in filtered
        removed = owner.post(
            "/admin/contacts/labels",
            data={**form, "do": "remove", "label": "promo"},
        )
        assert removed.status_code == 303
        bad = owner.post("/admin/contacts/labels", data={**form, "label": "mal etiqueta"})
        assert bad.status_code == 400
    with app.api() as api:
        contacts = by_phone(api)
        events = api.get("/api/audit").json()["events"]
    assert contacts["584125550001"]["labels"] == ["feria", "vip"]
    assert contacts["584145550002"]["labels"] == ["feria"]
    assert contacts["584245550003"]["labels"] == []
    bulk = [e for e in events if e["action"] == "contact_changed"]
    assert bulk[-1]["detail"]["phones"] == ["584125550001", "584145550002"]
    assert bulk[-1]["detail"]["labels_added"] == ["feria"]


def test_the_contacts_page_imports_a_file(app: RunningApp) -> None:
    with closing(sign_in(app)) as owner:
        csrf = csrf_of(owner.get("/admin/contacts").text)
        bad = CLEAN + "12,,Nadie,\n"
        refused = owner.post(
            "/admin/contacts/import",
            data={"csrf": csrf},
            files={"file": ("clientes.csv", bad.encode(), "text/csv")},
        )
        assert refused.status_code == 422
        assert "Línea 5" in refused.text and "no es un número de teléfono válido" in refused.text
        assert "No se importó nada" in refused.text
        done = owner.post(
            "/admin/contacts/import",
            data={"csrf": csrf},
            files={"file": ("clientes.csv", CLEAN.encode(), "text/csv")},
        )
        assert done.status_code == 303
        assert "3 contactos nuevos" in owner.get(done.headers["location"]).text
        forged = owner.post(
            "/admin/contacts/import",
            data={"csrf": "wrong"},
            files={"file": ("clientes.csv", CLEAN.encode(), "text/csv")},
        )
        assert forged.status_code == 403
        exported = owner.get("/admin/contacts/export")
        assert exported.status_code == 200
        assert exported.content.decode("utf-8").count("\r\n") == 4


def test_the_cli_imports_checks_and_exports(run: Run, tmp_path: Path) -> None:
    good = tmp_path / "clientes.csv"
    good.write_text(CLEAN, encoding="utf-8")
    bad = tmp_path / "malo.csv"
    bad.write_text("phone,nombre\n04125550001,Ana\nxx,Bea\n", encoding="utf-8")

    code, out = run("contacts", "import", str(bad))
    assert code == 1
    assert "line 3: 'xx' is not a valid phone number" in out
    assert "nothing was imported" in out
    code, out = run("contacts", "import", str(good), "--dry-run")
    assert (code, out.strip()) == (
        0,
        "would import 3 new contact(s) and update 0 (dry run: nothing was written)",
    )
    code, out = run("contacts", "export")
    assert code == 0 and out.strip("\ufeff\r\n") == "phone,labels,opted_out"
    code, out = run("contacts", "import", str(good))
    assert (code, out.strip()) == (0, "imported 3 new contact(s), updated 0")
    code, out = run("contacts", "import", str(good), "--dry-run")
    assert out.strip().startswith("would import 0 new contact(s) and update 3")
    exported = tmp_path / "salida.csv"
    code, _ = run("contacts", "export", str(exported))
    assert code == 0
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "\ufeffphone,labels,opted_out,ciudad,nombre"
    assert lines[1] == "584125550001,promo;vip,false,Mérida,José Pérez"
    code, out = run("contacts", "export")
    assert out.splitlines()[1:] == lines[1:]
    code, out = run("contacts", "import", str(exported))
    assert (code, out.strip()) == (0, "imported 0 new contact(s), updated 3")


def test_a_dry_run_counts_and_writes_nothing(app: RunningApp) -> None:
    with app.api() as api:
        import_csv(api, "phone\n04125550001\n")
        dry = import_csv(api, CLEAN.replace("0412-555 0001", "04125550001"), dry_run="1")
        assert dry.status_code == 200
        assert dry.json() == {"imported": 2, "updated": 1, "problems": [], "dry_run": True}
        assert [c["phone"] for c in listed(api)] == ["584125550001"]
        assert listed(api)[0]["fields"] == {}
        events = api.get("/api/audit").json()["events"]
    assert [e["action"] for e in events].count("contacts_imported") == 1


def test_a_contact_s_page_edits_its_labels_and_fields(app: RunningApp) -> None:
    add_person(app, "bea", "agent", AGENT_PASSWORD)
    with app.api() as api:
        import_csv(api, CLEAN)
    with closing(sign_in_as(app, "bea", AGENT_PASSWORD)) as agent:
        listing = agent.get("/admin/contacts").text
        assert 'href="/admin/contacts/584125550001"' in listing
        assert "/admin/contacts/import" not in listing  # owners only
        assert agent.get("/admin/contacts/export").status_code == 403
        page = agent.get("/admin/contacts/584125550001")
        assert page.status_code == 200
        assert "Nunca escribió" in page.text and 'value="promo vip"' in page.text
        form = {
            "csrf": csrf_of(page.text),
            "labels": "vip, nuevo",
            "field:nombre": "José P.",
            "field:ciudad": "",
            "new_name": "zona",
            "new_value": "centro",
        }
        saved = agent.post("/admin/contacts/584125550001", data=form)
        assert saved.status_code == 303
        assert "Contacto guardado" in agent.get(saved.headers["location"]).text
        bad = agent.post("/admin/contacts/584125550001", data={**form, "labels": "año"})
        assert bad.status_code == 400 and "Etiqueta «año»" in bad.text
        assert agent.get("/admin/contacts/584129999999").status_code == 404
    with app.api() as api:
        jose = by_phone(api)["584125550001"]
        events = api.get("/api/audit").json()["events"]
    assert jose["labels"] == ["nuevo", "vip"]
    assert jose["fields"] == {"nombre": "José P.", "zona": "centro"}
    changed = next(e for e in events if e["action"] == "contact_changed")
    assert (changed["actor"], changed["subject"]) == ("bea", "584125550001")
    assert changed["detail"] == {
        "fields": ["ciudad", "nombre", "zona"],
        "labels_added": ["nuevo"],
        "labels_removed": ["promo"],
    }


def test_fields_saved_on_the_conversation_s_panel_are_audited(app: RunningApp) -> None:
    inbound(app, "hola", phone="584125550001")
    with closing(sign_in(app)) as owner:
        page = owner.get("/admin/conversations/584125550001").text
        form = {"csrf": csrf_of(page), "new_name": "nombre", "new_value": "Ana"}
        assert owner.post("/admin/conversations/584125550001/fields", data=form).status_code == 303
    with app.api() as api:
        events = api.get("/api/audit").json()["events"]
    changed = next(e for e in events if e["action"] == "contact_changed")
    assert (changed["subject"], changed["detail"]) == ("584125550001", {"fields": ["nombre"]})


def test_the_import_form_refuses_what_is_not_its_form(app: RunningApp) -> None:
    with closing(sign_in(app)) as owner:
        csrf = csrf_of(owner.get("/admin/contacts").text)
        plain = owner.post("/admin/contacts/import", data={"csrf": csrf})
        assert plain.status_code == 400 and "formulario de la página" in plain.text
        broken = owner.post(
            "/admin/contacts/import",
            content=b"--x\r\nno headers",
            headers={"Content-Type": "multipart/form-data; boundary=x"},
        )
        assert broken.status_code in (400, 403)
        no_file = owner.post(
            "/admin/contacts/import",
            data={"csrf": csrf},
            files={"file": ("", b"", "text/csv")},
        )
        assert no_file.status_code == 400 and "Elija un archivo CSV" in no_file.text
        big = b"phone\n" + b"1" * (16 * 1024 * 1024)
        too_big = owner.post(
            "/admin/contacts/import",
            data={"csrf": csrf},
            files={"file": ("grande.csv", big, "text/csv")},
        )
        assert too_big.status_code == 413 and "demasiado grande" in too_big.text
