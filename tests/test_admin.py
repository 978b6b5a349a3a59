"""The admin web inbox over real HTTP: sign-in, CSRF, pages, fragments and form actions."""

from __future__ import annotations

import hashlib
import html
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from responder import text as sms_text
from responder.app import create_app
from responder.config import Settings
from responder.web.admin import OPTED_OUT_ERROR
from tests import loopback
from tests.conftest import ADMIN_TOKEN, Clock, RunningApp, massiva_env
from tests.fakes.massiva import FakeMassiva
from tests.fakes.server import FakeServer

PHONE = "584121234567"
OTHER = "584241234567"


@pytest.fixture
def app(start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app()


def inbound(app: RunningApp, text: str, phone: str = PHONE) -> None:
    response = loopback.get(app.webhook(), params={"msg": text, "phone": phone})
    assert response.status_code == 200


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def flat(response: httpx.Response) -> str:
    """The page's HTML with runs of whitespace as one space."""
    return " ".join(response.text.split())


def sign_in(app: RunningApp) -> httpx.Client:
    return sign_in_at(app.url)


def sign_in_at(url: str, token: str = ADMIN_TOKEN) -> httpx.Client:
    client = loopback.Client(base_url=url, timeout=10)
    form = client.get("/admin/login")
    data = {"csrf": csrf_of(form.text), "name": "admin", "password": token}
    response = client.post("/admin/login", data=data)
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def staff(app: RunningApp) -> Iterator[httpx.Client]:
    client = sign_in(app)
    yield client
    client.close()


def post(client: httpx.Client, path: str, page: str, **data: str) -> httpx.Response:
    """Submits a form the way the browser does: with the CSRF token of the page it is on."""
    return client.post(path, data={"csrf": csrf_of(client.get(page).text), **data})


PAGES = ["/admin", f"/admin/conversations/{PHONE}", "/admin/rules", "/admin/dashboard"]
PARTIALS = ["/admin/partials/inbox", f"/admin/partials/conversations/{PHONE}", "/admin/sms.json"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_strangers_to_the_sign_in_form(app: RunningApp, path: str) -> None:
    response = loopback.get(f"{app.url}{path}?f=human")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/admin/login"
    assert parse_qs(location.query)["next"] == [f"{path}?f=human"]


@pytest.mark.parametrize("path", PARTIALS)
def test_fragments_answer_401_to_strangers(app: RunningApp, path: str) -> None:
    assert loopback.get(f"{app.url}{path}").status_code == 401


def test_sign_in_sets_an_opaque_http_only_cookie(app: RunningApp) -> None:
    with loopback.Client(base_url=app.url) as client:
        form = client.get("/admin/login?next=/admin/rules")
        assert form.status_code == 200
        assert 'type="password"' in form.text and '<label for="password">' in form.text
        assert '<label for="name">' in form.text
        response = client.post(
            "/admin/login",
            data={
                "csrf": csrf_of(form.text),
                "name": "admin",
                "password": ADMIN_TOKEN,
                "next": "/admin/rules",
            },
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/rules"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("responder_admin=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/admin" in cookie
        assert "Max-Age=604800" in cookie
        assert ADMIN_TOKEN not in cookie
        # Only a random id: no payload, no signature, nothing to read or replay after sign-out.
        value = client.cookies["responder_admin"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)
        with sqlite3.connect(app.service.settings.database) as db:
            stored = list(db.execute("SELECT key, user FROM sessions"))
        assert stored == [(hashlib.sha256(value.encode()).hexdigest(), "admin")]
        assert client.get("/admin").status_code == 200
        # Signed in, the form sends people on.
        assert client.get("/admin/login").headers["location"] == "/admin"


@pytest.mark.parametrize(
    ("wanted", "landing"),
    [
        ("/admin/dashboard", "/admin/dashboard"),
        ("/admin?f=human&q=ana", "/admin?f=human&q=ana"),
        ("https://evil.example/admin", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/administrator", "/admin"),
        ("/admin\\@evil.example", "/admin"),
        ("/elsewhere", "/admin"),
    ],
)
def test_sign_in_only_sends_people_inside_the_admin(
    app: RunningApp, wanted: str, landing: str
) -> None:
    with loopback.Client(base_url=app.url) as client:
        form = client.get("/admin/login")
        data = {"csrf": csrf_of(form.text), "name": "admin", "password": ADMIN_TOKEN}
        data["next"] = wanted
        assert client.post("/admin/login", data=data).headers["location"] == landing


def test_a_wrong_token_is_refused(app: RunningApp) -> None:
    with loopback.Client(base_url=app.url) as client:
        form = client.get("/admin/login")
        for token in ("wrong-token", "", "ñandú", ADMIN_TOKEN[:-1]):
            response = client.post(
                "/admin/login",
                data={"csrf": csrf_of(form.text), "name": "admin", "password": token},
            )
            assert response.status_code == 401
            assert "Nombre o contraseña incorrectos" in response.text
        # The admin token opens nothing under another name.
        response = client.post(
            "/admin/login",
            data={"csrf": csrf_of(form.text), "name": "ana", "password": ADMIN_TOKEN},
        )
        assert response.status_code == 401
        assert client.get("/admin").status_code == 303


def test_sign_in_attempts_are_limited(app: RunningApp) -> None:
    with loopback.Client(base_url=app.url) as client:
        csrf = csrf_of(client.get("/admin/login").text)
        for _ in range(5):
            guess = {"csrf": csrf, "name": "admin", "password": "guess"}
            assert client.post("/admin/login", data=guess).status_code == 401
        # Even the right token waits now: guessing must not pay.
        right = {"csrf": csrf, "name": "admin", "password": ADMIN_TOKEN}
        response = client.post("/admin/login", data=right)
        assert response.status_code == 429
        assert 0 < int(response.headers["retry-after"]) <= 60
        assert "Demasiados intentos" in response.text
        assert client.get("/admin").status_code == 303


def test_forms_need_the_csrf_token(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "hola")
    actions = {
        f"/admin/conversations/{PHONE}/reply": {"text": "hola"},
        f"/admin/conversations/{PHONE}/mode": {"mode": "human"},
        f"/admin/conversations/{PHONE}/fields": {"new_name": "nombre", "new_value": "x"},
        "/admin/logout": {},
        "/admin/login": {"name": "admin", "password": ADMIN_TOKEN},
    }
    for path, data in actions.items():
        for csrf in (None, "forged-token"):
            fields = data if csrf is None else {**data, "csrf": csrf}
            response = staff.post(path, data=fields)
            assert response.status_code == 403, path
            assert "Formulario rechazado" in response.text
    assert [m["direction"] for m in app.messages(PHONE)] == ["in", "out"]  # no agent reply
    contact = loopback.get(f"{app.url}/api/contacts/{PHONE}", headers=auth()).json()
    assert contact["fields"] == {} and contact["mode"] == "bot"
    assert staff.get("/admin").status_code == 200  # still signed in


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_forms_from_another_origin_are_refused(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "hola")
    csrf = csrf_of(staff.get(f"/admin/conversations/{PHONE}").text)
    path = f"/admin/conversations/{PHONE}/mode"
    for origin in ("http://evil.example", "null"):
        response = staff.post(
            path, data={"csrf": csrf, "mode": "human"}, headers={"Origin": origin}
        )
        assert response.status_code == 403
    ours = staff.post(path, data={"csrf": csrf, "mode": "human"}, headers={"Origin": app.url})
    assert ours.status_code == 303
    proxied = {"Origin": "https://shop.example", "X-Forwarded-Host": "shop.example"}
    behind_proxy = staff.post(path, data={"csrf": csrf, "mode": "bot"}, headers=proxied)
    assert behind_proxy.status_code == 303


def test_a_forged_cookie_is_nobody(app: RunningApp, staff: httpx.Client) -> None:
    value = staff.cookies["responder_admin"]
    assert loopback.get(f"{app.url}/admin", cookies={"responder_admin": value}).status_code == 200
    flipped = ("B" if value[0] == "A" else "A") + value[1:]
    guessed = secrets.token_urlsafe(32)
    for forged in (flipped, guessed, value + "x", value[:-1]):
        response = loopback.get(f"{app.url}/admin", cookies={"responder_admin": forged})
        assert response.status_code == 303, forged


def test_a_cookie_copied_before_sign_out_opens_nothing_after(
    app: RunningApp, staff: httpx.Client
) -> None:
    inbound(app, "hola")
    page = f"/admin/conversations/{PHONE}"
    copied = {"responder_admin": staff.cookies["responder_admin"]}
    csrf = csrf_of(staff.get(page).text)
    with loopback.Client(base_url=app.url, cookies=copied, timeout=10) as thief:
        assert thief.get("/admin").status_code == 200  # the copy works while signed in
        assert post(staff, "/admin/logout", page).status_code == 303  # Salir
        assert thief.get("/admin").status_code == 303
        assert thief.get(page).status_code == 303
        assert thief.get("/admin/partials/inbox").status_code == 401
        response = thief.post(f"{page}/reply", data={"csrf": csrf, "text": "copiado"})
        assert response.status_code == 403
        # Even with a fresh page's token the copy is nobody: it is sent to sign in.
        fresh = csrf_of(thief.get("/admin/login").text)
        response = thief.post(f"{page}/reply", data={"csrf": fresh, "text": "copiado"})
        assert response.status_code == 303
        assert response.headers["location"] == "/admin/login"
    assert all(m["text"] != "copiado" for m in app.messages(PHONE))
    assert [m["direction"] for m in app.messages(PHONE)] == ["in", "out"]


def test_sign_out_holds_on_every_instance(start_app: Callable[..., RunningApp]) -> None:
    first, second = start_app(), start_app()  # two processes on one database
    with closing(sign_in(first)) as staff:
        cookie = {"responder_admin": staff.cookies["responder_admin"]}
        elsewhere = loopback.get(f"{second.url}/admin", cookies=cookie)
        assert elsewhere.status_code == 200
        assert post(staff, "/admin/logout", "/admin").status_code == 303
    assert loopback.get(f"{second.url}/admin", cookies=cookie).status_code == 303


def test_sessions_expire_on_the_service_clock(app: RunningApp, staff: httpx.Client) -> None:
    clock = app.service.clock
    assert isinstance(clock, Clock)
    clock.advance(3 * 24 * 3600 - 60)
    assert staff.get("/admin").status_code == 200  # used within three days: still signed in
    clock.advance(3 * 24 * 3600)
    assert staff.get("/admin").status_code == 303  # three days unused: over
    with closing(sign_in(app)) as again:
        for _ in range(6):
            clock.advance(24 * 3600)
            assert again.get("/admin").status_code == 200
        clock.advance(24 * 3600)
        assert again.get("/admin").status_code == 303  # a week at most, however used


def test_a_new_admin_token_ends_every_session(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    def serve(token: str) -> FakeServer:
        app = create_app(make_settings(RESPONDER_ADMIN_TOKEN=token), clock=clock)
        return FakeServer(app, lifespan="on")

    database = make_settings().database
    with serve(ADMIN_TOKEN) as server, closing(sign_in_at(server.url)) as staff:
        cookie = {"responder_admin": staff.cookies["responder_admin"]}
        assert loopback.get(f"{server.url}/admin", cookies=cookie).status_code == 200
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (1,)
    new_token = "a-new-admin-token-9876543210"
    with serve(new_token) as server:
        with sqlite3.connect(database) as db:  # the start ended it
            assert db.execute("SELECT COUNT(*) FROM sessions").fetchone() == (0,)
        assert loopback.get(f"{server.url}/admin", cookies=cookie).status_code == 303
        with closing(sign_in_at(server.url, new_token)) as staff:
            assert staff.get("/admin").status_code == 200


def test_sign_out(staff: httpx.Client) -> None:
    response = post(staff, "/admin/logout", "/admin")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?ok=bye"
    assert "Sesión cerrada" in staff.get(response.headers["location"]).text
    assert staff.get("/admin").status_code == 303
    assert staff.get("/admin/partials/inbox").status_code == 401


def test_pages_carry_security_headers(staff: httpx.Client) -> None:
    for path in ("/admin", "/admin/login"):
        headers = staff.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"


def test_inbox_lists_conversations_with_their_state(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "horario", PHONE)
    app.service.clock.advance(60)  # type: ignore[attr-defined]
    inbound(app, "quiero un asesor", OTHER)
    app.service.clock.advance(60)  # type: ignore[attr-defined]
    inbound(app, "BAJA", "584161234567")
    page = staff.get("/admin")
    assert page.status_code == 200
    rows = re.findall(r'<a href="/admin/conversations/(\d+)">', page.text)
    assert rows == ["584161234567", OTHER, PHONE]  # newest first
    assert "+58 412-1234567" in page.text
    assert "Abrimos de lunes a viernes" in page.text  # the last message
    assert page.text.count("1 sin leer") == 3
    assert "dado de baja" in page.text and 'class="badge human"' in page.text

    def phones(query: str) -> list[str]:
        return re.findall(r'<a href="/admin/conversations/(\d+)">', staff.get(query).text)

    assert phones("/admin?f=human") == [OTHER]
    assert phones("/admin?f=opted_out") == ["584161234567"]
    assert phones("/admin?f=attention") == []
    typed = staff.get("/admin?q=0424+123-4567", follow_redirects=False)  # straight to it
    assert typed.headers["location"] == f"/admin/conversations/{OTHER}"
    assert phones("/admin?q=0424+123-4567&f=human") == [OTHER]
    assert phones("/admin?q=asesor") == [OTHER]
    assert phones("/admin?q=asesor&f=opted_out") == []
    assert phones("/admin?f=nonsense") == phones("/admin")
    assert "Ninguna conversación coincide con «zzz»" in staff.get("/admin?q=zzz").text


def test_the_inbox_fragment_shows_new_messages(app: RunningApp, staff: httpx.Client) -> None:
    empty = staff.get("/admin/partials/inbox")
    assert empty.status_code == 200
    assert 'id="inbox-live"' in empty.text and "<html" not in empty.text
    inbound(app, "hola")
    fresh = staff.get("/admin/partials/inbox?f=all")
    assert f"/admin/conversations/{PHONE}" in fresh.text
    assert 'id="inbox-live" data-live' in staff.get("/admin").text  # what the page swaps


def test_the_inbox_pages_through_many_conversations(app: RunningApp, staff: httpx.Client) -> None:
    for n in range(53):
        inbound(app, "hola", f"58412{1000000 + n:07d}")
    first = staff.get("/admin").text
    assert first.count('<a href="/admin/conversations/') == 50
    more = re.search(r'href="(/admin\?cursor=[^"]+)" id="inbox-more"', first)
    assert more
    # The next page goes on after the last row shown (a keyset cursor): the 3 left, once.
    second = staff.get(html.unescape(more.group(1))).text
    shown = re.findall(r'<a href="/admin/conversations/(\d+)"', first + second)
    assert len(shown) == len(set(shown)) == 53
    assert 'id="inbox-more"' not in second and 'id="inbox-first"' in second


def test_opening_a_conversation_marks_it_read(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "horario")
    assert "1 sin leer" in staff.get("/admin").text
    page = staff.get(f"/admin/conversations/{PHONE}")
    assert page.status_code == 200
    assert 'class="msg in status-received"' in page.text
    assert "regla horario" in page.text
    assert "1 SMS" in page.text
    assert "sin leer" not in staff.get("/admin").text
    inbound(app, "gracias")
    fragment = staff.get(f"/admin/partials/conversations/{PHONE}")
    assert 'id="thread"' in fragment.text and "gracias" in fragment.text
    assert "sin leer" not in staff.get("/admin").text  # the open page keeps it read


def test_reply_goes_out_as_the_agent_and_takes_over(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "hola")
    page = f"/admin/conversations/{PHONE}"
    response = post(staff, f"{page}/reply", page, text="Hola, soy Ana.\r\n¿En qué le ayudo?")
    assert response.status_code == 303
    assert response.headers["location"] == f"{page}?ok=sent"
    messages = app.wait_for(PHONE, lambda m: m[-1]["status"] == "delivered")
    assert messages[-1]["text"] == "Hola, soy Ana.\n¿En qué le ayudo?"  # é is GSM-7
    shown = staff.get(response.headers["location"]).text
    assert "Mensaje en cola" in shown
    # Signed by the person who wrote it (here the built-in owner), not "agente".
    assert '<span class="author">admin</span>' in shown
    assert "entregado" in shown and "1 intento" in shown
    assert "Devolver al bot" in shown
    conversation = loopback.get(f"{app.url}/api/contacts/{PHONE}", headers=auth()).json()
    assert conversation["mode"] == "human"


@pytest.mark.parametrize(
    ("text", "via", "message"),
    [
        ("   ", "", "Escriba un mensaje"),
        ("x" * 1601, "", "demasiado largo (1601 caracteres"),
        ("hola", "massms", "El proveedor massms no está configurado"),
    ],
)
def test_reply_mistakes_are_explained(
    app: RunningApp, staff: httpx.Client, text: str, via: str, message: str
) -> None:
    inbound(app, "hola")
    page = f"/admin/conversations/{PHONE}"
    response = post(staff, f"{page}/reply", page, text=text, via=via)
    assert response.status_code == 400
    assert message in response.text
    assert len(app.messages(PHONE)) == 2


def test_reply_to_an_opted_out_number_is_a_clear_error(
    app: RunningApp, staff: httpx.Client
) -> None:
    inbound(app, "BAJA")
    page = f"/admin/conversations/{PHONE}"
    assert "Este número se dio de baja" in staff.get(page).text
    response = post(staff, f"{page}/reply", page, text="¿Seguro?")
    assert response.status_code == 409
    assert OPTED_OUT_ERROR in response.text
    assert "¿Seguro?</textarea>" in response.text  # the draft is kept
    assert [m["direction"] for m in app.messages(PHONE)] == ["in", "out"]


def test_unknown_or_invalid_numbers_are_404(staff: httpx.Client) -> None:
    for path in ("/admin/conversations/584249999999", "/admin/conversations/12ab"):
        response = staff.get(path)
        assert response.status_code == 404
        assert "Volver a la bandeja" in response.text
    response = post(staff, "/admin/conversations/584249999999/reply", "/admin", text="hola")
    assert response.status_code == 404


def test_hand_back_to_the_bot(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "asesor")
    page = f"/admin/conversations/{PHONE}"
    assert "Devolver al bot" in staff.get(page).text
    response = post(staff, f"{page}/mode", page, mode="bot")
    assert response.status_code == 303
    shown = staff.get(response.headers["location"]).text
    assert "La conversación volvió al bot" in shown
    assert "Atender yo" in shown
    inbound(app, "horario")
    assert app.messages(PHONE)[-1]["text"].startswith("Abrimos")  # the bot answers again
    assert post(staff, f"{page}/mode", page, mode="robot").status_code == 400


def test_the_contact_panel_shows_labels(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "hola")
    page = f"/admin/conversations/{PHONE}"
    assert "Sin etiquetas" in staff.get(page).text
    with app.api() as api:
        body = {"labels": ["promo", "vip-2"]}
        assert api.patch(f"/api/contacts/{PHONE}", json=body).status_code == 200
    shown = staff.get(page).text
    assert "<li>promo</li><li>vip-2</li>" in shown and "Sin etiquetas" not in shown


def test_contact_fields_are_edited(app: RunningApp, staff: httpx.Client) -> None:
    inbound(app, "hola")
    page = f"/admin/conversations/{PHONE}"
    action = f"{page}/fields"

    def fields() -> dict[str, str]:
        body = loopback.get(f"{app.url}/api/contacts/{PHONE}", headers=auth()).json()
        result: dict[str, str] = body["fields"]
        return result

    assert post(staff, action, page, new_name="nombre", new_value="Ana").status_code == 303
    assert fields() == {"nombre": "Ana"}
    assert "Ana" in staff.get("/admin").text  # the inbox shows the name
    edit = {"field:nombre": "Ana María", "new_name": "ciudad", "new_value": "Caracas"}
    post(staff, action, page, **edit)
    assert fields() == {"nombre": "Ana María", "ciudad": "Caracas"}
    post(staff, action, page, **{"field:nombre": "Ana María", "field:ciudad": ""})
    assert fields() == {"nombre": "Ana María"}
    bad = post(staff, action, page, new_name="mi dato", new_value="x")
    assert bad.status_code == 400
    assert "El nombre del dato" in bad.text
    assert fields() == {"nombre": "Ana María"}


def test_rules_page_and_trying_a_message(app: RunningApp, staff: httpx.Client) -> None:
    page = staff.get("/admin/rules")
    assert page.status_code == 200
    for name in ("horario", "precio", "asesor", "otro"):
        assert f"<code>{name}</code>" in page.text
    version = app.service.rules.current.version.sha256
    assert version[:12] in page.text and version not in page.text.replace(f'"{version}"', "")
    assert "«horario», «a que hora» (palabra completa, admite 1 error de tipeo)" in page.text
    assert "plantilla precio.txt" in page.text
    assert "pasa a una persona" in page.text
    tried = staff.get("/admin/rules", params={"text": "precio cafe", "phone": "0412 123 4567"})
    assert "Regla:</strong> <code>precio</code> — pattern" in flat(tried)
    assert "El precio de cafe es 5 USD." in tried.text and "(1 SMS)" in tried.text
    bad_phone = staff.get("/admin/rules", params={"text": "precio cafe", "phone": "12ab"})
    assert bad_phone.status_code == 200
    assert "Ese número de teléfono no es válido." in bad_phone.text
    assert "El precio de cafe" not in bad_phone.text
    assert loopback.get(f"{app.url}/api/conversations", headers=auth()).json() == {
        "conversations": [],
        "next": None,
    }  # trying stores nothing


def test_rules_page_shows_load_problems(
    app: RunningApp, staff: httpx.Client, workdir: Path
) -> None:
    rules = workdir / "rules.yaml"
    rules.write_text(
        rules.read_text() + "  - name: roto\n    pattern: '(sin cerrar'\n    reply: x\n"
    )
    assert app.service.rules.reload() is False
    page = staff.get("/admin/rules").text
    assert "Problemas al cargar" in page
    assert re.search(r"rules\.yaml</code>, línea \d+: .*\(regla roto\)", page)
    assert "<code>roto</code>" not in page  # the last good rules stay


def test_dashboard(start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]) -> None:
    fake, url = massiva
    fake.credits = 907
    app = start_app(**massiva_env(url, fake))
    inbound(app, "horario")
    inbound(app, "horario", OTHER)
    inbound(app, "precio cafe", "584161234567")
    app.wait_for("584161234567", lambda m: m[-1]["status"] == "sent")
    app.service.clock.advance(61)  # type: ignore[attr-defined]  # the start-up check is old now
    with closing(sign_in(app)) as staff:
        page = staff.get("/admin/dashboard")
        assert page.status_code == 200
        text = page.text
        assert text.count('<svg class="chart"') == 3  # per day, delivery, top rules
        assert 'aria-label="Mensajes por día: 3 mensajes recibidos y 3 enviados en 14 días"' in text
        assert "<title>23/11: 3 recibidos</title>" in text
        assert "Reglas más usadas: horario: 2, precio: 1" in text
        assert "<strong>massiva</strong>: 904 créditos" in flat(page)
        fake.credits = 1
        assert "904 créditos" in staff.get("/admin/dashboard").text  # asked once a minute


def test_dashboard_shows_provider_errors(
    start_app: Callable[..., RunningApp], massiva: tuple[FakeMassiva, str]
) -> None:
    fake, url = massiva
    env = massiva_env(url, fake) | {"MASSIVA_PASSWORD": "wrong"}
    app = start_app(**env)
    with closing(sign_in(app)) as staff:
        page = staff.get("/admin/dashboard")
    assert page.status_code == 200
    assert "no se pudo consultar" in page.text
    assert "Todavía no hay mensajes enviados" in page.text


def test_sms_alphabet_is_the_servers(staff: httpx.Client) -> None:
    body = staff.get("/admin/sms.json").json()
    assert set(body["basic"]) == sms_text.GSM7_BASIC
    assert set(body["extended"]) == sms_text.GSM7_EXTENDED
    assert body["smart"]["á"] == "a" and body["smart"]["\u200b"] == ""
    assert body["limit"] == 160


def test_static_files(app: RunningApp) -> None:
    css = loopback.get(f"{app.url}/admin/static/admin.css")
    js = loopback.get(f"{app.url}/admin/static/admin.js")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert loopback.get(f"{app.url}/admin/static/../app.py").status_code == 404
