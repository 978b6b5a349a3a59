"""The team over real HTTP (DESIGN §11): people and roles in the API and the admin, personal
tokens, sessions that end when a person is disabled or their password changes, the sign-in
limit per account and per address, who wrote each reply, and the audit trail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import closing

import httpx
import pytest

from tests import loopback
from tests.conftest import ADMIN_TOKEN, RunningApp
from tests.test_admin import csrf_of, flat, inbound, post

PHONE = "584121234567"
ANA_PASSWORD = "clave-de-ana-1"
BEA_PASSWORD = "clave-de-bea-2"


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def owner_api(app: RunningApp) -> httpx.Client:
    return app.api()


def bearer(app: RunningApp, token: str) -> httpx.Client:
    return loopback.Client(
        base_url=app.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def add_person(app: RunningApp, name: str, role: str, password: str) -> None:
    with owner_api(app) as api:
        response = api.post("/api/users", json={"name": name, "role": role, "password": password})
    assert response.status_code == 201, response.text


def token_of(app: RunningApp, name: str) -> str:
    """A new personal token for `name`, as `responder users token NAME` makes it (made by the
    service on the app's own loop: the API gives a person only their own)."""
    assert app.service.loop is not None
    future = asyncio.run_coroutine_threadsafe(
        app.service.accounts.create_token(None, name), app.service.loop
    )
    return future.result(timeout=10)[1]


def sign_in_as(
    app: RunningApp, name: str, password: str, *, address: str | None = None
) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address) if address else None
    client = loopback.Client(base_url=app.url, timeout=10, transport=transport)
    form = client.get("/admin/login")
    response = client.post(
        "/admin/login", data={"csrf": csrf_of(form.text), "name": name, "password": password}
    )
    assert response.status_code == 303, response.text
    return client


def try_sign_in(client: httpx.Client, name: str, password: str) -> httpx.Response:
    form = client.get("/admin/login")
    return client.post(
        "/admin/login", data={"csrf": csrf_of(form.text), "name": name, "password": password}
    )


# -- the API --------------------------------------------------------------------------------------


def test_owners_add_list_and_change_people(app: RunningApp) -> None:
    with owner_api(app) as api:
        created = api.post(
            "/api/users", json={"name": "Ana ", "role": "agent", "password": ANA_PASSWORD}
        )
        assert created.status_code == 201
        assert set(created.json()) == {"name", "role", "disabled", "created_at"}
        assert (created.json()["name"], created.json()["role"]) == ("ana", "agent")
        assert created.json()["created_at"] == "2026-11-23T14:00:00.000000Z"
        assert "password" not in created.text and "argon2" not in created.text
        refused = [
            ({"name": "ana", "role": "agent", "password": ANA_PASSWORD}, 409),
            ({"name": "admin", "role": "owner", "password": ANA_PASSWORD}, 400),
            ({"name": "ana maría", "role": "agent", "password": ANA_PASSWORD}, 400),
            ({"name": "luis", "role": "boss", "password": ANA_PASSWORD}, 400),
            ({"name": "luis", "role": "agent", "password": "corta"}, 400),
            ({"name": "luis", "role": "agent"}, 400),
        ]
        for body, status in refused:
            response = api.post("/api/users", json=body)
            assert response.status_code == status, body
            assert "error" in response.json()
        changed = api.post("/api/users/ana", json={"role": "owner", "disabled": True})
        assert changed.status_code == 200
        assert (changed.json()["role"], changed.json()["disabled"]) == ("owner", True)
        assert api.post("/api/users/nadie", json={"disabled": True}).status_code == 404
        assert api.post("/api/users/ana", json={"disabled": "yes"}).status_code == 400
        assert api.post("/api/users/ana", json={"colour": "red"}).status_code == 400
        assert api.post("/api/users/admin", json={"disabled": True}).status_code == 400
        listed = api.get("/api/users").json()
    assert listed == {
        "users": [
            {
                "name": "ana",
                "role": "owner",
                "disabled": True,
                "created_at": "2026-11-23T14:00:00.000000Z",
            }
        ]
    }


OWNER_ONLY = [
    ("GET", "/api/users", None),
    ("POST", "/api/users", {"name": "luis", "role": "owner", "password": "x" * 10}),
    ("POST", "/api/users/bea", {"role": "agent"}),
    ("GET", "/api/audit", None),
    ("POST", "/api/rules/check", {"rules": "rules: []"}),
    ("POST", "/api/rules/versions", {"rules": "rules: []", "base": 1}),
    ("POST", "/api/rules/versions/1/restore", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), OWNER_ONLY)
def test_an_agent_gets_403_for_an_owners_action(
    app: RunningApp, method: str, path: str, body: dict[str, object] | None
) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    add_person(app, "bea", "owner", BEA_PASSWORD)
    with bearer(app, token_of(app, "ana")) as ana:
        response = ana.request(method, path, json=body)
        assert response.status_code == 403
        assert response.json() == {"error": "only an owner may do this"}
    with owner_api(app) as api:  # nothing changed
        assert [u["role"] for u in api.get("/api/users").json()["users"]] == ["agent", "owner"]
    with bearer(app, token_of(app, "bea")) as bea:  # an owner may
        assert bea.request(method, path, json=body).status_code not in (401, 403)


def test_an_agent_reads_conversations_and_replies_signed(app: RunningApp) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    inbound(app, "hola")
    with bearer(app, token_of(app, "ana")) as ana:
        assert ana.get("/api/conversations").status_code == 200
        assert ana.get("/api/rules").status_code == 200  # reading the rules is for both
        sent = ana.post(f"/api/conversations/{PHONE}/messages", json={"text": "Le atiende Ana"})
        assert sent.status_code == 202
        assert sent.json()["message"]["author"] == "ana"
        mode = ana.post(f"/api/conversations/{PHONE}/mode", json={"mode": "bot"})
        assert mode.status_code == 200
    with owner_api(app) as api:
        by_owner = api.post(f"/api/conversations/{PHONE}/messages", json={"text": "Y el dueño"})
        assert by_owner.json()["message"]["author"] == "admin"
    messages = app.messages(PHONE)
    assert [(m["text"], m["author"]) for m in messages] == [
        ("hola", None),
        (messages[1]["text"], None),  # the bot's answer
        ("Le atiende Ana", "ana"),
        ("Y el dueño", "admin"),
    ]


def test_personal_tokens_are_shown_once_act_as_their_person_and_are_revoked(
    app: RunningApp,
) -> None:
    inbound(app, "hola")
    add_person(app, "ana", "agent", ANA_PASSWORD)
    add_person(app, "bea", "agent", BEA_PASSWORD)
    with bearer(app, token_of(app, "ana")) as ana:
        made = ana.post("/api/tokens")
        assert made.status_code == 201
        token, token_id = made.json()["token"], made.json()["id"]
        assert token.startswith("rsp_") and len(token) > 40
    with bearer(app, token) as second:
        sent = second.post(f"/api/conversations/{PHONE}/messages", json={"text": "Hola"})
        assert sent.json()["message"]["author"] == "ana"
    with bearer(app, token_of(app, "bea")) as bea:
        # Another agent cannot revoke it (nor learn it exists).
        assert bea.delete(f"/api/tokens/{token_id}").status_code == 404
    with bearer(app, token) as second:
        assert second.delete(f"/api/tokens/{token_id}").status_code == 204
        assert second.get("/api/conversations").status_code == 401
    with owner_api(app) as api:
        assert api.delete(f"/api/tokens/{token_id}").status_code == 404  # once
        assert api.delete("/api/tokens/abc").status_code == 404
        # The built-in owner gets tokens of their own too.
        owners = api.post("/api/tokens").json()["token"]
    with bearer(app, owners) as own:
        assert own.get("/api/users").status_code == 200


def test_a_disabled_persons_tokens_stop_and_start_again(app: RunningApp) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    token = token_of(app, "ana")
    with owner_api(app) as api, bearer(app, token) as ana:
        assert ana.get("/api/conversations").status_code == 200
        api.post("/api/users/ana", json={"disabled": True})
        assert ana.get("/api/conversations").status_code == 401
        api.post("/api/users/ana", json={"disabled": False})
        assert ana.get("/api/conversations").status_code == 200
        api.post("/api/users/ana", json={"role": "owner"})
        assert ana.get("/api/users").status_code == 200  # the role is read at each call


# -- the admin ----------------------------------------------------------------------------------


def test_people_sign_in_with_their_own_name_and_password(app: RunningApp) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    with closing(sign_in_as(app, "ANA", ANA_PASSWORD)) as ana:  # names are read in lower case
        assert "ana" in flat(ana.get("/admin"))
    with loopback.Client(base_url=app.url) as stranger:
        assert try_sign_in(stranger, "ana", BEA_PASSWORD).status_code == 401
        assert try_sign_in(stranger, "nadie", ANA_PASSWORD).status_code == 401
        assert try_sign_in(stranger, "ana", ADMIN_TOKEN).status_code == 401


AGENT_REFUSED_PAGES = [
    "/admin/rules",
    "/admin/rules/editor",
    "/admin/rules/versions",
    "/admin/people",
    "/admin/audit",
]


def test_an_agent_does_not_see_or_reach_the_owners_pages(app: RunningApp) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    inbound(app, "hola")
    with closing(sign_in_as(app, "ana", ANA_PASSWORD)) as ana:
        inbox = ana.get("/admin").text
        for link in ('href="/admin/rules"', 'href="/admin/people"', 'href="/admin/audit"'):
            assert link not in inbox
        assert 'href="/admin/dashboard"' in inbox
        for path in AGENT_REFUSED_PAGES:
            response = ana.get(path)
            assert response.status_code == 403, path
            assert "solo para dueños" in response.text
        csrf = csrf_of(inbox)
        for path, data in [
            ("/admin/people", {"name": "luis", "role": "owner", "password": "x" * 10}),
            ("/admin/people/ana", {"role": "owner"}),
            ("/admin/rules/versions/1/restore", {}),
        ]:
            assert ana.post(path, data={"csrf": csrf, **data}).status_code == 403, path
        assert ana.post("/admin/rules/check", data={"csrf": csrf}).status_code == 403
        # What agents do: the inbox, conversations, replies.
        page = f"/admin/conversations/{PHONE}"
        assert ana.get(page).status_code == 200
        assert post(ana, f"{page}/reply", page, text="Le atiende Ana").status_code == 303
        assert '<span class="author">ana</span>' in ana.get(page).text
    with owner_api(app) as api:
        assert [u["role"] for u in api.get("/api/users").json()["users"]] == ["agent"]
    with closing(sign_in_as(app, "admin", ADMIN_TOKEN)) as owner:
        inbox = owner.get("/admin").text
        for link in ('href="/admin/rules"', 'href="/admin/people"', 'href="/admin/audit"'):
            assert link in inbox
        for path in AGENT_REFUSED_PAGES:
            assert owner.get(path).status_code == 200, path


def test_the_personas_page_adds_and_changes_people(app: RunningApp) -> None:
    with closing(sign_in_as(app, "admin", ADMIN_TOKEN)) as owner:
        page = "/admin/people"
        mismatch = post(
            owner, page, page, name="ana", role="agent", password=ANA_PASSWORD, password2="otra"
        )
        assert mismatch.status_code == 400 and "no coinciden" in mismatch.text
        short = post(owner, page, page, name="ana", role="agent", password="x", password2="x")
        assert short.status_code == 400 and "al menos 8 caracteres" in short.text
        assert 'value="ana"' in short.text  # what was typed stays
        added = post(
            owner, page, page, name="ana", role="agent", password=ANA_PASSWORD,
            password2=ANA_PASSWORD,
        )  # fmt: skip
        assert added.status_code == 303 and added.headers["location"] == f"{page}?ok=added"
        again = post(
            owner, page, page, name="ana", role="owner", password=ANA_PASSWORD,
            password2=ANA_PASSWORD,
        )  # fmt: skip
        assert again.status_code == 400 and "Ya hay una persona llamada ana" in again.text
        shown = flat(owner.get(f"{page}?ok=added"))
        assert "Persona agregada" in shown and 'id="person-ana"' in shown
        assert "Agente" in shown and "activa" in shown
        assert post(owner, f"{page}/ana", page, role="owner").status_code == 303
        assert post(owner, f"{page}/ana", page, disabled="1").status_code == 303
        assert "deshabilitada" in flat(owner.get(page))
        assert post(owner, f"{page}/nadie", page, disabled="1").status_code == 404
        assert post(owner, f"{page}/ana", page, disabled="0").status_code == 303
        changed = post(
            owner, f"{page}/ana", page, password="nueva-clave-9", password2="nueva-clave-9"
        )
        assert changed.headers["location"] == f"{page}?ok=password"
    with owner_api(app) as api:
        [ana] = api.get("/api/users").json()["users"]
    assert (ana["role"], ana["disabled"]) == ("owner", False)
    with closing(sign_in_as(app, "ana", "nueva-clave-9")) as ana_client:
        assert ana_client.get("/admin/people").status_code == 200  # an owner now


@pytest.mark.parametrize(
    "change", [{"disabled": True}, {"password": "otra-clave-123"}], ids=["disabled", "password"]
)
def test_disabling_or_a_new_password_ends_sessions_on_every_instance(
    start_app: Callable[..., RunningApp], change: dict[str, object]
) -> None:
    first, second = start_app(), start_app()  # two instances on one database
    add_person(first, "ana", "agent", ANA_PASSWORD)
    ana = sign_in_as(first, "ana", ANA_PASSWORD)
    copied = loopback.Client(base_url=second.url, cookies=dict(ana.cookies), timeout=10)
    assert copied.get("/admin").status_code == 200
    with owner_api(second) as api:
        assert api.post("/api/users/ana", json=change).status_code == 200
    for client in (ana, copied):
        response = client.get("/admin")
        assert response.status_code == 303 and response.headers["location"].startswith(
            "/admin/login"
        )
        client.close()
    if "password" in change:  # the new password opens a new session
        sign_in_as(second, "ana", "otra-clave-123").close()


def test_sign_out_ends_the_session_and_a_copied_cookie_stops_working(app: RunningApp) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    ana = sign_in_as(app, "ana", ANA_PASSWORD)
    copied = loopback.Client(base_url=app.url, cookies=dict(ana.cookies), timeout=10)
    assert copied.get("/admin").status_code == 200
    assert post(ana, "/admin/logout", "/admin").status_code == 303
    assert copied.get("/admin").status_code == 303
    ana.close()
    copied.close()


def test_the_sign_in_limit_counts_per_account_and_per_address(app: RunningApp) -> None:
    add_person(app, "ana", "agent", ANA_PASSWORD)
    add_person(app, "bea", "agent", BEA_PASSWORD)
    guesser = loopback.Client(
        base_url=app.url, transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10
    )
    for _ in range(5):
        assert try_sign_in(guesser, "ana", "adivina-123").status_code == 401
    # Ana's account waits, wherever she signs in from...
    elsewhere = loopback.Client(
        base_url=app.url, transport=httpx.HTTPTransport(local_address="127.0.0.3"), timeout=10
    )
    blocked = try_sign_in(elsewhere, "ana", ANA_PASSWORD)
    assert blocked.status_code == 429 and "Demasiados intentos" in blocked.text
    assert 0 < int(blocked.headers["retry-after"]) <= 60
    # ...another account from elsewhere does not...
    assert try_sign_in(elsewhere, "bea", BEA_PASSWORD).status_code == 303
    # ...and the guessing address waits for every account.
    assert try_sign_in(guesser, "bea", BEA_PASSWORD).status_code == 429
    app.service.clock.advance(61)  # type: ignore[attr-defined]
    assert try_sign_in(guesser, "ana", ANA_PASSWORD).status_code == 303
    guesser.close()
    elsewhere.close()


# -- who did what ------------------------------------------------------------------------------


def test_the_audit_trail_records_who_did_what_newest_first(app: RunningApp) -> None:
    inbound(app, "hola")
    add_person(app, "ana", "agent", ANA_PASSWORD)
    with loopback.Client(base_url=app.url) as stranger:
        assert try_sign_in(stranger, "ana", "adivina-123").status_code == 401
    ana = sign_in_as(app, "ana", ANA_PASSWORD)
    page = f"/admin/conversations/{PHONE}"
    post(ana, f"{page}/mode", page, mode="human")
    post(ana, "/admin/logout", "/admin")
    ana.close()
    with owner_api(app) as api:
        api.post("/api/users/ana", json={"password": "otra-clave-123"})
        api.post("/api/tokens")
        source = api.get("/api/rules/versions").json()["versions"][0]
        whole = api.get(f"/api/rules/versions/{source['id']}").json()["version"]
        published = api.post(
            "/api/rules/versions",
            json={"rules": whole["rules"], "base": source["id"], "note": "igual"},
        )
        assert published.status_code == 201
        events = api.get("/api/audit").json()["events"]
    assert set(events[0]) == {"at", "actor", "action", "subject", "detail", "id"}
    assert [(e["actor"], e["action"], e["subject"]) for e in events] == [
        ("admin", "rules_published", str(published.json()["version"]["id"])),
        ("admin", "token_created", "admin"),
        ("admin", "user_changed", "ana"),
        ("ana", "sign_out", "ana"),
        ("ana", "mode_changed", PHONE),
        ("ana", "sign_in", "ana"),
        (None, "sign_in_failed", "ana"),
        ("admin", "user_created", "ana"),
    ]
    assert events[2]["detail"] == {"password": "changed"}
    assert "otra-clave" not in str(events) and ANA_PASSWORD not in str(events)
    assert events[4]["detail"] == {"mode": "human"}
    assert events[0]["detail"]["source"] == "api" and events[0]["detail"]["note"] == "igual"
    assert events[-1]["at"] == "2026-11-23T14:00:00.000000Z"
    with closing(sign_in_as(app, "admin", ADMIN_TOKEN)) as owner:
        shown = flat(owner.get("/admin/audit"))
    assert shown.index("publicó reglas") < shown.index("agregó a una persona")
    assert "intento de entrada fallido" in shown and "entró" in shown


def test_a_reply_that_hands_over_is_a_mode_change_on_record(app: RunningApp) -> None:
    inbound(app, "hola")
    add_person(app, "ana", "agent", ANA_PASSWORD)
    with closing(sign_in_as(app, "ana", ANA_PASSWORD)) as ana:
        page = f"/admin/conversations/{PHONE}"
        post(ana, f"{page}/reply", page, text="Le atiende Ana")
        post(ana, f"{page}/reply", page, text="¿Algo más?")  # already with people: no record
    with owner_api(app) as api:
        events = api.get("/api/audit").json()["events"]
    handoffs = [e for e in events if e["action"] == "mode_changed"]
    assert [(e["actor"], e["subject"], e["detail"]) for e in handoffs] == [
        ("ana", PHONE, {"mode": "human", "by": "reply"})
    ]
