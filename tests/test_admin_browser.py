"""The admin in a real browser: Debian's Chromium, driven by Playwright, against the app served
by uvicorn with the fake Massiva behind it. Never a downloaded browser, never a silent skip."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)

from responder import engine
from responder import text as sms_text
from responder.web.admin import core as admin
from tests import loopback
from tests.conftest import ADMIN_TOKEN, RunningApp, massiva_env
from tests.fakes.common import SentSms
from tests.fakes.massiva import FakeMassiva

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium's own connections get refused on a closed
# network and slow everything down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = "584121234567"
T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the admin browser tests need Debian's Chromium at {CHROMIUM}: install it with "
            "`apt-get install chromium` (`make test` does so when run as root)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the walk-through saves its screenshots: a temporary folder, so that a test run
    changes no tracked file, or SCREENSHOTS_DIR when set (`make screenshots` sets it to
    docs/screenshots to refresh the README's pictures)."""
    chosen = os.environ.get("SCREENSHOTS_DIR")
    if not chosen:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(chosen)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def quick_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "POLL_INTERVAL", 0.3)


def watched(context: BrowserContext) -> tuple[Page, list[str]]:
    """A page whose script errors and CSP violations are collected, to fail the test."""
    opened = context.new_page()
    opened.set_default_timeout(5000)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A 401/403/404 answer is logged as a failed resource; those are what tests ask for.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(message.text)

    opened.on("console", on_console)
    opened.on("pageerror", lambda err: problems.append(str(err)))
    return opened, problems


def clean_page(browser: Browser, **options: Any) -> Iterator[Page]:
    """For a fixture to yield from: a page in a fresh browser profile (locale es-VE, plus
    `options`); a script error or CSP violation seen on it fails the test."""
    context = browser.new_context(locale="es-VE", **options)
    opened, problems = watched(context)
    yield opened
    context.close()
    assert problems == []


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile at laptop size; a script error or CSP violation fails the test."""
    yield from clean_page(browser, viewport={"width": 1100, "height": 720})


@pytest.fixture
def shop(start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]) -> RunningApp:
    fake, url = massiva
    return start_app(**massiva_env(url, fake))


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine outside Playwright's event loop (the sync API keeps one running)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=10)


def inbound(app: RunningApp, text: str, phone: str = PHONE) -> None:
    response = loopback.get(app.webhook(), params={"msg": text, "phone": phone, "linea": "58414"})
    assert response.status_code == 200


def sign_in(page: Page, app: RunningApp, path: str = "/admin") -> None:
    page.goto(app.url + path)
    page.get_by_label("Nombre").fill("admin")
    page.get_by_label("Contraseña").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Entrar").click()
    expect(page).to_have_url(app.url + path)


def sent_with(fake: FakeMassiva, text: str, timeout: float = 5) -> SentSms:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sms in fake.sent:
            if sms.text == text:
                return sms
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never reached the fake Massiva: {fake.sent}")


def test_staff_answer_a_customer_from_sign_in_to_delivery(
    page: Page, shop: RunningApp, massiva: tuple[FakeMassiva, str], screenshots: Path
) -> None:
    fake, _ = massiva
    inbound(shop, "¿A qué hora abren?", "584241234567")
    shop.service.clock.advance(120)  # type: ignore[attr-defined]
    inbound(shop, "Quiero hablar con un asesor, por favor", "584169876543")
    shop.service.clock.advance(120)  # type: ignore[attr-defined]
    inbound(shop, "BAJA", "584261112233")
    shop.service.clock.advance(120)  # type: ignore[attr-defined]

    # A stranger is sent to the sign-in form; a wrong token is refused.
    page.goto(shop.url + "/admin")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin$"))
    page.get_by_label("Nombre").fill("admin")
    page.get_by_label("Contraseña").fill("not-the-token")
    page.get_by_role("button", name="Entrar").click()
    expect(page.get_by_role("alert")).to_contain_text("Nombre o contraseña incorrectos")
    page.get_by_label("Contraseña").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Entrar").click()
    expect(page).to_have_url(shop.url + "/admin")
    expect(page.get_by_role("heading", name="Bandeja")).to_be_visible()
    expect(page.locator(".conversations li")).to_have_count(3)

    # A customer writes while the inbox is open: it appears without reloading.
    page.evaluate("window.stillTheSamePage = true")
    inbound(shop, "Hola, ¿tienen café de Mérida?")
    row = page.locator(f'a[href="/admin/conversations/{PHONE}"]')
    expect(row).to_contain_text("1 sin leer")
    expect(page.locator(".conversations li")).to_have_count(4)
    assert page.evaluate("window.stillTheSamePage") is True
    page.screenshot(path=str(screenshots / "inbox.png"))

    # The conversation, and a reply that counts its SMS as it is typed.
    row.click()
    thread = page.locator("#thread")
    expect(thread.locator(".msg.in")).to_contain_text("Hola, ¿tienen café de Mérida?")
    expect(thread.locator(".msg.out")).to_contain_text("regla otro")
    page.get_by_label("Nombre del dato").fill("nombre")
    page.get_by_label("Valor").fill("Carmen Rodríguez")
    page.get_by_role("button", name="Guardar datos").click()
    expect(page.get_by_role("status")).to_contain_text("Datos del contacto guardados")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Carmen Rodríguez")
    expect(page.get_by_label("nombre", exact=True)).to_have_value("Carmen Rodríguez")
    reply = "Sí, tenemos café de Mérida en bolsas de 250 g y 1 kg. ¿Cuánto necesita?"
    page.get_by_label("Responder").fill(reply)
    expect(page.locator("#counter")).to_have_text(
        f"{len(reply)} caracteres · 1 SMS · GSM-7, 160 por SMS"
    )
    page.get_by_role("button", name="Enviar").click()
    expect(page.get_by_role("status")).to_contain_text("Mensaje en cola")

    # It reaches the provider, and its status follows without reloading.
    expected = engine.prepare(reply, True).replies[0].text  # smart encoding: í → i, á → a
    sms = sent_with(fake, expected)
    assert sms.phone == PHONE
    page.evaluate("window.stillTheSamePage = true")
    bubble = thread.locator(".msg.out").last
    expect(bubble).to_contain_text(expected)
    expect(bubble).to_contain_text("enviado")
    expect(bubble.locator(".author")).to_have_text("admin")  # who wrote it
    report = run(fake.report_status(shop.webhook("/status"), sms.id, 1))
    assert report.status_code == 200
    expect(bubble.locator(".status")).to_have_text("entregado")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#conversation-status")).to_contain_text("persona")
    page.screenshot(path=str(screenshots / "conversation.png"))

    # Back to the bot: it answers the next message by itself.
    page.get_by_role("button", name="Devolver al bot").click()
    expect(page.get_by_role("status")).to_contain_text("La conversación volvió al bot")
    expect(page.locator("#conversation-status .badge.bot")).to_be_visible()
    inbound(shop, "horario")
    expect(thread.locator(".msg.out").last).to_contain_text("Abrimos de lunes a viernes")


def test_trying_a_message_on_the_rules_page(page: Page, shop: RunningApp) -> None:
    sign_in(page, shop)
    page.get_by_role("link", name="Reglas").click()
    expect(page.get_by_role("heading", name="Reglas", exact=True)).to_be_visible()
    expect(page.locator("table").first).to_contain_text("«horario», «a que hora»")
    page.get_by_label("Mensaje", exact=True).fill("precio cafe")
    page.get_by_role("button", name="Probar").click()
    result = page.locator("#trial")
    expect(result).to_contain_text("precio")
    expect(result).to_contain_text("El precio de cafe es 5 USD. (1 SMS)")


def test_forms_without_the_csrf_token_are_refused(page: Page, shop: RunningApp) -> None:
    inbound(shop, "hola")
    sign_in(page, shop, f"/admin/conversations/{PHONE}")
    with page.expect_navigation() as navigation:
        page.evaluate(
            """phone => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = `/admin/conversations/${phone}/reply`;
                form.innerHTML = '<input name="text" value="sin token">';
                document.body.append(form);
                form.submit();
            }""",
            PHONE,
        )
    response = navigation.value
    assert response is not None and response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("Formulario rechazado")
    assert all(m["text"] != "sin token" for m in shop.messages(PHONE))


def test_a_cookie_copied_before_sign_out_opens_nothing_after(
    browser: Browser, page: Page, shop: RunningApp
) -> None:
    sign_in(page, shop)
    [copied] = page.context.cookies()
    assert copied["name"] == "responder_admin" and copied["path"] == "/admin"

    def open_inbox_elsewhere() -> Page:
        """The copied cookie in a browser profile of its own, as a thief would use it."""
        context = browser.new_context(locale="es-VE")
        contexts.append(context)
        context.add_cookies(
            [
                {
                    "name": copied["name"],
                    "value": copied["value"],
                    "domain": copied["domain"],
                    "path": copied["path"],
                    "httpOnly": True,
                    "sameSite": "Lax",
                }
            ]
        )
        other = context.new_page()
        other.set_default_timeout(5000)
        other.goto(shop.url + "/admin")
        return other

    contexts: list[BrowserContext] = []
    try:
        before = open_inbox_elsewhere()
        expect(before.get_by_role("heading", name="Bandeja")).to_be_visible()  # the copy works

        page.get_by_role("button", name="Salir").click()
        expect(page).to_have_url(shop.url + "/admin/login?ok=bye")
        expect(page.locator("main")).to_contain_text("Sesión cerrada")

        after = open_inbox_elsewhere()
        expect(after).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin$"))
        expect(after.get_by_label("Contraseña")).to_be_visible()
        before.reload()
        expect(before).to_have_url(re.compile(r"/admin/login\?next=%2Fadmin$"))
    finally:
        for context in contexts:
            context.close()


@pytest.mark.parametrize("smart", [True, False], ids=["smart_encoding", "as_typed"])
def test_the_sms_counter_agrees_with_the_server(
    page: Page, start_app: Callable[..., RunningApp], workdir: Path, smart: bool
) -> None:
    if not smart:
        rules = workdir / "rules.yaml"
        rules.write_text(
            rules.read_text().replace("  country: VE\n", "  country: VE\n  smart_encoding: false\n")
        )
    app = start_app()
    assert app.service.rules.current.settings.smart_encoding is smart
    inbound(app, "hola")
    sign_in(page, app, f"/admin/conversations/{PHONE}")
    box, counter = page.get_by_label("Responder"), page.locator("#counter")
    texts = [
        "a" * 160,
        "a" * 161,
        "á" * 160,  # smart encoding makes it GSM-7
        "€" * 80,  # two septets each: 160
        "€" * 81,
        "😀" * 35,  # UCS-2 counts UTF-16 units: 70
        "😀" * 36,
        "ж" * 70,
        "ж" * 71,
        "palabra " * 50,  # cut at spaces into parts of at most 160
        "línea uno\nlínea dos “comillas” — guion…",
    ]
    for text in texts:
        box.fill(text)
        replies = engine.prepare(text, smart).replies
        expected = sum(r.segments for r in replies)
        expect(counter).to_have_attribute("data-sms", str(expected))
        unicode = not all(sms_text.is_gsm7(r.text) for r in replies)
        assert ("Unicode" in counter.inner_text()) is unicode, text
        assert (f"se envía en {len(replies)} mensajes" in counter.inner_text()) is (
            len(replies) > 1
        )


def test_pages_fit_a_phone(browser: Browser, shop: RunningApp) -> None:
    inbound(shop, "Buenas tardes, quisiera saber el precio del café molido de 1 kg")
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    phone = context.new_page()
    try:
        sign_in(phone, shop)
        pages = (
            "/admin",
            f"/admin/conversations/{PHONE}",
            "/admin/rules",
            "/admin/rules/editor",
            "/admin/rules/versions",
            "/admin/rules/versions/1",
            "/admin/dashboard",
        )
        for path in pages:
            phone.goto(shop.url + path)
            overflow = phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            wide = phone.evaluate(
                "Array.from(document.querySelectorAll('body *')).filter(e => "
                "e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)"
                ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + "
                "Math.round(e.getBoundingClientRect().right))"
            )
            assert overflow <= 0, f"{path} is {overflow}px wider than a phone: {wide}"
        expect(phone.locator("svg.chart").first).to_be_visible()
    finally:
        context.close()
