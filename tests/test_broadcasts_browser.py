"""Difusiones in a real browser (Debian's Chromium, Playwright) against the served app and a fake
Massiva: the owner picks a label, sees the live estimate, previews (recipient count and rendered
samples), sends; the progress page's counts move by themselves; a cancel (confirmed) stops the
rest, and the counts always add up to the recipients. An agent only looks. Screenshots at laptop
and phone width."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from responder.web.admin import broadcasts as pages
from tests import loopback
from tests.conftest import ADMIN_TOKEN, Clock, RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.test_admin_browser import (
    browser,
    clean_page,
    quick_polling,
    run,
    screenshots,
    sign_in,
)
from tests.test_broadcasts import broadcast, contact, sent_to, wait_until

__all__ = ["browser", "quick_polling", "screenshots"]  # fixtures shared with the inbox's

RULES = """
settings:
  timezone: America/Caracas
  country: VE
  send_rate: {massiva: 2}
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos de lunes a viernes."
"""
NAMES = ["Ana", "Beto", "Carla", "Dani", "Eva", "Fede", "Gabi", "Hugo", "Inés", "Juan"]
PROMO = [f"5841240000{i:02d}" for i in range(len(NAMES))]
OTHER = "584124000099"  # labelled otherwise: never a recipient
PASSWORD = "clave-segura-1"


@pytest.fixture
def shop(
    start_app: Callable[..., RunningApp], workdir: Path, massiva: tuple[FakeMassiva, str]
) -> RunningApp:
    """Ten contacts labelled promo (each with a name), one labelled vip; two a second at most,
    on a clock that stands still unless the test moves it."""
    (workdir / "rules.yaml").write_text(textwrap.dedent(RULES), encoding="utf-8")
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    for phone, name in zip(PROMO, NAMES, strict=True):
        contact(app, phone, ["promo"], nombre=name)
    contact(app, OTHER, ["vip"], nombre="Otro")
    made = loopback.post(
        f"{app.url}/api/users",
        json={"name": "beto", "role": "agent", "password": PASSWORD},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert made.status_code == 201, made.text
    return app


@pytest.fixture
def phone_page(browser: Browser) -> Iterator[Page]:
    yield from clean_page(browser, viewport={"width": 390, "height": 844}, is_mobile=True)


@pytest.fixture
def laptop(browser: Browser) -> Iterator[Page]:
    yield from clean_page(browser, viewport={"width": 1366, "height": 800})


def counts_add_up(page: Page, total: int) -> dict[str, int]:
    keys = ("queued", "sent", "delivered", "failed", "skipped", "cancelled")
    shown = {key: int(page.locator(f"#count-{key}").inner_text()) for key in keys}
    assert sum(shown.values()) == total, shown
    return shown


def test_an_owner_sends_a_broadcast_to_a_label_watches_it_and_cancels_it(
    laptop: Page,
    phone_page: Page,
    shop: RunningApp,
    massiva: tuple[FakeMassiva, str],
    clock: Clock,
    screenshots: Path,
) -> None:
    fake, _ = massiva
    page = laptop
    sign_in(page, shop, "/admin/broadcasts")
    nav = page.get_by_role("link", name="Difusiones", exact=True)
    expect(nav).to_have_attribute("aria-current", "page")
    expect(page.locator(".empty")).to_contain_text("Todavía no hay difusiones")
    page.get_by_role("link", name="Nueva difusión").click()

    # The form: labels in use with how many may get it; opted-in only is said on the page.
    expect(page.locator("#segment")).to_contain_text("se dieron de baja")
    promo = page.get_by_label("promo")
    expect(page.locator("label.pick", has_text="promo")).to_contain_text("10")
    page.get_by_label("Nombre").fill("Oferta de diciembre")
    text = page.get_by_label("Texto")
    # A template error is shown in Spanish and nothing is created.
    text.fill("Hola {{ contact.nombre }, oferta")
    page.get_by_role("button", name="Vista previa").click()
    expect(page.get_by_role("alert")).to_contain_text("error de plantilla")
    with shop.api() as api:
        assert api.get("/api/broadcasts").json()["broadcasts"] == []

    text = page.get_by_label("Texto")
    text.fill("Hola {{ contact.nombre }}, 20% de descuento hoy en toda la tienda.")
    expect(page.locator("#b-counter")).to_contain_text("1 SMS")
    expect(page.locator("#b-counter")).to_contain_text("GSM-7")
    page.get_by_label("promo").check()
    # The live estimate: recipients of the segment times SMS per message.
    estimate = page.locator("#estimate")
    expect(estimate).to_contain_text("10 destinatarios × 1 SMS por mensaje = unos 10 SMS")
    page.get_by_label("vip").check()
    expect(estimate).to_contain_text("Nadie cumple")
    page.get_by_label("vip").uncheck()
    expect(estimate).to_contain_text("10 destinatarios")
    assert promo.is_checked()

    # Vista previa: the count and the texts as the first ones will read them.
    page.get_by_role("button", name="Vista previa").click()
    expect(page.locator("#preview-count")).to_have_text("10")
    samples = page.locator("#samples li")
    expect(samples).to_have_count(3)
    expect(samples.first).to_contain_text("Hola Ana, 20% de descuento hoy")
    expect(page.locator("#preview-cost")).to_contain_text("10 SMS")
    assert sent_to(fake, "descuento") == []  # a preview sends nothing
    page.screenshot(path=str(screenshots / "broadcast-preview.png"), full_page=True)
    # A change after the preview must be previewed again before it can go.
    page.get_by_label("Nombre").fill("Oferta de diciembre!")
    expect(page.locator("#send")).to_be_disabled()
    expect(page.locator("#stale")).to_be_visible()
    page.get_by_label("Nombre").fill("Oferta de diciembre")
    expect(page.locator("#send")).to_be_enabled()
    page.get_by_role("button", name="Enviar ahora a 10 personas").click()

    # The progress page: two go at once (two a second, and the clock stands still).
    expect(page).to_have_url(re.compile(r"/admin/broadcasts/\d+\?ok=created$"))
    broadcast_id = int(page.url.rsplit("/", 1)[1].split("?")[0])
    expect(page.locator("#b-status")).to_have_text("enviándose")
    expect(page.locator("#b-total")).to_have_text("10")
    wait_until(lambda: len(sent_to(fake, "descuento")) == 2)
    expect(page.locator("#count-sent")).to_have_text("2")  # polled, no reload
    counts_add_up(page, 10)
    # A delivery report comes in: the page shows it as it comes.
    first = next(s for s in fake.sent if "descuento" in s.text)
    assert run(fake.report_status(shop.webhook("/status"), first.id, 1)).status_code == 200
    expect(page.locator("#count-delivered")).to_have_text("1")
    expect(page.locator("#count-sent")).to_have_text("1")
    clock.advance(1)  # a second later: two more
    wait_until(lambda: len(sent_to(fake, "descuento")) == 4)
    expect(page.locator("#b-settled")).to_have_text("4")
    counts_add_up(page, 10)
    # The recipients' list follows too (fetched again when the counts change).
    rows = page.locator("#recipients tbody tr")
    expect(rows.first).to_contain_text("entregado", timeout=10_000)
    expect(rows.nth(3)).to_contain_text("enviado")
    expect(rows.nth(4)).to_contain_text("en cola")
    page.screenshot(path=str(screenshots / "broadcast-progress.png"), full_page=True)

    # Beto (an agent) can look, on his phone, but has no buttons and no form.
    phone = phone_page
    phone.goto(shop.url + f"/admin/broadcasts/{broadcast_id}")
    phone.get_by_label("Nombre").fill("beto")
    phone.get_by_label("Contraseña").fill(PASSWORD)
    phone.get_by_role("button", name="Entrar").click()
    expect(phone.locator("#b-settled")).to_have_text("4")
    expect(phone.get_by_role("button", name="Pausar")).to_have_count(0)
    phone.screenshot(path=str(screenshots / "broadcast-progress-phone.png"), full_page=True)
    refused = phone.goto(shop.url + "/admin/broadcasts/new")
    assert refused is not None and refused.status == 403

    # Pause and resume; then cancel, confirmed, while it still runs.
    page.get_by_role("button", name="Pausar").click()
    expect(page.get_by_role("status")).to_contain_text("en pausa")
    expect(page.locator("#b-status")).to_have_text("en pausa")
    page.get_by_role("button", name="Reanudar").click()
    expect(page.locator("#b-status")).to_have_text("enviándose")
    page.get_by_text("Cancelar la difusión…").click()
    page.get_by_role("button", name="Sí, cancelar la difusión").click()
    expect(page.get_by_role("status")).to_contain_text("Difusión cancelada")
    expect(page.locator("#b-status")).to_have_text("cancelada")
    expect(page.locator("#progress")).to_have_attribute("data-final", "")
    # Once it is over the page stops asking (an absence: it can only be waited out).
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "/partials/broadcasts/" in r.url else None)
    page.wait_for_timeout(2 * pages.POLL_MS)
    assert polls == []
    shown = counts_add_up(page, 10)
    assert shown["cancelled"] == 10 - len(sent_to(fake, "descuento")) >= 4
    assert shown["queued"] == 0
    expect(page.get_by_role("button", name="Pausar")).to_be_hidden()
    clock.advance(5)
    with shop.api() as api:
        final = broadcast(api, broadcast_id)  # the API agrees, and adds up
    assert final["status"] == "cancelled"
    assert final["counts"] == shown
    assert len(sent_to(fake, "descuento")) == 10 - shown["cancelled"]  # nothing more went
    assert OTHER not in sent_to(fake)

    # The recipients, filtered by status, each row a link to its conversation.
    page.get_by_role("link", name=re.compile(r"^Cancelados")).click()
    expect(rows).to_have_count(shown["cancelled"])
    expect(rows.first).to_contain_text("Cancelado con la difusión")
    page.get_by_role("link", name=re.compile(r"^Entregados")).click()
    expect(rows).to_have_count(1)
    page.screenshot(path=str(screenshots / "broadcast-cancelled.png"), full_page=True)

    # A recipient's conversation names the broadcast, and so does the answer to it.
    response = loopback.get(shop.webhook(), params={"msg": "me interesa", "phone": PROMO[0]})
    assert response.status_code == 200
    page.goto(shop.url + f"/admin/conversations/{PROMO[0]}")
    links = page.locator("#thread .broadcast-link")
    expect(links).to_have_count(2)
    expect(links.first).to_have_text("difusión «Oferta de diciembre»")
    expect(page.locator("#thread .msg.in").last).to_contain_text("responde a la difusión")
    links.first.click()
    expect(page).to_have_url(shop.url + f"/admin/broadcasts/{broadcast_id}")

    # The list shows it with its status and progress.
    page.get_by_role("link", name="Difusiones", exact=True).click()
    expect(page.locator(f"#broadcast-{broadcast_id}")).to_contain_text("cancelada")
    expect(page.locator(f"#broadcast-{broadcast_id}")).to_contain_text("Oferta de diciembre")
    page.screenshot(path=str(screenshots / "broadcasts.png"))


def test_a_scheduled_broadcast_in_the_shop_s_time_and_bad_input(
    laptop: Page, shop: RunningApp, massiva: tuple[FakeMassiva, str]
) -> None:
    fake, _ = massiva
    page = laptop
    sign_in(page, shop, "/admin/broadcasts/new")
    page.get_by_label("Texto").fill("Mañana abrimos a las 9.")
    page.locator("#field-name-1").fill("nombre")
    page.get_by_role("button", name="Vista previa").click()
    expect(page.get_by_role("alert")).to_contain_text("valor que debe tener el campo «nombre»")
    page.locator("#field-value-1").fill("Carla")
    page.get_by_label("Programar para").check()
    page.get_by_role("button", name="Vista previa").click()
    expect(page.get_by_role("alert")).to_contain_text("Elija la fecha y la hora")
    # Monday 23/11/2026 10:00 in Caracas on the test clock: the browser refuses a past time
    # (the server too: tests/test_admin_broadcasts.py).
    when = page.get_by_label("Fecha y hora del envío")
    when.fill("2026-11-23T09:00")
    assert when.evaluate("el => el.validity.rangeUnderflow")
    when.fill("2026-11-24T09:30")
    assert when.evaluate("el => el.validity.valid")
    page.get_by_label("Escribió en los últimos … días").fill("7")
    page.get_by_role("button", name="Vista previa").click()
    expect(page.locator("#preview-count")).to_have_text("1")
    expect(page.locator("#samples")).to_contain_text("Mañana abrimos a las 9.")
    page.get_by_role("button", name="Programar para el 24/11/2026 a las 09:30").click()
    expect(page.get_by_role("status")).to_contain_text("Difusión programada")
    expect(page.locator("#b-status")).to_have_text("programada")
    expect(page.locator("#b-scheduled")).to_contain_text("24/11/2026 a las 09:30")
    expect(page.locator("#about-title + .text")).to_have_text("Mañana abrimos a las 9.")
    expect(page.locator(".facts")).to_contain_text("nombre = «Carla»")
    expect(page.locator(".facts")).to_contain_text("últimos 7 días")
    assert sent_to(fake, "Mañana") == []


def test_the_form_and_its_preview_fit_a_phone(
    phone_page: Page, shop: RunningApp, screenshots: Path
) -> None:
    page = phone_page
    sign_in(page, shop, "/admin/broadcasts/new")
    page.get_by_label("Texto").fill("Hola {{ contact.nombre }}, mañana cerramos a las 3.")
    page.get_by_label("promo").check()
    expect(page.locator("#estimate")).to_contain_text("10 destinatarios")
    page.get_by_role("button", name="Vista previa").click()
    expect(page.locator("#preview-count")).to_have_text("10")
    expect(page.locator("#samples li").first).to_contain_text("Hola Ana, mañana cerramos")
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "broadcast-preview-phone.png"), full_page=True)
