"""Two people share the inbox in a real browser (Debian's Chromium, two browser contexts side by
side): one assigns a conversation and the other sees it; both see who wrote each reply; an agent
cannot reach the rules; a failed reply is retried from the thread; signing out ends the session
(a copied cookie stops working); a customer asking for a person raises a notification."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests import loopback
from tests.conftest import ADMIN_TOKEN, RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.test_admin_browser import browser, quick_polling, screenshots, watched

__all__ = ["browser", "quick_polling", "screenshots"]  # fixtures shared with the inbox's

CUSTOMER = "584121234567"
OTHER = "584241234567"
PASSWORD = "clave-segura-1"


@pytest.fixture
def team_shop(start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]) -> RunningApp:
    fake, url = massiva
    app = start_app(**massiva_env(url, fake))
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for name, role in (("ana", "owner"), ("beto", "agent")):
        made = loopback.post(
            f"{app.url}/api/users",
            json={"name": name, "role": role, "password": PASSWORD},
            headers=headers,
        )
        assert made.status_code == 201, made.text
    return app


@pytest.fixture
def pages(browser: Browser) -> Iterator[Callable[..., Page]]:
    """A page in a browser profile of its own (one per person); a script error or CSP
    violation in any fails the test."""
    opened: list[tuple[BrowserContext, list[str]]] = []

    def new(notifications_for: str | None = None, **options: object) -> Page:
        context = browser.new_context(locale="es-VE", **options)  # type: ignore[arg-type]
        if notifications_for is not None:
            context.grant_permissions(["notifications"], origin=notifications_for)
        page, problems = watched(context)
        opened.append((context, problems))
        return page

    yield new
    for context, problems in opened:
        context.close()
        assert problems == []


def sign_in_as(page: Page, app: RunningApp, name: str, path: str = "/admin") -> None:
    page.goto(app.url + path)
    page.get_by_label("Nombre").fill(name)
    page.get_by_label("Contraseña").fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    expect(page).to_have_url(app.url + path)


def inbound(app: RunningApp, text: str, phone: str = CUSTOMER) -> None:
    response = loopback.get(app.webhook(), params={"msg": text, "phone": phone})
    assert response.status_code == 200


def wait_sent(fake: FakeMassiva, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(fake.sent) < count:
        assert time.monotonic() < deadline, f"only {len(fake.sent)} of {count} sent"
        time.sleep(0.05)


def test_two_people_share_the_inbox(
    pages: Callable[..., Page],
    team_shop: RunningApp,
    massiva: tuple[FakeMassiva, str],
    screenshots: Path,
) -> None:
    fake, _ = massiva
    inbound(team_shop, "quiero hablar con un asesor")
    wait_sent(fake, 1)  # the bot's hand-off answer went out
    ana = pages(team_shop.url, viewport={"width": 1100, "height": 760})
    beto = pages(viewport={"width": 390, "height": 844}, is_mobile=True)
    sign_in_as(ana, team_shop, "ana")
    sign_in_as(beto, team_shop, "beto")
    conversation = f"/admin/conversations/{CUSTOMER}"

    # Another customer asks for a person while Ana looks at the inbox: a notification.
    inbound(team_shop, "necesito un asesor por favor", OTHER)
    waiting = ana.locator("#waiting-status")
    expect(waiting).to_contain_text("necesito un asesor")
    expect(waiting).to_have_attribute("data-shown", re.compile(r"^\d+$"))
    expect(ana).to_have_title(re.compile(r"^\(2\) "))

    # Ana assigns the conversation to Beto; Beto sees it under "Mías".
    ana.goto(team_shop.url + conversation)
    ana.locator("#assign-user").select_option("beto")
    ana.locator("#assign-submit").click()
    beto.goto(team_shop.url + "/admin")
    beto.get_by_role("link", name="Mías").click()
    row = beto.locator(f'a[href="{conversation}"]')
    expect(row).to_be_visible()
    expect(beto.locator(".conversations")).to_contain_text("beto")

    # Beto answers; both see who wrote it.
    row.click()
    beto.get_by_label("Responder").fill("Hola, soy Beto. ¿En qué le ayudo?")
    beto.get_by_role("button", name="Enviar").click()
    expect(beto.get_by_role("status")).to_contain_text("Mensaje en cola")
    wait_sent(fake, 2)
    expect(beto.locator("#thread .msg.out .author").last).to_have_text("beto")
    ana.reload()
    expect(ana.locator("#thread .msg.out .author").last).to_have_text("beto")
    ana.screenshot(path=str(screenshots / "team-conversation.png"))
    beto.screenshot(path=str(screenshots / "team-conversation-phone.png"))

    # An agent cannot reach the rules: no link, and the page answers 403.
    expect(beto.get_by_role("link", name="Reglas")).to_have_count(0)
    refused = beto.goto(team_shop.url + "/admin/rules/editor")
    assert refused is not None and refused.status == 403

    # A reply that fails is retried from the thread.
    fake.credits = 0
    beto.goto(team_shop.url + conversation)
    beto.get_by_label("Responder").fill("Le confirmo el pedido.")
    beto.get_by_role("button", name="Enviar").click()
    failed = beto.locator("#thread .msg.out").last
    expect(failed.locator(".reason")).to_contain_text("Sin saldo")
    fake.credits = 1000
    failed.get_by_role("button", name="Reintentar").click()
    expect(beto.get_by_role("status")).to_contain_text("se reintenta")
    wait_sent(fake, 3)
    expect(beto.locator("#thread .msg.out").last).to_contain_text("enviado")

    # Signing out ends the session: a copy of the cookie no longer opens anything.
    cookies = beto.context.cookies()
    beto.get_by_role("button", name="Salir").click()
    expect(beto).to_have_url(team_shop.url + "/admin/login?ok=bye")
    copied = {c["name"]: c["value"] for c in cookies}
    again = loopback.get(f"{team_shop.url}/admin", cookies=copied, follow_redirects=False)
    assert again.status_code == 303 and "/admin/login" in again.headers["location"]
