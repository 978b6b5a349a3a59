"""The inbox in a real browser (Debian's Chromium): on a phone (390x844, element boxes measured)
and never missed (the tab title, notifications, the sound switch)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, FloatRect, Page, expect

from tests import loopback
from tests.conftest import ADMIN_TOKEN, RunningApp
from tests.test_admin_browser import (
    PHONE,
    browser,
    inbound,
    quick_polling,
    screenshots,
    shop,
    sign_in,
    watched,
)

__all__ = ["browser", "quick_polling", "screenshots", "shop"]  # fixtures used here

PHONE_SIZE = {"width": 390, "height": 844}
TOUCH = 44  # px: the smallest target a thumb hits reliably
# What a person taps: links, buttons, fields (a hidden or off-screen one, like the skip link
# until it has focus, is not on screen to tap).
TARGETS = "header a, header button, main a, main button, main select, main input, main textarea"


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    contexts: list[tuple[BrowserContext, list[str]]] = []

    def open_one(notifications_for: str | None = None, **options: object) -> Page:
        context = browser.new_context(locale="es-VE", **options)  # type: ignore[arg-type]
        if notifications_for is not None:
            context.grant_permissions(["notifications"], origin=notifications_for)
        opened, problems = watched(context)
        contexts.append((context, problems))
        return opened

    yield open_one
    for context, problems in contexts:
        context.close()
        assert problems == []


def small_targets(page: Page) -> list[str]:
    """Visible targets less than TOUCH px tall, described for the failure message."""
    found: list[str] = page.evaluate(
        """([selector, least]) => Array.from(document.querySelectorAll(selector))
            .filter(el => {
              const box = el.getBoundingClientRect();
              const style = getComputedStyle(el);
              return box.width > 0 && box.height > 0 && box.right > 0 && el.type !== "hidden"
                && style.visibility !== "hidden";
            })
            .filter(el => el.getBoundingClientRect().height < least)
            .map(el => `${el.tagName.toLowerCase()}#${el.id}.${el.className} "${
              (el.textContent || el.value || "").trim().slice(0, 30)}" ${
              Math.round(el.getBoundingClientRect().height)}px`)""",
        [TARGETS, TOUCH],
    )
    return found


def box(page: Page, selector: str) -> FloatRect:
    found = page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not on the page"
    return found


def a_long_conversation(shop: RunningApp) -> str:
    for n in range(12):
        inbound(shop, f"Mensaje {n}: ¿tienen café de Mérida en bolsas de un kilo?")
        shop.service.clock.advance(60)  # type: ignore[attr-defined]
    last = "Y si pido dos kilos, ¿cuánto sale el envío a Valencia? Necesito saberlo hoy."
    inbound(shop, last)
    return last


def test_a_conversation_on_a_phone(
    open_page: Callable[..., Page], shop: RunningApp, screenshots: Path
) -> None:
    last = a_long_conversation(shop)
    inbound(shop, "horario", "584241234567")
    page = open_page(viewport=PHONE_SIZE, has_touch=True, is_mobile=True)
    sign_in(page, shop)

    # The list: the customer's words first, the answer under them, smaller.
    row = page.locator(f'a[href="/admin/conversations/{PHONE}"]')
    expect(row.locator(".last")).to_have_text(last)
    answered = page.locator('a[href="/admin/conversations/584241234567"]')
    expect(answered.locator(".last")).to_have_text("horario")
    expect(answered.locator(".answer")).to_have_text(
        "bot: Abrimos de lunes a viernes, 8:00 a 17:00."
    )
    sizes = [
        page.evaluate(f"parseFloat(getComputedStyle(document.querySelector({s!r})).fontSize)")
        for s in ('a[href$="584241234567"] .last', 'a[href$="584241234567"] .answer')
    ]
    assert sizes[1] < sizes[0]
    assert small_targets(page) == []
    page.screenshot(path=str(screenshots / "inbox-phone.png"))

    # The conversation opens at the newest message with the customer's last one whole, and
    # the reply box on the same screen: nothing to scroll.
    row.click()
    expect(page.locator("#thread .msg.in").last).to_contain_text(last)
    page.wait_for_function("document.querySelector('.chat').style.length > 0")
    assert page.evaluate("window.scrollY") == 0
    height = PHONE_SIZE["height"]
    bubble = box(page, "#thread .msg.in >> nth=-1")
    thread = box(page, "#thread")
    assert bubble["y"] >= 0 and bubble["y"] + bubble["height"] <= height
    assert (
        thread["y"] <= bubble["y"]
        and bubble["y"] + bubble["height"] <= thread["y"] + thread["height"]
    )
    reply = box(page, "#text")
    assert reply["y"] >= thread["y"] + thread["height"]  # below the thread, not over it
    assert reply["y"] + reply["height"] <= height
    send = box(page, "#reply button[type=submit]")
    assert send["y"] + send["height"] <= height
    assert small_targets(page) == []
    page.screenshot(path=str(screenshots / "conversation-phone.png"))

    # Ctrl+Enter sends (Cmd+Enter on a Mac).
    page.locator("#text").fill("Son 2 kilos: le escribo el total en un momento.")
    page.locator("#text").press("Control+Enter")
    expect(page.get_by_role("status")).to_contain_text("Mensaje en cola")
    expect(page.locator("#thread .msg.out").last).to_contain_text("Son 2 kilos")


def test_the_thread_keeps_the_customers_last_message_whole_after_long_answers(
    open_page: Callable[..., Page], shop: RunningApp
) -> None:
    last = a_long_conversation(shop)
    for n in range(4):  # a person answered at length four times after it
        loopback.post(
            f"{shop.url}/api/conversations/{PHONE}/messages",
            json={"text": f"Respuesta {n}: " + "los envíos a Valencia tardan dos días. " * 3},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ).raise_for_status()
    page = open_page(viewport=PHONE_SIZE, has_touch=True, is_mobile=True)
    sign_in(page, shop, f"/admin/conversations/{PHONE}")
    expect(page.locator("#thread .msg.out").last).to_contain_text("Respuesta 3")
    page.wait_for_function("document.querySelector('.chat').style.length > 0")
    bubble = box(page, "#thread .msg.in >> nth=-1")
    thread = box(page, "#thread")
    expect(page.locator("#thread .msg.in").last).to_contain_text(last)
    assert thread["y"] <= bubble["y"]
    assert bubble["y"] + bubble["height"] <= thread["y"] + thread["height"]


def test_notifications_are_asked_for_with_a_button_never_on_load(
    open_page: Callable[..., Page], shop: RunningApp
) -> None:
    page = open_page()
    sign_in(page, shop)
    button = page.get_by_role("button", name="Activar avisos")
    expect(button).to_be_visible()
    assert page.evaluate("Notification.permission") == "default"  # nobody asked


def test_a_message_waiting_for_a_person_is_never_missed(
    open_page: Callable[..., Page], shop: RunningApp
) -> None:
    inbound(shop, "horario")  # the bot answered it: nothing waits
    page = open_page(notifications_for=shop.url)
    sign_in(page, shop)
    expect(page.get_by_role("button", name="Activar avisos")).to_be_hidden()  # allowed already
    expect(page.locator("header.top")).to_have_attribute("data-waiting", "0")
    expect(page).to_have_title("Bandeja · responder")

    # The sound switch is remembered.
    sound = page.get_by_role("button", name="Sonido: no")
    sound.click()
    expect(page.get_by_role("button", name="Sonido: sí")).to_have_attribute("aria-pressed", "true")
    page.reload()
    expect(page.get_by_role("button", name="Sonido: sí")).to_be_visible()
    # The page's first look at what waits is done: what comes after it is announced (a
    # message already waiting when the page loaded is counted in the title, not announced).
    expect(page.locator("header.top")).to_have_attribute("data-seen", re.compile(r"^\d+$"))

    # A customer asks for a person: the title counts it, the browser raises a notification.
    inbound(shop, "quiero hablar con un asesor", "584241234567")
    expect(page).to_have_title("(1) Bandeja · responder")
    status = page.locator("#waiting-status")
    expect(status).to_have_text(re.compile(r"Mensaje nuevo de \+58 424-1234567: quiero hablar"))
    expect(status).to_have_attribute("data-notified", re.compile(r"^\d+$"))
    expect(status).to_have_attribute("data-shown", status.get_attribute("data-notified") or "")
    # The list shows it too, without reloading.
    expect(page.locator('a[href="/admin/conversations/584241234567"]')).to_contain_text(
        "1 sin leer"
    )

    # Seen: the count goes, on every page.
    page.locator('a[href="/admin/conversations/584241234567"]').click()
    expect(page).to_have_title("+58 424-1234567 · responder")
