"""The Difusiones pages over real HTTP (the browser walk-through is test_broadcasts_browser.py):
bad input answered in Spanish with nothing created, owners only for every change, the live
estimate, the progress JSON whose counts add up, unknown ids and refused transitions, the
recipients' filter and keyset pages, and the quiet-hours wait in words."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from responder.web.admin import broadcasts as pages
from tests.conftest import Clock, RunningApp, massiva_env, massms_env
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS
from tests.test_admin import csrf_of, flat, sign_in
from tests.test_broadcasts import contact, sent_to, wait_until
from tests.test_team import add_person, sign_in_as

RULES = """
settings:
  timezone: America/Caracas
  country: VE
  send_rate: {{massiva: 2}}
{extra}
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos de lunes a viernes."
"""
PHONES = [f"5841250000{i:02d}" for i in range(5)]
PASSWORD = "clave-segura-1"


def shop_with(
    start_app: Callable[..., RunningApp],
    workdir: Path,
    massiva: tuple[FakeMassiva, str],
    backend: str = "sqlite",
    extra: str = "",
) -> RunningApp:
    text = RULES.format(extra=textwrap.indent(extra, "  "))
    (workdir / "rules.yaml").write_text(text, encoding="utf-8")
    fake, url = massiva
    app = start_app(backend=backend, **massiva_env(url, fake))
    for i, phone in enumerate(PHONES):
        contact(app, phone, ["promo"] if i < 4 else ["vip"], ciudad="Valencia" if i else "Maracay")
    return app


@pytest.fixture
def shop(
    start_app: Callable[..., RunningApp], workdir: Path, massiva: tuple[FakeMassiva, str]
) -> RunningApp:
    return shop_with(start_app, workdir, massiva)


@pytest.fixture
def owner(shop: RunningApp) -> Iterator[httpx.Client]:
    client = sign_in(shop)
    yield client
    client.close()


def form(client: httpx.Client, path: str, **data: str) -> httpx.Response:
    csrf = csrf_of(client.get("/admin/broadcasts/new").text)
    return client.post(path, data={"csrf": csrf, **data})


def count_of(shop: RunningApp) -> int:
    with shop.api() as api:
        return len(api.get("/api/broadcasts").json()["broadcasts"])


@pytest.mark.parametrize(
    ("data", "spanish"),
    [
        ({"text": ""}, "Escriba el texto."),
        ({"text": "Hola {{ contact.nombre }"}, "error de plantilla en la línea 1"),
        ({"text": "x" * 1601}, "demasiado largo"),
        ({"text": "Hola", "field_name_1": "ciudad"}, "valor que debe tener el campo «ciudad»"),
        ({"text": "Hola", "field_value_2": "Valencia"}, "nombre del campo que debe valer"),
        ({"text": "Hola", "days": "diez"}, "entre 1 y 3650"),
        ({"text": "Hola", "days": "0"}, "entre 1 y 3650"),
        ({"text": "Hola", "when": "later"}, "Elija la fecha y la hora"),
        ({"text": "Hola", "when": "later", "send_at": "mañana"}, "no es válida"),
        ({"text": "Hola", "when": "later", "send_at": "2026-11-23T09:59"}, "ya pasó"),
        ({"text": "Hola", "when": "later", "send_at": "2031-01-01T10:00"}, "demasiado lejos"),
        ({"text": "Hola", "via": "otro"}, "El proveedor debe ser uno de los configurados"),
        ({"text": "Hola", "label:nadie": "1"}, "no tiene destinatarios"),
    ],
)
def test_bad_input_is_answered_in_spanish_and_nothing_is_created(
    shop: RunningApp, owner: httpx.Client, data: dict[str, str], spanish: str
) -> None:
    for path in ("/admin/broadcasts/preview", "/admin/broadcasts"):
        answer = form(owner, path, **data)
        if path.endswith("preview") and spanish == "no tiene destinatarios":
            assert answer.status_code == 200
            assert "Nadie cumple estas condiciones" in flat(answer)
            continue
        assert answer.status_code == 400, (path, answer.text[:300])
        assert spanish in flat(answer), path
        # What was written is kept in the form.
        if data.get("text") and len(data["text"]) < 100:
            assert data["text"].replace('"', "&#34;") in answer.text
    assert count_of(shop) == 0


def test_preview_then_send_with_fields_and_labels(
    shop: RunningApp, owner: httpx.Client, massiva: tuple[FakeMassiva, str]
) -> None:
    data = {
        "name": "Valencia",
        "text": "Hola desde {{ contact.ciudad }}",
        "label:promo": "1",
        "field_name_1": "ciudad",
        "field_value_1": "Valencia",
    }
    preview = form(owner, "/admin/broadcasts/preview", **data)
    assert preview.status_code == 200
    page = flat(preview)
    assert '<strong id="preview-count">3</strong>' in page  # promo and Valencia: 3 of 5
    assert "Hola desde Valencia" in page
    assert "Enviar ahora a 3 personas" in page
    assert count_of(shop) == 0
    created = form(owner, "/admin/broadcasts", **data)
    assert created.status_code == 303
    location = created.headers["location"]
    assert location.endswith("?ok=created")
    broadcast_id = int(location.split("/")[-1].split("?")[0])
    wait_until(lambda: len(sent_to(massiva[0], "Hola desde")) == 2)  # two a second
    progress = owner.get(f"/admin/partials/broadcasts/{broadcast_id}").json()
    assert progress["recipients"] == 3
    assert sum(progress["counts"].values()) == 3
    assert progress["status"] == "running" and not progress["final"]
    assert sum(piece["width"] for piece in progress["bar"]) <= 1000


def test_the_estimate_counts_the_segment(shop: RunningApp, owner: httpx.Client) -> None:
    def estimate(**data: str) -> dict[str, object]:
        answer = form(owner, "/admin/broadcasts/estimate", **data)
        assert answer.status_code == 200
        found: dict[str, object] = answer.json()
        return found

    assert estimate(text="Hola", **{"label:promo": "1"}) == {
        "recipients": 4,
        "parts": 1,
        "estimated_segments": 4,
        "encoding": "GSM-7",
    }
    # Ten SMS of Unicode text: more than a URL would hold, fine in the form's body.
    long = estimate(text="🙂 " * 530, **{"label:promo": "1"})
    assert (long["recipients"], long["parts"], long["estimated_segments"]) == (4, 27, 108)
    assert long["encoding"] == "UCS-2"
    assert estimate(text="", **{"label:nadie": "1"})["recipients"] == 0
    bad = estimate(text="{% if %}", days="x")
    assert bad == {"error": "Los días de actividad deben ser un número entero entre 1 y 3650."}
    assert str(estimate(text="{% if %}")["error"]).startswith(
        "El texto tiene un error de plantilla"
    )
    assert count_of(shop) == 0


def test_agents_look_but_change_nothing(
    shop: RunningApp, owner: httpx.Client, massiva: tuple[FakeMassiva, str]
) -> None:
    created = form(owner, "/admin/broadcasts", text="Oferta", **{"label:promo": "1"})
    path = created.headers["location"].split("?")[0]
    add_person(shop, "beto", "agent", PASSWORD)
    agent = sign_in_as(shop, "beto", PASSWORD)
    listing = agent.get("/admin/broadcasts")
    assert listing.status_code == 200
    assert "Oferta" in listing.text and "Nueva difusión" not in listing.text
    shown = agent.get(path)
    assert shown.status_code == 200
    assert "Pausar" not in shown.text and "Cancelar la difusión" not in shown.text
    assert agent.get("/admin/broadcasts/new").status_code == 403
    csrf = csrf_of(shown.text)
    estimate = agent.post("/admin/broadcasts/estimate", data={"csrf": csrf, "text": "x"})
    assert estimate.status_code == 403
    for target in (
        "/admin/broadcasts",
        "/admin/broadcasts/preview",
        *(f"{path}/{act}" for act in ("pause", "resume", "cancel")),
    ):
        refused = agent.post(target, data={"csrf": csrf, "text": "Otra", "label:promo": "1"})
        assert refused.status_code == 403, target
        assert "solo para dueños" in refused.text
    with shop.api() as api:
        [only] = api.get("/api/broadcasts").json()["broadcasts"]
    assert only["status"] == "running"


def test_transitions_unknown_ids_and_the_recipients_pages(
    shop: RunningApp,
    owner: httpx.Client,
    massiva: tuple[FakeMassiva, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = form(owner, "/admin/broadcasts", text="Oferta", **{"label:promo": "1"})
    path = created.headers["location"].split("?")[0]
    csrf = csrf_of(owner.get(path).text)
    assert owner.post(f"{path}/resume", data={"csrf": csrf}).status_code == 409
    paused = owner.post(f"{path}/pause", data={"csrf": csrf})
    assert paused.status_code == 303 and paused.headers["location"].endswith("?ok=paused")
    assert "en pausa" in flat(owner.get(paused.headers["location"]))
    cancelled = owner.post(f"{path}/cancel", data={"csrf": csrf})
    assert cancelled.headers["location"].endswith("?ok=cancelled")
    again = owner.post(f"{path}/cancel", data={"csrf": csrf})
    assert again.status_code == 409
    assert "Esta difusión está cancelada: ya no se puede cancelar." in flat(again)
    for missing in ("/admin/broadcasts/999", "/admin/broadcasts/0", "/admin/broadcasts/x"):
        answer = owner.get(missing)
        assert answer.status_code == 404 and "No hay ninguna difusión" in answer.text
    assert owner.get("/admin/partials/broadcasts/999").status_code == 404
    assert owner.post("/admin/broadcasts/999/pause", data={"csrf": csrf}).status_code == 404

    # Keyset pages of the recipients, by status; an unknown status shows them all.
    final = owner.get(f"/admin/partials/broadcasts/{path.split('/')[-1]}").json()
    assert final["final"] and sum(final["counts"].values()) == 4
    monkeypatch.setattr(pages, "RECIPIENTS_SHOWN", 3)
    first = flat(owner.get(path))
    assert first.count('<tr class="recipient-') == 3
    assert f'after={PHONES[2]}"' in first
    rest = flat(owner.get(path, params={"after": PHONES[2]}))
    assert rest.count('<tr class="recipient-') == 1 and PHONES[3] in rest
    cancelled_only = flat(owner.get(path, params={"status": "cancelled"}))
    assert cancelled_only.count('<tr class="recipient-cancelled"') == final["counts"]["cancelled"]
    assert "Cancelado con la difusión" in cancelled_only
    assert flat(owner.get(path, params={"status": "nada"})).count('<tr class="recipient-') == 3


def test_waiting_for_the_quiet_hours_is_said_in_spanish(
    start_app: Callable[..., RunningApp],
    workdir: Path,
    massiva: tuple[FakeMassiva, str],
    clock: Clock,
) -> None:
    # Monday 10:00 in Caracas, inside the quiet hours (20:00-11:00): broadcasts wait until 11:00.
    shop = shop_with(
        start_app, workdir, massiva, extra='hours: {mon-fri: "08:00-17:00", quiet: "20:00-11:00"}'
    )
    owner = sign_in(shop)
    created = form(owner, "/admin/broadcasts", text="Oferta", **{"label:promo": "1"})
    path = created.headers["location"].split("?")[0]
    page = flat(owner.get(path))
    assert "Horas de silencio: los mensajes salen desde el 23/11/2026 a las 11:00." in page
    progress = owner.get(f"/admin/partials/broadcasts/{path.split('/')[-1]}").json()
    assert progress["waiting"].startswith("Horas de silencio")
    clock.advance(3600)
    wait_until(
        lambda: owner.get(path.replace("/admin/", "/admin/partials/")).json()["waiting"] is None
    )
    owner.close()


@pytest.mark.parametrize("backend", ["postgres"])
def test_the_pages_on_postgresql(
    start_app: Callable[..., RunningApp],
    workdir: Path,
    massiva: tuple[FakeMassiva, str],
    backend: str,
) -> None:
    shop = shop_with(start_app, workdir, massiva, backend)
    owner = sign_in(shop)
    new = flat(owner.get("/admin/broadcasts/new"))
    assert 'name="label:promo"' in new and '<span class="count">4</span>' in new
    created = form(
        owner, "/admin/broadcasts", text="Hola {{ contact.ciudad }}", **{"label:vip": "1"}
    )
    path = created.headers["location"].split("?")[0]
    wait_until(lambda: owner.get(path.replace("/admin/", "/admin/partials/")).json()["final"])
    assert "Hola Valencia" in [s.text for s in massiva[0].sent]
    assert "terminada" in flat(owner.get("/admin/broadcasts"))
    owner.close()


def test_the_provider_is_chosen_when_there_are_two(
    start_app: Callable[..., RunningApp],
    workdir: Path,
    massiva: tuple[FakeMassiva, str],
    massms: tuple[FakeMasSMS, str],
) -> None:
    (workdir / "rules.yaml").write_text(RULES.format(extra=""), encoding="utf-8")
    fake, url = massiva
    other, other_url = massms
    shop = start_app(**massiva_env(url, fake), **massms_env(other_url, other))
    contact(shop, PHONES[0], ["promo"])
    owner = sign_in(shop)
    new = flat(owner.get("/admin/broadcasts/new"))
    assert '<select id="b-via" name="via">' in new
    assert '<option value="massms">massms</option>' in new
    created = form(
        owner, "/admin/broadcasts", text="Por MasSMS", via="massms", **{"label:promo": "1"}
    )
    page = flat(owner.get(created.headers["location"]))
    assert "<dt>Proveedor</dt><dd>massms</dd>" in page
    wait_until(lambda: [s.phone for s in other.sent if s.text == "Por MasSMS"] == [PHONES[0]])
    owner.close()


def test_the_list_pages_newest_first(
    shop: RunningApp, owner: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("Primera", "Segunda", "Tercera"):
        made = form(owner, "/admin/broadcasts", name=name, text=name, **{"label:vip": "1"})
        assert made.status_code == 303
    monkeypatch.setattr(pages, "LIST_SIZE", 2)
    first = flat(owner.get("/admin/broadcasts"))
    assert first.index("Tercera") < first.index("Segunda") and "Primera" not in first
    assert 'href="/admin/broadcasts?before=2"' in first
    rest = flat(owner.get("/admin/broadcasts", params={"before": "2"}))
    assert "Primera" in rest and "Segunda" not in rest and "Más recientes" in rest
