"""The search over real HTTP on both stores: `GET /api/conversations?q=` and the inbox's box
(words folded, a number in any form first, the matching line with its words marked and the
page's text escaped, counts that stop at COUNT_LIMIT, hostile input answered, not a 500)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from responder.store import pg_search, sqlite_search
from responder.web.admin import inbox as admin_inbox
from tests import loopback
from tests.conftest import RunningApp
from tests.test_admin import sign_in

PHONE, OTHER, THIRD = "584121234567", "584241234567", "584161112233"
ROW = re.compile(r'<a href="/admin/conversations/(\d+)">')


@pytest.fixture(params=["sqlite", "postgres"])
def app(start_app: Callable[..., RunningApp], request: pytest.FixtureRequest) -> RunningApp:
    return start_app(backend=request.param)


@pytest.fixture
def staff(app: RunningApp) -> Iterator[httpx.Client]:
    client = sign_in(app)
    yield client
    client.close()


def inbound(app: RunningApp, text: str, phone: str) -> None:
    response = loopback.get(app.webhook(), params={"msg": text, "phone": phone})
    assert response.status_code == 200
    app.service.clock.advance(60)  # type: ignore[attr-defined]


def api_search(app: RunningApp, q: str, **params: str) -> list[tuple[str, str | None]]:
    with app.api() as api:
        response = api.get("/api/conversations", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return [
        (c["phone"], c["match"]["text"] if c["match"] else None)
        for c in response.json()["conversations"]
    ]


def test_the_api_finds_words_folded_and_numbers_in_any_form(app: RunningApp) -> None:
    inbound(app, "Quiero un CAFÉ con leche", PHONE)
    inbound(app, "¿tienen promoción?", OTHER)
    inbound(app, "mi número: +58 412 123 4567", THIRD)
    for q in ("CAFÉ", "cafe", "Café!", "leche CAFE"):
        assert api_search(app, q) == [(PHONE, "Quiero un CAFÉ con leche")]
    assert api_search(app, "promo") == [(OTHER, "¿tienen promoción?")]
    for q in ("+58 412 123 4567", "04121234567", "(0412) 123-4567", "584121234567"):
        assert api_search(app, q)[0] == (PHONE, None), q  # by its key, first
    assert api_search(app, "0412 123") == [(PHONE, None)]  # a part of a number
    # Digits: of numbers (PHONE, OTHER), or a word of a message (THIRD's, the newest).
    assert api_search(app, "4567") == [
        (THIRD, "mi número: +58 412 123 4567"),
        (OTHER, None),
        (PHONE, None),
    ]
    assert api_search(app, "promo", mode="human") == []  # the filters still hold
    assert api_search(app, "zapatos") == []


@pytest.mark.parametrize(
    "q", ['"', "*", "NEAR(", "-", "a OR b", "(((", "'x':* & !", "\\", "%", "é" * 3000]
)
def test_the_api_answers_hostile_searches(app: RunningApp, q: str) -> None:
    inbound(app, "hola", PHONE)
    assert api_search(app, q) == []


def test_the_api_refuses_deep_search_pages(app: RunningApp) -> None:
    with app.api() as api:
        response = api.get("/api/conversations", params={"q": "hola", "offset": "10001"})
        assert response.status_code == 400
        assert "offset" in response.json()["error"]
        deepest = api.get("/api/conversations", params={"q": "x", "offset": "10000"})
        assert deepest.status_code == 200


def test_the_inbox_marks_every_word_found_and_escapes_the_line(
    app: RunningApp, staff: httpx.Client
) -> None:
    inbound(app, "<b>Un café</b> & leche, por favor", PHONE)
    page = staff.get("/admin", params={"q": "LECHE cafe"})
    assert ROW.findall(page.text) == [PHONE]
    found = re.search(r'<span class="found">(.*?)</span>', page.text)
    assert found, page.text
    assert found.group(1) == (
        "&lt;b&gt;Un <mark>café</mark>&lt;/b&gt; &amp; <mark>leche</mark>, por favor"
    )
    hostile = staff.get("/admin", params={"q": '<script>"*NEAR('})
    assert hostile.status_code == 200
    assert "<script>&#34;" not in hostile.text and "&lt;script&gt;" in hostile.text


def test_a_number_typed_in_the_inbox_shows_its_conversation_first(
    app: RunningApp, staff: httpx.Client
) -> None:
    inbound(app, "hola", PHONE)
    inbound(app, "mi amiga es 0412 123 4567", OTHER)
    # The inbox goes straight to the conversation, whatever form the number is typed in ...
    for typed in ("0412-123-4567", "+58 412 1234567", "(0412) 123.45.67"):
        answer = staff.get("/admin", params={"q": typed}, follow_redirects=False)
        assert answer.status_code == 303, typed
        assert answer.headers["location"] == f"/admin/conversations/{PHONE}"
    # ... unless a filter is chosen: then the list, the number first, then who mentions it.
    listed = staff.get("/admin", params={"q": "0412-123-4567", "f": "open"}).text
    assert ROW.findall(listed)[:2] == [PHONE, OTHER]
    # A number that is no conversation is searched as text: who mentions it.
    assert ROW.findall(staff.get("/admin", params={"q": "0412 999 8877"}).text) == []


def test_the_inbox_counts_stop_at_the_limit(
    app: RunningApp, staff: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for phone in (PHONE, OTHER, THIRD):
        inbound(app, "quiero pan", phone)
    for module in (sqlite_search, pg_search):
        monkeypatch.setattr(module, "COUNT_LIMIT", 2)
    page = staff.get("/admin", params={"q": "pan"}).text
    # All it found is on the page: counted from what the page shows, past the limit.
    assert '>Todas <span class="count">3</span>' in page
    assert len(ROW.findall(page)) == 3
    monkeypatch.setattr(admin_inbox, "PAGE_SIZE", 2)  # more than a page: the store counts
    page = staff.get("/admin", params={"q": "pan"}).text
    assert '>Todas <span class="count">2+</span>' in page
    assert len(ROW.findall(page)) == 2 and 'id="inbox-more"' in page
