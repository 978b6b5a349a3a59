"""The inbox: conversations, filters, search, live updates, and what waits for a person."""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from responder.store.models import Conversation, Message
from responder.store.search import SearchCounts, SearchQuery
from responder.web import cursors, views
from responder.web.admin.core import (
    FILTERS,
    PAGE_SIZE,
    _fragment,
    _render,
    _service,
    _state,
)
from responder.web.sessions import Session

NOTIFY_TEXT = 140  # characters of a message a notification shows


@dataclass(frozen=True)
class Row:
    """One conversation in the list: what the customer wrote last, the answer after it (the
    bot's or a person's), and the part of a message a search found."""

    c: Conversation
    inbound: Message | None
    reply: Message | None
    found: list[tuple[str, bool]] | None  # (text, whether a searched word) parts


# -- inbox --------------------------------------------------------------------------------------


async def _inbox(request: Request, session: Session) -> dict[str, Any]:
    service = _service(request)
    params = request.query_params
    chosen = params.get("f", "all")
    if chosen not in FILTERS:
        chosen = "all"
    query = params.get("q", "").strip()[:100]
    try:
        shown = min(500, max(PAGE_SIZE, int(params.get("n", PAGE_SIZE))))
    except ValueError:
        shown = PAGE_SIZE
    filters: dict[str, Any] = FILTERS[chosen][2]
    if chosen == "mine":
        filters = {"assigned": session.user}
    matched: dict[str, int] = {}
    complete = True
    words: list[str] = []
    if query:
        search = service.search_query(query)
        words = search.words
        page = await service.search(search, shown + 1, 0, **filters)
        found, matched = page.conversations, page.matched
        if chosen == "all" and len(found) <= shown:
            # All it found is on the page: the counts are of these conversations.
            searched = SearchCounts.of(found, session.user)
        else:
            searched = await service.search_counts(session.user, search)  # they follow it
        counts, complete = searched.counts, searched.complete
    else:
        # A keyset page: "Ver más" goes on from the last conversation shown, at any depth.
        with contextlib.suppress(cursors.BadCursor):
            if params.get("cursor"):
                filters = {**filters, "after": cursors.conversation_key(params["cursor"])}
        found = await service.conversations(shown + 1, 0, **filters)
        counts = await service.conversation_counts(session.user)
    counts["open"] = counts["all"] - counts["resolved"]
    # A search that found more than COUNT_LIMIT conversations stopped counting: "500+".
    plus = "" if complete else "+"
    links = [
        (key, label, f"{counts[count_key]}{plus}", _link("/admin", f=key, q=query))
        for key, (label, count_key, _) in FILTERS.items()
    ]
    failed = await service.failed_phones([c.phone for c in found[:shown]])
    rows = await _rows(request, found[:shown], words, matched)
    now = service.clock()  # one moment for the rows' keys and their markup
    return {
        "section": "inbox",
        "now": now,
        "failed_phones": failed,
        "conversations": found[:shown],
        "rows": rows,
        "row_keys": _row_keys(request, rows, failed, now),
        "more": _more(chosen, query, shown, found),
        "first": _link("/admin", f=chosen) if "after" in filters else None,
        "filter": chosen,
        "filters": links,
        "q": query,
        "counts": counts,
        "poll_url": _link(
            "/admin/partials/inbox",
            f=chosen,
            q=query,
            n=str(shown),
            cursor=params.get("cursor", "") if not query else "",
        ),
    }


def _more(chosen: str, query: str, shown: int, found: list[Conversation]) -> str | None:
    """The next page: searches show more at once; the list goes on after its last row."""
    if len(found) <= shown:
        return None
    if query:
        return _link("/admin", f=chosen, q=query, n=str(shown + PAGE_SIZE))
    cursor = cursors.conversation_cursor(found[shown - 1])
    return _link("/admin", f=chosen, n=str(shown) if shown != PAGE_SIZE else "", cursor=cursor)


async def _rows(
    request: Request, shown: list[Conversation], words: list[str], matched: dict[str, int]
) -> list[Row]:
    service = _service(request)
    phones = [c.phone for c in shown]
    last: dict[tuple[str, str], Message] = {
        (m.phone, m.direction): m for m in await service.last_messages(phones)
    }
    ids = [matched[p] for p in phones if p in matched]
    matches = {m.phone: m for m in await service.messages_by_id(ids)} if ids else {}
    rows = []
    for c in shown:
        inbound, outbound = last.get((c.phone, "in")), last.get((c.phone, "out"))
        reply = outbound if outbound and (inbound is None or outbound.id > inbound.id) else None
        match = matches.get(c.phone)
        found = views.match_excerpt(match.text, words) if match else None
        rows.append(Row(c, inbound, reply, found))
    return rows


def _row_keys(request: Request, rows: list[Row], failed: set[str], now: datetime) -> list[bytes]:
    """A digest of everything each row shows: its records, its "falló" badge, and the shop's
    date and time zone (its time reads "14:05" today, "23/11 14:05" after)."""
    settings = _service(request).rules.current.settings
    today = now.astimezone(settings.timezone).date()
    return [
        hashlib.sha256(
            repr((row, row.c.phone in failed, today, str(settings.timezone))).encode()
        ).digest()
        for row in rows
    ]


def _with_markup(request: Request, context: dict[str, Any]) -> dict[str, Any]:
    """The context with each row's markup: kept from an earlier answer when its key is."""
    kept = _state(request).rows
    markup = []
    for key, row in zip(context["row_keys"], context["rows"], strict=True):
        found = kept.get(key)
        if found is None:
            found = _fragment(
                request,
                "_inbox_row.html",
                row=row,
                failed_phones=context["failed_phones"],
                now=context["now"],
            )
            kept.put(key, found)
        markup.append(found)
    return {**context, "row_markup": markup}


def _link(path: str, **query: str) -> str:
    kept = {k: v for k, v in query.items() if v and not (k == "f" and v == "all")}
    return path + ("?" + urlencode(kept) if kept else "")


def _fingerprint(request: Request, session: Session, context: dict[str, Any]) -> str:
    """An ETag for the list as it would be rendered: the data shown (each row's key holds its
    records, its badge and the shop's date), who asks (and for what). A new version's markup
    reaches a page when it reloads (its script goes with it)."""
    parts = (
        session.user,
        session.owner,
        session.csrf,
        str(request.url.query),
        context["row_keys"],
        context["counts"],
        context["filters"],
        context["more"],
        context["first"],
    )
    return '"' + hashlib.sha256(repr(parts).encode()).hexdigest()[:32] + '"'


async def inbox(request: Request, session: Session) -> Response:
    # A whole number typed in any form (0414-999.00.00, +58 414 9990000) that is a
    # conversation: straight to it, found by the contacts' key (the API's search lists it
    # first, then the messages that mention it).
    query = request.query_params.get("q", "").strip()[:100]
    if query and request.query_params.get("f", "all") == "all":
        service = _service(request)
        phones = service.search_query(query).phones
        if phones:
            found = await service.search(SearchQuery("", phones=phones), 1, 0)
            if found.conversations:
                phone = found.conversations[0].phone
                return RedirectResponse(f"/admin/conversations/{phone}", status_code=303)
    context = _with_markup(request, await _inbox(request, session))
    return _render(request, session, "inbox.html", **context)


async def inbox_partial(request: Request, session: Session) -> Response:
    """The live part of the inbox; 304 without rendering when nothing shown has changed since
    the ETag the page sent (a poll every few seconds costs the queries, not the page)."""
    context = await _inbox(request, session)
    etag = _fingerprint(request, session, context)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    response = _render(request, session, "_inbox_live.html", **_with_markup(request, context))
    response.headers.update(headers)
    return response


async def waiting(request: Request, session: Session) -> Response:
    """What waits for a person, for every admin page: the tab title's count and the newest
    inbound message, which the page raises as a notification when it is new."""
    found = await _service(request).waiting()
    newest = None
    if found.newest is not None:
        m = found.newest
        conversation = await _service(request).conversation(m.phone)
        newest = {
            "id": m.id,
            "phone": m.phone,
            "who": views.contact_name(conversation.fields) or views.show_phone(m.phone),
            "text": m.text[:NOTIFY_TEXT],
            "href": f"/admin/conversations/{m.phone}",
        }
    body = {"count": found.count, "newest": newest}
    return JSONResponse(body, headers={"Cache-Control": "private, no-store"})
