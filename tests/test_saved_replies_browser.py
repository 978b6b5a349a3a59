"""The saved replies' picker in a real browser (Debian's Chromium): `/` and a few letters in
the reply box open the list, arrows and Enter put the filled-in text in the box, the SMS
counter follows, Escape closes."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import RunningApp
from tests.test_admin_browser import (  # noqa: F401 - fixtures
    PHONE,
    browser,
    inbound,
    page,
    quick_polling,
    shop,
    sign_in,
)


def test_a_saved_reply_is_picked_with_the_keyboard(
    page: Page,  # noqa: F811 - the fixture imported above
    shop: RunningApp,  # noqa: F811
) -> None:
    inbound(shop, "hola")
    with shop.api() as api:
        api.patch(f"/api/contacts/{PHONE}", json={"fields": {"nombre": "Ana"}})
        for name, text in [
            ("horario", "{{ contact.nombre }}, abrimos de 8 a 5."),
            ("hola", "Hola {{ contact.nombre }}, ¿en qué le ayudo?"),
        ]:
            assert api.post("/api/saved-replies", json={"name": name, "text": text}).is_success
    sign_in(page, shop, f"/admin/conversations/{PHONE}")
    box = page.get_by_label("Responder")
    picker = page.locator("#saved-replies-picker")
    box.press_sequentially("Buenas. /ho")
    expect(picker).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    options = picker.get_by_role("option")
    expect(options).to_have_count(2)
    expect(options.first).to_contain_text("/hola")  # by name; both start with "ho"
    expect(options.first).to_have_attribute("aria-selected", "true")
    box.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", options.nth(1).get_attribute("id") or "")
    box.press("ArrowDown")  # round to the first again
    expect(options.first).to_have_attribute("aria-selected", "true")
    box.press("Enter")
    expect(box).to_have_value("Buenas. Hola Ana, ¿en qué le ayudo?")
    expect(picker).to_be_hidden()
    expect(page.locator("#counter")).to_contain_text("35 caracteres · 1 SMS")
    box.press_sequentially(" /zzz")
    expect(picker).to_be_hidden()  # nothing matches: no list
    for _ in range(3):
        box.press("Backspace")
    expect(picker).to_be_visible()
    box.press("Escape")
    expect(picker).to_be_hidden()
    expect(box).to_have_value("Buenas. Hola Ana, ¿en qué le ayudo? /")
