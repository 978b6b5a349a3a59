"""The Contactos page in a real browser (Debian's Chromium): a CSV with a bad line is refused
with that line shown, the fixed file is imported, the list is filtered by label, and a label
is added to several contacts at once; screenshots at laptop and phone sizes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.conftest import RunningApp
from tests.test_admin_browser import (  # noqa: F401 - fixtures
    browser,
    quick_polling,
    screenshots,
    sign_in,
    watched,
)

GOOD = (
    "phone;labels;nombre;ciudad\n"
    "0412-555 0001;promo;José Pérez;Mérida\n"
    "0414 555 0002;promo;vip;Ana Díaz;Caracas\n"
    "0424 555 0003;;Luis Rojas;Valencia\n"
    "0416 555 0004;promo;Carmen Rodríguez;\n"
)


def laptop(browser: Browser) -> tuple[Page, list[str], Callable[[], None]]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1366, "height": 800}, locale="es-VE")
    page, problems = watched(context)
    return page, problems, context.close


def test_contacts_are_imported_filtered_and_labelled_in_the_browser(
    browser: Browser,  # noqa: F811 - the fixture imported above
    start_app: Callable[..., RunningApp],
    screenshots: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    app = start_app()
    page, problems, close = laptop(browser)
    sign_in(page, app, "/admin/contacts")
    expect(page.get_by_role("link", name="Contactos")).to_have_attribute("aria-current", "page")
    expect(page.get_by_text("Todavía no hay contactos")).to_be_visible()

    # A file with a bad line: the line and why, and nothing imported.
    bad = tmp_path / "clientes.csv"
    # Line 3 has one cell too many (an unquoted ";" between two labels).
    bad.write_text(GOOD, encoding="utf-8-sig")
    page.get_by_text("Importar o exportar (CSV)").click()
    page.get_by_label("Archivo CSV").set_input_files(str(bad))
    page.get_by_role("button", name="Importar", exact=True).click()
    problems_box = page.locator("#import-problems")
    expect(problems_box).to_contain_text("Línea 3: Tiene 5 celdas y la primera línea 4.")
    expect(page.get_by_role("alert")).to_contain_text("No se importó nada")
    expect(page.locator("#contacts")).to_have_count(0)
    page.screenshot(path=str(screenshots / "contacts-import-problems.png"), full_page=True)

    # Fixed (the labels quoted), it goes in whole.
    good = tmp_path / "clientes-bien.csv"
    good.write_text(GOOD.replace("promo;vip;Ana", '"promo;vip";Ana'), encoding="utf-8-sig")
    page.get_by_label("Archivo CSV").set_input_files(str(good))
    page.get_by_role("button", name="Importar", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("4 contactos nuevos")
    rows = page.locator("#contacts tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("José Pérez")
    expect(rows.first).to_contain_text("Nunca escribió")

    # Filtered by label: three of them.
    page.get_by_label("Solo con la etiqueta").fill("promo")
    page.get_by_role("button", name="Buscar").click()
    expect(rows).to_have_count(3)
    expect(page.locator("#contacts")).not_to_contain_text("Luis Rojas")

    # Two of them ticked, a label added to both at once.
    rows.nth(0).get_by_role("checkbox").check()
    rows.nth(1).get_by_role("checkbox").check()
    expect(page.locator("#selected-count")).to_have_text("2 marcados")
    page.get_by_label("Etiqueta", exact=True).fill("feria")
    page.get_by_role("button", name="Agregar", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("se agregó a 2 contactos")
    expect(rows).to_have_count(3)  # still filtered by promo
    expect(rows.nth(0).locator(".badge.label")).to_contain_text(["feria", "promo"])
    expect(rows.nth(2).locator(".badge.label", has_text="feria")).to_have_count(0)

    # Mark all, by the header's box.
    page.get_by_label("Marcar todos los de esta página").check()
    expect(page.locator("#selected-count")).to_have_text("3 marcados")
    page.get_by_label("Marcar todos los de esta página").uncheck()
    page.goto(app.url + "/admin/contacts")
    page.screenshot(path=str(screenshots / "contacts.png"), full_page=True)
    close()
    assert problems == []

    # At phone size: every contact readable, no side scrolling.
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="es-VE")
    phone, phone_problems = watched(context)
    sign_in(phone, app, "/admin/contacts")
    expect(phone.locator("#contacts tbody tr")).to_have_count(4)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at 390"
    phone.screenshot(path=str(screenshots / "contacts-phone.png"), full_page=True)
    context.close()
    assert phone_problems == []
