"""Pages that stay fast on a big database, over real HTTP (both backends): /healthz never waits
behind a long report, the API pages by cursor, the dashboard's periods."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from responder.app import create_app
from responder.config import Settings
from responder.service import Service
from responder.store.postgres import POOL_SIZE, PostgresStore
from responder.store.sqlite import SQLiteStore
from tests import loopback
from tests.conftest import RunningApp
from tests.fakes.server import FakeServer
from tests.test_admin import sign_in

PHONE = "584121234567"
# A read that keeps SQLite busy for seconds (a report over a big table, as it were).
LONG_SQLITE_READ = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 40000000) "
    "SELECT COUNT(*) FROM c"
)
HELD = 3.0  # seconds the PostgreSQL reports hold every pooled connection


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def served(
    make_settings: Callable[..., Settings], clock: Any, backend: str
) -> Iterator[tuple[RunningApp, asyncio.AbstractEventLoop]]:
    """The app on uvicorn, and the event loop it runs on (to start a report inside it)."""
    loops: list[asyncio.AbstractEventLoop] = []
    app = create_app(
        make_settings(backend=backend),
        clock=clock,
        on_ready=lambda _: loops.append(asyncio.get_running_loop()),
    )
    with FakeServer(app, lifespan="on") as server:
        yield RunningApp(server.url, app.state.service), loops[0]


async def long_report(service: Service) -> None:
    """Holds what reports read through: SQLite's reader connection; every pooled PostgreSQL
    connection."""
    store = service.store
    if isinstance(store, SQLiteStore):
        await store.reader.execute_fetchall(LONG_SQLITE_READ)
        return
    assert isinstance(store, PostgresStore)

    async def hold() -> None:
        async with store.pool.acquire() as conn:
            await conn.execute("SELECT pg_sleep($1)", HELD)

    await asyncio.gather(*(hold() for _ in range(POOL_SIZE[1])))


def test_healthz_answers_at_once_while_a_long_report_runs(
    served: tuple[RunningApp, asyncio.AbstractEventLoop],
) -> None:
    app, loop = served
    assert loopback.get(f"{app.url}/healthz").status_code == 200  # its connection is open
    report: Future[None] = asyncio.run_coroutine_threadsafe(long_report(app.service), loop)
    time.sleep(0.3)  # the report has the connections now
    assert not report.done()
    started = time.monotonic()
    health = loopback.get(f"{app.url}/healthz", timeout=30)
    took = time.monotonic() - started
    assert not report.done(), "the report ended first: nothing was proved"
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    assert took < 0.5, f"/healthz took {took:.2f} s behind a report"
    report.result(timeout=60)


def test_the_api_pages_by_cursor(start_app: Callable[..., RunningApp], backend: str) -> None:
    app = start_app(backend=backend)
    phones = [f"58412{n:07d}" for n in range(7)]
    for phone in phones:
        response = loopback.get(app.webhook(), params={"msg": "hola", "phone": phone})
        assert response.status_code == 200
        app.service.clock.advance(1)  # type: ignore[attr-defined]
    with app.api() as api:
        seen: list[str] = []
        page = api.get("/api/conversations", params={"limit": 3}).json()
        while True:
            seen.extend(c["phone"] for c in page["conversations"])
            if page["next"] is None:
                break
            page = api.get("/api/conversations", params={"limit": 3, "cursor": page["next"]}).json()
        assert seen == phones[::-1]
        old = api.get("/api/conversations", params={"limit": 3, "offset": 3}).json()
        assert [c["phone"] for c in old["conversations"]] == seen[3:6]  # offset still works
        for bad in ("nonsense", "!!", "MjAyNg"):
            refused = api.get("/api/conversations", params={"cursor": bad})
            assert refused.status_code == 400 and "cursor" in refused.json()["error"]

        for n in range(5):
            loopback.get(app.webhook(), params={"msg": f"m{n}", "phone": PHONE})
        everything = [m["id"] for m in app.messages(PHONE)]
        newest = api.get(f"/api/conversations/{PHONE}/messages", params={"limit": 4}).json()
        assert [m["id"] for m in newest["messages"]] == everything[-4:]
        older = api.get(
            f"/api/conversations/{PHONE}/messages", params={"limit": 4, "before": newest["next"]}
        ).json()
        ids = [m["id"] for m in older["messages"]]
        assert ids == everything[-8:-4] and older["next"] == ids[0]
        for bad_params in ({"before": "x"}, {"limit": "many"}):
            refused = api.get(f"/api/conversations/{PHONE}/messages", params=bad_params)
            assert refused.status_code == 400

        events = api.get("/api/audit", params={"limit": 1})
        assert events.status_code == 200 and events.json()["next"] is None  # none yet


def test_the_dashboard_shows_any_period(start_app: Callable[..., RunningApp], backend: str) -> None:
    app = start_app(backend=backend)
    clock = app.service.clock
    for n in range(3):
        loopback.get(app.webhook(), params={"msg": f"horario {n}", "phone": PHONE})
        clock.advance(86400)  # type: ignore[attr-defined]
    staff = sign_in(app)

    def received(path: str) -> int:
        page = staff.get(path)
        assert page.status_code == 200
        found = re.search(r'<span class="big">(\d+)</span> mensajes recibidos', page.text)
        assert found, page.text
        return int(found.group(1))

    assert received("/admin/dashboard?period=today") == 0  # three days since the last one
    assert received("/admin/dashboard?period=7") == 3
    assert received("/admin/dashboard") == 3  # 14 days
    today = clock().date()
    first = today.fromordinal(today.toordinal() - 3)
    custom = f"/admin/dashboard?period=custom&from={first}&to={first}"
    assert received(custom) == 1
    assert f"Del {first:%d/%m/%Y} al {first:%d/%m/%Y}" in staff.get(custom).text
    for bad, error in [
        ("?period=century", "Ese periodo no existe"),
        (f"?period=custom&from={today}&to={first}", "anterior a la fecha"),
        ("?period=custom&from=ayer&to=hoy", "Indique las dos fechas"),
        ("?period=custom&from=2020-01-01&to=2026-01-01", "como mucho 366 días"),
    ]:
        page = staff.get("/admin/dashboard" + bad)
        assert page.status_code == 200 and error in page.text
        assert "Últimos 14 días" in page.text
    staff.close()


def test_the_admin_audit_page_pages_back(
    start_app: Callable[..., RunningApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    from responder.web.admin import people

    monkeypatch.setattr(people, "AUDIT_SHOWN", 2)
    app = start_app()
    staff = sign_in(app)  # signing in is on the record
    loopback.get(app.webhook(), params={"msg": "hola", "phone": PHONE})
    with app.api() as api:
        for mode in ("human", "bot", "human"):
            assert api.post(f"/api/conversations/{PHONE}/mode", json={"mode": mode}).is_success
    first = staff.get("/admin/audit").text
    older = re.search(r'href="(/admin/audit\?before=\d+)" id="audit-older"', first)
    assert older
    second = staff.get(older.group(1)).text
    assert 'id="audit-newest"' in second
    rows = re.findall(r'<tr class="audit-', first + second)
    assert len(rows) == 4
    staff.close()
