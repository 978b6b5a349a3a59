"""The inbox: conversations, filters, search, live updates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from responder.web import views
from responder.web.admin.core import (
    FILTERS,
    PAGE_SIZE,
    _render,
    _service,
)
from responder.web.sessions import Session

if TYPE_CHECKING:
    pass


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
    if query:
        country = service.rules.current.settings.country
        fragments = views.phone_fragments(query, country)
        found = await service.search_conversations(query, fragments, shown + 1, 0, **filters)
    else:
        found = await service.conversations(shown + 1, 0, **filters)
    counts = await service.conversation_counts(session.user)
    counts["open"] = counts["all"] - counts["resolved"]
    links = [
        (key, label, counts[count_key], _link("/admin", f=key, q=query))
        for key, (label, count_key, _) in FILTERS.items()
    ]
    failed = await service.failed_phones([c.phone for c in found[:shown]])
    return {
        "section": "inbox",
        "failed_phones": failed,
        "conversations": found[:shown],
        "more": _link("/admin", f=chosen, q=query, n=str(shown + PAGE_SIZE))
        if len(found) > shown
        else None,
        "filter": chosen,
        "filters": links,
        "q": query,
        "counts": counts,
        "poll_url": _link("/admin/partials/inbox", f=chosen, q=query, n=str(shown)),
    }


def _link(path: str, **query: str) -> str:
    kept = {k: v for k, v in query.items() if v and not (k == "f" and v == "all")}
    return path + ("?" + urlencode(kept) if kept else "")


async def inbox(request: Request, session: Session) -> Response:
    return _render(request, session, "inbox.html", **await _inbox(request, session))


async def inbox_partial(request: Request, session: Session) -> Response:
    return _render(request, session, "_inbox_live.html", **await _inbox(request, session))
