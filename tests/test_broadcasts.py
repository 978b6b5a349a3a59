"""Broadcasts (DESIGN §12) over real HTTP on both backends, sent to a fake Massiva: segments,
templates, replies first, quiet hours, send rate, opt-out midway, pause/resume/cancel, a gateway
that goes down, the inbox left alone, and the counts always adding up."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from responder.broadcasts import quiet_wait
from responder.rules.hours import Shift
from tests import loopback
from tests.conftest import ADMIN_TOKEN, Clock, RunningApp, massiva_env, massms_env
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS
from tests.test_team import add_person, bearer, sign_in_as, token_of

RULES = """
settings:
  timezone: America/Caracas
  country: VE
{extra}
rules:
  - name: horario
    keywords: [horario]
    reply: "Abrimos de lunes a viernes."
"""
ANA, BETO, CARLA, DANI, EVA = (f"58412100000{i}" for i in range(1, 6))
COUNT_KEYS = {"queued", "sent", "delivered", "failed", "skipped", "cancelled"}


def write_rules(workdir: Path, extra: str = "") -> None:
    text = RULES.format(extra=textwrap.indent(textwrap.dedent(extra).strip(), "  "))
    (workdir / "rules.yaml").write_text(text, encoding="utf-8")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def start(
    start_app: Callable[..., RunningApp],
    workdir: Path,
    backend: str,
    massiva: tuple[FakeMassiva, str],
    extra: str = "",
) -> RunningApp:
    write_rules(workdir, extra)
    fake, url = massiva
    return start_app(backend=backend, **massiva_env(url, fake))


Serve = Callable[..., tuple[RunningApp, FakeMassiva]]


@pytest.fixture
def serve(
    start_app: Callable[..., RunningApp],
    workdir: Path,
    backend: str,
    massiva: tuple[FakeMassiva, str],
) -> Serve:
    """`serve(extra)` starts the app on each backend with RULES (plus `extra` settings),
    sending through the fake Massiva; answers the app and the fake."""

    def serve_(extra: str = "") -> tuple[RunningApp, FakeMassiva]:
        return start(start_app, workdir, backend, massiva, extra), massiva[0]

    return serve_


def inbound(app: RunningApp, phone: str, text: str = "hola") -> None:
    response = loopback.get(app.webhook(), params={"msg": text, "phone": phone})
    assert response.status_code == 200


def contact(
    app: RunningApp,
    phone: str,
    labels: Sequence[str] = (),
    **fields: str,
) -> None:
    inbound(app, phone)
    with app.api() as api:
        body: dict[str, Any] = {"labels": list(labels)}
        if fields:
            body["fields"] = fields
        response = api.patch(f"/api/contacts/{phone}", json=body)
        assert response.status_code == 200, response.text


def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened in {timeout} s")
        time.sleep(0.02)


def broadcast(api: httpx.Client, broadcast_id: int) -> dict[str, Any]:
    response = api.get(f"/api/broadcasts/{broadcast_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["broadcast"]
    assert set(found["counts"]) == COUNT_KEYS
    assert sum(found["counts"].values()) == found["recipients"]  # always add up
    return found


def create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post("/api/broadcasts", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()["broadcast"]
    return created


def sent_to(fake: FakeMassiva, text: str = "") -> list[str]:
    return [s.phone for s in fake.sent if text in s.text]


def vip_contacts(app: RunningApp, prefix: str, count: int) -> list[str]:
    """`count` contacts labelled vip, numbered after `prefix`."""
    width = 12 - len(prefix)
    phones = [f"{prefix}{i:0{width}d}" for i in range(count)]
    for phone in phones:
        contact(app, phone, ["vip"])
    return phones


def tick(clock: Clock, seconds: int, pause: float) -> None:
    """Moves the clock one second at a time, `pause` real seconds apart, so the sender can
    act (or show it does not) after each step."""
    for _ in range(seconds):
        clock.advance(1)
        time.sleep(pause)


def advance_until_done(
    api: httpx.Client, clock: Clock, broadcast_id: int, tries: int, pause: float
) -> dict[str, Any]:
    """Moves the clock 5 s at a time (retries become due, the budget fills) until the
    broadcast is done or `tries` run out; answers it as it then is."""
    for _ in range(tries):
        if broadcast(api, broadcast_id)["status"] == "done":
            break
        clock.advance(5)
        time.sleep(pause)
    return broadcast(api, broadcast_id)


def test_segments_templates_and_the_inbox_left_alone(serve: Serve, clock: Clock) -> None:
    app, fake = serve()
    contact(app, EVA, ["vip"], nombre="Eva", ciudad="Caracas")  # active 10 days ago only
    clock.advance(10 * 86400)
    contact(app, ANA, ["vip", "promo"], nombre="Ana", ciudad="Caracas")
    contact(app, BETO, ["vip"], nombre="Beto", ciudad="Valencia")
    contact(app, CARLA, ["vip"], nombre="Carla")
    inbound(app, CARLA, "BAJA")  # opted out: never a recipient
    contact(app, DANI, [], nombre="Dani")
    wait_until(lambda: sent_to(fake, "No recib"))  # Carla's opt-out confirmation went
    with app.api() as api:
        before = {c["phone"]: c for c in api.get("/api/conversations").json()["conversations"]}

        def preview(segment: dict[str, Any]) -> dict[str, Any]:
            response = api.post(
                "/api/broadcasts/preview",
                json={"text": "Hola {{ contact.nombre }}, 20% hoy", "segment": segment},
            )
            assert response.status_code == 200, response.text
            found: dict[str, Any] = response.json()
            return found

        assert preview({"labels": ["vip"]})["recipients"] == 3
        assert preview({"labels": ["vip", "promo"]})["recipients"] == 1
        assert preview({"labels": ["vip"], "fields": {"ciudad": "Caracas"}})["recipients"] == 2
        assert preview({"labels": ["vip"], "active_within_days": 5})["recipients"] == 2
        assert preview({})["recipients"] == 4  # everyone but Carla
        shown = preview({"labels": ["vip"], "active_within_days": 5})
        assert shown["samples"] == [
            {"phone": ANA, "text": "Hola Ana, 20% hoy"},
            {"phone": BETO, "text": "Hola Beto, 20% hoy"},
        ]
        assert (shown["parts"], shown["estimated_segments"]) == (1, 2)
        assert len(fake.sent) == 1  # a preview sends nothing

        created = create(
            api,
            text="Hola {{ contact.nombre }}, 20% hoy",
            name="Promo",
            segment={"labels": ["vip"]},
        )
        assert (created["status"], created["recipients"], created["name"]) == (
            "running",
            3,
            "Promo",
        )
        done = wait_until(lambda: broadcast(api, created["id"])["status"] == "done")
        assert done
        final = broadcast(api, created["id"])
        assert final["counts"]["sent"] == 3
        assert sorted((s.phone, s.text) for s in fake.sent if "20%" in s.text) == [
            (ANA, "Hola Ana, 20% hoy"),
            (BETO, "Hola Beto, 20% hoy"),
            (EVA, "Hola Eva, 20% hoy"),
        ]
        recipients = api.get(f"/api/broadcasts/{created['id']}/recipients").json()["recipients"]
        assert [(r["phone"], r["status"]) for r in recipients] == [
            (ANA, "sent"),
            (BETO, "sent"),
            (EVA, "sent"),
        ]
        # The inbox's preview, unread counts and order are the broadcast's business: untouched.
        after = {c["phone"]: c for c in api.get("/api/conversations").json()["conversations"]}
        for phone in (ANA, BETO, EVA):
            for key in ("last_text", "last_message_at", "unread"):
                assert after[phone].get(key) == before[phone].get(key), (phone, key)
        # The thread shows it, named; a reply to it names it too.
        thread = app.messages(ANA)
        out = [m for m in thread if m["direction"] == "out"]
        assert out[-1]["broadcast"] == {"id": created["id"], "name": "Promo"}
        inbound(app, ANA, "me interesa")
        reply = app.messages(ANA)[-1]
        assert reply["in_reply_to_broadcast"] == {"id": created["id"], "name": "Promo"}
        assert "in_reply_to_broadcast" not in thread[0]
        browser = sign_in_as(app, "admin", ADMIN_TOKEN)
        page = browser.get(f"/admin/conversations/{ANA}").text
        browser.close()
        assert "Difusión: Promo" in page
        assert "Respuesta a la difusión: Promo" in page
        events = api.get("/api/audit").json()["events"]
        assert any(e["action"] == "broadcast_created" for e in events)


def test_replies_go_ahead_and_the_send_rate_holds(serve: Serve, clock: Clock) -> None:
    app, fake = serve("send_rate: {massiva: 2}")
    phones = vip_contacts(app, "5841220000", 8)
    with app.api() as api:
        created = create(api, text="Oferta de hoy", segment={"labels": ["vip"]})
        # Two a second, and the clock stands still: two go, then nothing until it moves.
        wait_until(lambda: len(sent_to(fake, "Oferta")) == 2)
        time.sleep(1.0)
        assert len(sent_to(fake, "Oferta")) == 2
        inbound(app, phones[-1], "horario")  # a customer asks meanwhile: its reply goes first
        time.sleep(0.3)
        clock.advance(1)
        wait_until(lambda: sent_to(fake, "Abrimos"))
        wait_until(lambda: len(sent_to(fake, "Oferta")) >= 3)
        texts = [s.text for s in fake.sent]
        assert texts.index("Abrimos de lunes a viernes.") < texts.index("Oferta de hoy", 2)
        for _ in range(10):
            clock.advance(1)
            time.sleep(0.6)
            # Never more than the rate allows since the start (a second's worth of burst).
            assert len(sent_to(fake, "Oferta")) <= 2 + 2 * (_ + 2)
        wait_until(lambda: broadcast(api, created["id"])["status"] == "done")
        assert Counter(sent_to(fake, "Oferta")) == Counter(phones)


def test_quiet_hours_hold_then_release_in_one_request(serve: Serve, clock: Clock) -> None:
    # Monday 10:00 in Caracas; quiet hours from 20:00 to 11:00: broadcasts wait until 11:00.
    app, fake = serve('hours: {mon-fri: "08:00-17:00", quiet: "20:00-11:00"}')
    contact(app, ANA, ["vip"])
    contact(app, BETO, ["vip"])
    with app.api() as api:
        created = create(api, text="Oferta", segment={"labels": ["vip"]})
        time.sleep(1.5)
        held = broadcast(api, created["id"])
        assert held["status"] == "running"
        assert held["waiting"] == "quiet hours: sends from 2026-11-23 11:00"
        assert held["waiting_until"] == "2026-11-23T15:00:00.000000Z"  # 11:00 in Caracas
        assert held["counts"]["queued"] == 2
        assert sent_to(fake, "Oferta") == []  # held, not dropped
        clock.advance(3600)
        wait_until(lambda: broadcast(api, created["id"])["status"] == "done")
        assert sorted(sent_to(fake, "Oferta")) == [ANA, BETO]
        assert broadcast(api, created["id"])["waiting"] is None
    # One text for many numbers: Massiva gets it once, with every number, in one request.
    sends = [r for r in fake.requests if r.path.endswith("/SendSms") and "Oferta" in r.raw]
    assert [(r.params["texto"], r.params["telefonos"]) for r in sends] == [
        ("Oferta", f"{ANA};{BETO}")
    ]


def test_opt_out_midway_is_skipped(serve: Serve, clock: Clock) -> None:
    app, fake = serve("send_rate: {massiva: 2}")
    phones = vip_contacts(app, "5841230000", 6)
    contact(app, "2020", ["vip"])  # a short code wrote: no number to send a broadcast to
    with app.api() as api:
        created = create(api, text="Feliz lunes", segment={"labels": ["vip"]})
        wait_until(lambda: len(sent_to(fake, "Feliz")) == 2)
        inbound(app, phones[-1], "BAJA")  # not yet sent: it must never be
        tick(clock, 8, 0.5)
        wait_until(lambda: broadcast(api, created["id"])["status"] == "done")
        final = broadcast(api, created["id"])
        assert (final["counts"]["sent"], final["counts"]["skipped"]) == (5, 2)
        assert phones[-1] not in sent_to(fake, "Feliz")
        skipped = api.get(
            f"/api/broadcasts/{created['id']}/recipients", params={"status": "skipped"}
        ).json()["recipients"]
        assert [(r["phone"], r["error"]) for r in skipped] == [
            ("2020", "skipped: not a valid mobile number"),
            (phones[-1], "skipped: opted out"),
        ]


def test_pause_resume_cancel_and_bad_transitions(serve: Serve, clock: Clock) -> None:
    app, fake = serve("send_rate: {massiva: 2}")
    vip_contacts(app, "5841240000", 10)
    with app.api() as api:
        created = create(api, text="Aviso", segment={"labels": ["vip"]})
        bid = created["id"]
        wait_until(lambda: len(sent_to(fake, "Aviso")) == 2)
        paused = api.post(f"/api/broadcasts/{bid}/pause")
        assert (paused.status_code, paused.json()["broadcast"]["status"]) == (200, "paused")
        assert api.post(f"/api/broadcasts/{bid}/pause").status_code == 409
        tick(clock, 4, 0.4)
        assert len(sent_to(fake, "Aviso")) == 2  # nothing while paused
        assert api.post(f"/api/broadcasts/{bid}/resume").status_code == 200
        clock.advance(1)
        wait_until(lambda: len(sent_to(fake, "Aviso")) >= 4)
        cancelled = api.post(f"/api/broadcasts/{bid}/cancel")
        assert cancelled.status_code == 200
        tick(clock, 4, 0.4)
        final = broadcast(api, bid)
        assert final["status"] == "cancelled"
        went = len(sent_to(fake, "Aviso"))
        assert final["counts"]["sent"] == went
        assert final["counts"]["cancelled"] == 10 - went
        assert final["counts"]["queued"] == 0
        assert api.post(f"/api/broadcasts/{bid}/resume").status_code == 409
        assert api.post(f"/api/broadcasts/{bid}/cancel").status_code == 409
        assert "cannot be resumed" in api.post(f"/api/broadcasts/{bid}/resume").json()["error"]
        actions = [e["action"] for e in api.get("/api/audit").json()["events"]]
        for action in ("broadcast_paused", "broadcast_resumed", "broadcast_cancelled"):
            assert action in actions


def test_a_gateway_down_halfway_sends_each_number_once(serve: Serve, clock: Clock) -> None:
    app, fake = serve("send_rate: {massiva: 4}")
    phones = vip_contacts(app, "5841250000", 12)
    with app.api() as api:
        fake.fail_next("status:503", times=3)  # the gateway is down for the first tries
        created = create(api, text="Promo", segment={"labels": ["vip"]})
        wait_until(lambda: len([r for r in fake.requests if "Promo" in r.raw]) >= 1)
        final = advance_until_done(api, clock, created["id"], tries=40, pause=0.3)
        assert final["status"] == "done"
        assert final["counts"]["sent"] == 12
    assert Counter(sent_to(fake, "Promo")) == Counter(phones)  # each number exactly once


def test_a_gateway_that_dies_after_some_sends_resumes_without_repeats(
    serve: Serve, clock: Clock
) -> None:
    app, fake = serve("send_rate: {massiva: 10}")
    phones = vip_contacts(app, "5841251", 40)
    with app.api() as api:
        created = create(api, text="Remate", segment={"labels": ["vip"]})
        wait_until(lambda: len(sent_to(fake, "Remate")) >= 8)
        fake.fail_next("status:503", times=100_000)  # down, halfway through
        before = len(sent_to(fake, "Remate"))
        tries = len(fake.requests)
        for _ in range(50):  # its tries fail while it is down; nothing more is sent
            if len(fake.requests) >= tries + 3:
                break
            clock.advance(5)
            time.sleep(0.2)
        assert len(fake.requests) >= tries + 3
        assert len(sent_to(fake, "Remate")) == before
        down = broadcast(api, created["id"])
        assert down["status"] == "running" and down["counts"]["queued"] > 0
        fake.recover()
        final = advance_until_done(api, clock, created["id"], tries=80, pause=0.25)
        assert final["status"] == "done"
        assert final["counts"]["sent"] == len(phones)
    assert Counter(sent_to(fake, "Remate")) == Counter(phones)  # each number exactly once


def test_api_errors_and_roles(
    start_app: Callable[..., RunningApp], workdir: Path, massiva: tuple[FakeMassiva, str]
) -> None:
    app = start(start_app, workdir, "sqlite", massiva)
    contact(app, ANA, ["vip"], nombre="Ana")
    with app.api() as api:
        cases = [
            ({"text": "Hola {{ contact.nombre ", "segment": {}}, "'text' line 1"),
            ({"text": "", "segment": {}}, "'text' must be a non-empty string"),
            ({"segment": {}}, "'text' must be a non-empty string"),
            ({"text": "x", "via": "twilio"}, "via must be a configured provider"),
            ({"text": "x", "segment": {"labels": "vip"}}, "'segment.labels'"),
            ({"text": "x", "segment": {"fields": ["a"]}}, "'segment.fields'"),
            ({"text": "x", "segment": {"active_within_days": 0}}, "active_within_days"),
            ({"text": "x", "segment": {"edad": 3}}, "unknown keys"),
            ({"text": "x", "send_at": "mañana"}, "'send_at'"),
            ({"text": "x", "segment": {"labels": ["nadie"]}}, "no recipients"),
            ({"text": "x", "otra": 1}, "unknown keys"),
            ({"text": "{{ ''.__class__ }}"}, "'text' comes out empty for 584121000001"),
            ({"text": "{{ 1 / 0 }}"}, "'text' fails for 584121000001: ZeroDivisionError"),
        ]
        for body, error in cases:
            response = api.post("/api/broadcasts", json=body)
            assert response.status_code == 400, (body, response.text)
            assert error in response.json()["error"], (body, response.json())
        assert api.get("/api/broadcasts").json() == {"broadcasts": [], "next": None}
        assert api.get("/api/broadcasts/99").status_code == 404
        assert api.get("/api/broadcasts/abc").status_code == 404
        assert api.post("/api/broadcasts/99/pause").status_code == 404
        created = create(api, text="Hola", segment={"labels": ["vip"]}, send_at="2026-11-30T09:00")
        assert (created["status"], created["send_at"]) == (
            "scheduled",
            "2026-11-30T13:00:00.000000Z",
        )
        listed = api.get("/api/broadcasts").json()
        assert [b["id"] for b in listed["broadcasts"]] == [created["id"]]
        bad = api.get(f"/api/broadcasts/{created['id']}/recipients", params={"status": "x"})
        assert bad.status_code == 400
        # Forgetting a person keeps the broadcast's count, not the number.
        assert api.delete(f"/api/contacts/{ANA}").status_code in (200, 204)
        kept = broadcast(api, created["id"])
        assert (kept["recipients"], kept["counts"]["cancelled"]) == (1, 1)
        [left] = api.get(f"/api/broadcasts/{created['id']}/recipients").json()["recipients"]
        assert left["phone"].startswith("forgotten-")
        assert left["error"] == "the contact was forgotten"
    add_person(app, "ana", "agent", "clave-de-ana-1")
    with bearer(app, token_of(app, "ana")) as agent:
        assert agent.get(f"/api/broadcasts/{created['id']}").status_code == 200
        assert agent.get("/api/broadcasts").status_code == 200
        assert agent.post("/api/broadcasts", json={"text": "x"}).status_code == 403
        assert agent.post("/api/broadcasts/preview", json={"text": "x"}).status_code == 403
        assert agent.post(f"/api/broadcasts/{created['id']}/cancel").status_code == 403


def test_a_scheduled_broadcast_starts_at_its_time(serve: Serve, clock: Clock) -> None:
    app, fake = serve()
    contact(app, ANA, ["vip"])
    with app.api() as api:
        created = create(
            api, text="Mañana abrimos", segment={"labels": ["vip"]}, send_at="2026-11-23T12:00"
        )
        time.sleep(1.0)
        assert broadcast(api, created["id"])["status"] == "scheduled"
        assert sent_to(fake, "abrimos") == []
        # Paused and resumed before its time, it waits for its time again.
        assert api.post(f"/api/broadcasts/{created['id']}/pause").status_code == 200
        resumed = api.post(f"/api/broadcasts/{created['id']}/resume").json()["broadcast"]
        assert (resumed["status"], resumed["started_at"]) == ("scheduled", None)
        clock.advance(2 * 3600)
        wait_until(lambda: broadcast(api, created["id"])["status"] == "done")
        assert sent_to(fake, "abrimos") == [ANA]


def test_a_scheduled_broadcast_via_massms_goes_to_its_scheduler(
    start_app: Callable[..., RunningApp],
    workdir: Path,
    backend: str,
    massms: tuple[FakeMasSMS, str],
    clock: Clock,
) -> None:
    write_rules(workdir)
    fake, url = massms
    app = start_app(backend=backend, **massms_env(url, fake))
    contact(app, ANA, ["vip"])
    contact(app, BETO, ["vip"])
    with app.api() as api:
        # 10:30 Caracas, half an hour ahead: handed to MasSMS at once, one request, smstype=p.
        created = create(
            api,
            text="Abrimos a las 10:30",
            segment={"labels": ["vip"]},
            send_at="2026-11-23T10:30",
        )
        wait_until(lambda: len(fake.sent) == 2)
        assert {(s.phone, s.smstype, s.date_delivery, s.time_delivery) for s in fake.sent} == {
            (ANA, "p", "2026-11-23", "10:30"),
            (BETO, "p", "2026-11-23", "10:30"),
        }
        handed = wait_until(lambda: broadcast(api, created["id"])["counts"]["sent"] == 2)
        assert handed
        assert broadcast(api, created["id"])["status"] == "scheduled"
        # Too late to call them back: a cancel now counts them as sent, truthfully.
        cancelled = api.post(f"/api/broadcasts/{created['id']}/cancel").json()["broadcast"]
        assert (cancelled["status"], cancelled["counts"]["sent"]) == ("cancelled", 2)


@pytest.mark.parametrize(
    ("window", "local", "opens"),
    [
        (None, "03:00", None),
        ("21:00-08:00", "10:00", None),
        ("21:00-08:00", "20:59", None),
        ("21:00-08:00", "08:00", None),
        ("21:00-08:00", "07:59", "2026-11-23T08:00"),
        ("21:00-08:00", "21:00", "2026-11-24T08:00"),
        ("21:00-08:00", "23:30", "2026-11-24T08:00"),
        ("13:00-15:00", "14:00", "2026-11-23T15:00"),
        ("13:00-15:00", "15:00", None),
        ("00:00-07:00", "03:00", "2026-11-23T07:00"),
    ],
)
def test_the_quiet_window(window: str | None, local: str, opens: str | None) -> None:
    zone = ZoneInfo("America/Caracas")
    shift = None
    if window is not None:
        start, end = (int(h) * 60 + int(m) for h, m in (p.split(":") for p in window.split("-")))
        shift = Shift(start % 1440, end)
    now = datetime.fromisoformat(f"2026-11-23T{local}").replace(tzinfo=zone)
    found = quiet_wait(shift, now.astimezone(UTC), zone)
    expected = datetime.fromisoformat(opens).replace(tzinfo=zone) if opens else None
    assert found == expected


def test_a_failed_broadcast_message_does_not_flag_the_conversation(
    serve: Serve,
) -> None:
    app, fake = serve()
    contact(app, ANA, ["vip"])
    fake.company_credits_exhausted = True  # every send fails: no credits
    with app.api() as api:
        created = create(api, text="Oferta", segment={"labels": ["vip"]})
        wait_until(lambda: broadcast(api, created["id"])["status"] == "done")
        final = broadcast(api, created["id"])
        assert final["counts"]["failed"] == 1
        [failed] = api.get(f"/api/broadcasts/{created['id']}/recipients").json()["recipients"]
        assert failed["status"] == "failed"
        assert failed["error"].startswith("massiva: no credits")
    assert app.service.loop is not None
    flagged = asyncio.run_coroutine_threadsafe(
        app.service.failed_phones([ANA]), app.service.loop
    ).result(timeout=10)
    assert flagged == set()  # the broadcast's page shows it; the inbox is not flooded
