"""The inbox over real HTTP: a search that forgives accents and case, the customer's last
message in the list, a poll that costs nothing when nothing changed, what waits for a person."""

from __future__ import annotations

import re

import httpx
import pytest

from tests import loopback
from tests.conftest import RunningApp
from tests.test_admin import OTHER, PHONE, app, inbound, staff

__all__ = ["app", "staff"]  # fixtures, imported to be used here

ROW = re.compile(r'<a href="/admin/conversations/(\d+)">')


def phones(client: httpx.Client, path: str) -> list[str]:
    return ROW.findall(client.get(path).text)


@pytest.mark.parametrize("query", ["cafe", "CAFÉ", "café", "Café con", "¿cafe, CON?"])
def test_search_ignores_accents_case_and_punctuation(
    app: RunningApp, staff: httpx.Client, query: str
) -> None:
    inbound(app, "Quiero un CAFÉ con leche", PHONE)
    inbound(app, "horario", OTHER)
    page = staff.get("/admin", params={"q": query})
    assert ROW.findall(page.text) == [PHONE]
    # The line that matched, the matching part marked, in the customer's own spelling.
    found = re.search(r'<span class="found">(.*?)</span>', page.text)
    assert found, page.text
    assert "<mark>CAFÉ" in found.group(1) and found.group(1).startswith("Quiero un ")


def test_the_filter_counts_follow_the_search(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "horario", PHONE)
    inbound(app, "quiero un asesor", OTHER)

    def counts(path: str) -> dict[str, str]:
        found = re.findall(r'>([^<>]+) <span class="count">(\d+)</span>', staff.get(path).text)
        return {label.strip(): n for label, n in found}

    assert counts("/admin")["Todas"] == "2"
    assert counts("/admin")["Con personas"] == "1"
    searched = counts("/admin?q=ASESOR")
    assert (searched["Todas"], searched["Con personas"]) == ("1", "1")
    nothing = counts("/admin?q=zapatos")
    assert set(nothing.values()) == {"0"}


def test_the_list_shows_what_the_customer_wrote_and_the_answer_under_it(
    app: RunningApp, staff: httpx.Client
) -> None:
    inbound(app, "a que hora abren", PHONE)
    page = staff.get("/admin").text
    assert '<span class="last">a que hora abren</span>' in page
    answer = re.search(r'<span class="answer">(.*?)</span>\s*(?:<span|</a)', page, re.S)
    assert answer and "Abrimos de lunes a viernes" in answer.group(1)
    assert "bot" in answer.group(1)


def test_an_unchanged_poll_is_answered_304_without_the_list(
    app: RunningApp, staff: httpx.Client
) -> None:
    inbound(app, "horario", PHONE)
    first = staff.get("/admin/partials/inbox")
    etag = first.headers["etag"]
    assert first.status_code == 200 and PHONE in first.text
    again = staff.get("/admin/partials/inbox", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""  # nothing rendered, nothing sent
    assert again.headers["etag"] == etag
    # Another filter, a new message or a read mark is another list: sent in full.
    other = staff.get("/admin/partials/inbox?f=human", headers={"If-None-Match": etag})
    assert other.status_code == 200
    inbound(app, "hola otra vez", OTHER)
    news = staff.get("/admin/partials/inbox", headers={"If-None-Match": etag})
    assert news.status_code == 200 and OTHER in news.text
    assert news.headers["etag"] != etag
    assert "1 sin leer" in row_of(news.text, OTHER)
    staff.get(f"/admin/conversations/{OTHER}")  # read now: the unread badge goes
    read = staff.get("/admin/partials/inbox", headers={"If-None-Match": news.headers["etag"]})
    assert read.status_code == 200
    # Rows are rendered once and kept by what they show: this one shows something new.
    assert "sin leer" not in row_of(read.text, OTHER)
    assert row_of(read.text, PHONE) == row_of(news.text, PHONE)


def row_of(page: str, phone: str) -> str:
    """The markup of `phone`'s row in the inbox list."""
    found = re.search(rf'<a href="/admin/conversations/{phone}">(.*?)</a>', page, re.S)
    assert found, f"no row for {phone}"
    return found.group(1)


def test_the_poll_is_personal(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "horario", PHONE)
    etag = staff.get("/admin/partials/inbox").headers["etag"]
    stranger = loopback.get(f"{app.url}/admin/partials/inbox", headers={"If-None-Match": etag})
    assert stranger.status_code == 401


def test_what_waits_for_a_person(app: RunningApp, staff: httpx.Client) -> None:
    assert staff.get("/admin/partials/waiting").json() == {"count": 0, "newest": None}
    inbound(app, "horario", PHONE)  # the bot answered: nobody needs to
    assert staff.get("/admin/partials/waiting").json()["count"] == 0
    inbound(app, "quiero un asesor", OTHER)  # handed to a person
    waiting = staff.get("/admin/partials/waiting")
    assert waiting.headers["cache-control"] == "private, no-store"
    body = waiting.json()
    assert body["count"] == 1
    assert body["newest"]["text"] == "quiero un asesor"
    assert body["newest"]["href"] == f"/admin/conversations/{OTHER}"
    assert body["newest"]["who"] == "+58 424-1234567"
    staff.get(f"/admin/conversations/{OTHER}")  # seen
    assert staff.get("/admin/partials/waiting").json() == {"count": 0, "newest": None}
    assert loopback.get(f"{app.url}/admin/partials/waiting").status_code == 401
