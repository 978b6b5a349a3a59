"""The staff web inbox under /admin: sign-in, inbox, conversations, rules and dashboard.

Every page needs a session (signing in takes a person's name and password, or `admin` and the
admin token; the session lives in the store, the cookie holds only its random id); every form
carries the session's CSRF token. Pages under OWNER_ONLY answer 403 to agents. Pages go
through the same service methods as the JSON API.
"""

from __future__ import annotations

from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from responder.web.admin import (
    auth,
    broadcasts,
    contacts,
    conversation,
    dashboard,
    inbox,
    message_actions,
    people,
    rule_forms,
    rules,
    saved_replies,
)
from responder.web.admin.core import OPTED_OUT_ERROR, STORE_UNAVAILABLE, action, page, partial

__all__ = ["OPTED_OUT_ERROR", "STORE_UNAVAILABLE", "routes"]


def _static() -> StaticFiles:
    return StaticFiles(packages=[("responder.web", "static")])


routes = [
    *rules.routes,
    *people.routes,
    *rule_forms.routes,
    *message_actions.routes,
    *saved_replies.routes,
    *contacts.routes,
    *broadcasts.routes,
    Route("/admin", page(inbox.inbox), methods=["GET"]),
    Route("/admin/login", auth.login_form, methods=["GET"]),
    Route("/admin/login", action(auth.login, signed_in=False), methods=["POST"]),
    Route("/admin/logout", action(auth.logout, signed_in=False), methods=["POST"]),
    Route("/admin/partials/inbox", partial(inbox.inbox_partial), methods=["GET"]),
    Route("/admin/partials/waiting", partial(inbox.waiting), methods=["GET"]),
    Route("/admin/conversations/{phone}", page(conversation.conversation_page), methods=["GET"]),
    Route(
        "/admin/partials/conversations/{phone}",
        partial(conversation.conversation_partial),
        methods=["GET"],
    ),
    Route(
        "/admin/partials/conversations/{phone}/older",
        partial(conversation.conversation_older),
        methods=["GET"],
    ),
    Route("/admin/conversations/{phone}/reply", action(conversation.reply), methods=["POST"]),
    Route("/admin/conversations/{phone}/mode", action(conversation.set_mode), methods=["POST"]),
    Route("/admin/conversations/{phone}/fields", action(conversation.set_fields), methods=["POST"]),
    Route("/admin/conversations/{phone}/forget", action(conversation.forget), methods=["POST"]),
    Route("/admin/conversations/{phone}/assign", action(conversation.assign), methods=["POST"]),
    Route("/admin/conversations/{phone}/status", action(conversation.set_status), methods=["POST"]),
    Route("/admin/conversations/{phone}/notes", action(conversation.add_note), methods=["POST"]),
    Route("/admin/conversations/{phone}/typing", action(conversation.typing), methods=["POST"]),
    Route("/admin/dashboard", page(dashboard.dashboard), methods=["GET"]),
    Route("/admin/sms.json", partial(conversation.sms_alphabet), methods=["GET"]),
    Mount("/admin/static", app=_static(), name="admin-static"),
]
