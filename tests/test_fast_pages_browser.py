"""A long conversation in a real browser (Chromium, Playwright): it opens at its newest messages,
loads the older ones page by page as the person scrolls up, and live updates keep them."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from responder.web.admin.conversation import THREAD_PAGE
from tests import loopback
from tests.conftest import RunningApp
from tests.test_admin_browser import browser as browser  # the fixtures
from tests.test_admin_browser import page as page
from tests.test_admin_browser import shop as shop
from tests.test_admin_browser import sign_in

PHONE = "584121234567"


def test_a_long_conversation_opens_at_its_newest_and_loads_older_on_scroll(
    page: Page, shop: RunningApp
) -> None:
    with loopback.Client(timeout=10) as client:
        for n in range(430):  # the bot answers the first few (then its reply limit holds)
            response = client.get(shop.webhook(), params={"msg": f"pregunta {n}", "phone": PHONE})
            assert response.status_code == 200
    with shop.api() as api:
        everything = api.get(f"/api/conversations/{PHONE}/messages", params={"limit": 1000})
        total = len(everything.json()["messages"])
    assert 2 * THREAD_PAGE < total < 3 * THREAD_PAGE
    sign_in(page, shop, f"/admin/conversations/{PHONE}")
    messages = page.locator("#thread .msg")
    expect(messages).to_have_count(THREAD_PAGE)
    expect(page.locator("#thread .msg").last).to_contain_text("pregunta 429")
    assert "pregunta 0" not in page.locator("#thread").inner_text()

    # Scrolling to the top brings the page before; where the person was reading stays put.
    reading = page.locator(f"#thread .msg >> nth={0}")
    first_id = reading.get_attribute("id")
    page.locator("#thread").evaluate("el => { el.scrollTop = 0; }")
    expect(messages).to_have_count(2 * THREAD_PAGE)
    box = page.locator("#thread").bounding_box()
    still = page.locator(f"#{first_id}").bounding_box()
    assert box is not None and still is not None
    assert box["y"] - 50 <= still["y"] <= box["y"] + box["height"]  # still in view

    # The last page, with the button (a short thread that cannot scroll uses it). Dispatched,
    # not clicked: a click scrolls the button into view, which may start the same load by
    # scrolling and detach the button under the pointer.
    page.locator("#older button").dispatch_event("click")
    expect(messages).to_have_count(total)
    expect(page.locator("#older")).to_have_count(0)
    expect(page.locator("#thread .msg").first).to_contain_text("pregunta 0")

    # A new message arrives: the poll brings it and keeps every older one loaded.
    loopback.get(shop.webhook(), params={"msg": "una más", "phone": PHONE})
    expect(page.locator("#thread")).to_contain_text("una más")
    with shop.api() as api:
        now = api.get(f"/api/conversations/{PHONE}/messages", params={"limit": 1000})
    expect(messages).to_have_count(len(now.json()["messages"]))
    ids = page.locator("#thread .msg").evaluate_all("els => els.map(e => e.id)")
    assert len(ids) == len(set(ids))
