"""Shared fixtures: settings in a temporary folder, the app served over real HTTP, fakes."""

from __future__ import annotations

import random
import shutil
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from responder.app import create_app
from responder.config import Settings, load_settings
from responder.providers.base import Provider
from responder.service import Service
from responder.store import Store
from responder.workers.outbox import OutboxWorker
from responder.workers.poller import StatusPoller
from tests import loopback
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS
from tests.fakes.server import FakeServer, SwappableApp
from tests.postgres import postgres_database, postgres_url

__all__ = ["postgres_database", "postgres_url"]  # fixtures of tests/postgres.py, for every test

ROOT = Path(__file__).resolve().parent.parent
WEBHOOK_TOKEN = "test-webhook-token-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
# Monday 2026-11-23 10:00 in Caracas (UTC-4): inside business hours.
MONDAY_10AM = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)

TEST_RULES = """
settings:
  timezone: America/Caracas
  country: VE
rules:
  - name: horario
    keywords: [horario, "a que hora"]
    fuzzy: 1
    reply: "Abrimos de lunes a viernes, 8:00 a 17:00."
  - name: precio
    pattern: 'precio (?P<producto>\\w+)'
    template: precio.txt
  - name: asesor
    keywords: [asesor, humano]
    reply: "Un asesor le escribirá pronto."
    handoff: true
  - name: otro
    fallback: true
    reply: "No entendí. Escriba HORARIO, PRECIO <producto> o ASESOR."
"""


class Clock:
    """A controllable clock: the date starts at `now` and moves only when told; the monotonic
    reading follows the machine plus every `advance` (so rate limits really wait), or, with
    `ticking=False`, moves only when told too; the jitter source is seeded."""

    def __init__(self, now: datetime = MONDAY_10AM, seed: int = 7, ticking: bool = True) -> None:
        self.now = now
        self.random = random.Random(seed)
        self.ticking = ticking
        self._offset = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (time.monotonic() if self.ticking else 0.0) + self._offset

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self._offset += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_worker(clock: Clock) -> Callable[..., OutboxWorker]:
    """Builds outbox workers on the test clock: the one way tests make them."""

    def make(store: Store, providers: dict[str, Provider], **options: Any) -> OutboxWorker:
        return OutboxWorker(store, providers, clock=clock, **options)

    return make


@pytest.fixture
def make_poller(clock: Clock) -> Callable[..., StatusPoller]:
    """Builds status pollers on the test clock."""

    def make(store: Store, providers: dict[str, Provider], **options: Any) -> StatusPoller:
        return StatusPoller(store, providers, clock=clock, **options)

    return make


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with the test rules and a template, like a user's project folder."""
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "precio.txt").write_text(
        "El precio de {{ match.producto }} es 5 USD.", encoding="utf-8"
    )
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(TEST_RULES), encoding="utf-8")
    return tmp_path


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    """A folder holding copies of the bundled rules.yaml and templates/ (beside `workdir`, so
    that an app started with them still keeps its database in `workdir`)."""
    folder = tmp_path / "bundled"
    folder.mkdir()
    shutil.copy(ROOT / "rules.yaml", folder / "rules.yaml")
    shutil.copytree(ROOT / "templates", folder / "templates")
    return folder


@pytest.fixture
def make_settings(workdir: Path, request: pytest.FixtureRequest) -> Callable[..., Settings]:
    """Settings for an app in `workdir`; `backend="postgres"` puts its database in the test
    run's PostgreSQL database (emptied for each test) instead of a SQLite file."""

    def make(backend: str = "sqlite", **env: str) -> Settings:
        database = str(workdir / "responder.db")
        spool = None
        if backend == "postgres":
            database = request.getfixturevalue("postgres_url")
            spool = str(workdir / "responder-spool")  # not the working folder's default
        base = {
            "RESPONDER_DATABASE": database,
            "RESPONDER_SPOOL": spool,
            "RESPONDER_RULES": str(workdir / "rules.yaml"),
            "RESPONDER_TEMPLATES": str(workdir / "templates"),
            "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        base.update(env)
        return load_settings({k: v for k, v in base.items() if v}, env_file="/nonexistent")

    return make


@dataclass
class RunningApp:
    """The app served by uvicorn on 127.0.0.1 with its lifespan (workers included)."""

    url: str
    service: Service

    def webhook(self, suffix: str = "/inbound", token: str = WEBHOOK_TOKEN) -> str:
        return f"{self.url}/webhooks/massiva/{token}{suffix}"

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return loopback.Client(base_url=self.url, headers=headers, timeout=10)

    def messages(self, phone: str) -> list[dict[str, Any]]:
        with self.api() as api:
            response = api.get(f"/api/conversations/{phone}/messages")
            response.raise_for_status()
            result: list[dict[str, Any]] = response.json()["messages"]
            return result

    def wait_for(
        self, phone: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 5
    ) -> list[dict[str, Any]]:
        """Polls the API until the conversation satisfies `predicate`; fails the test if it
        does not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages(phone)
            if predicate(messages):
                return messages
            if time.monotonic() > deadline:
                raise AssertionError(f"{phone} never got there in {timeout} s: {messages}")
            time.sleep(0.02)


@pytest.fixture
def start_app(
    make_settings: Callable[..., Settings], clock: Clock
) -> Iterator[Callable[..., RunningApp]]:
    servers: list[FakeServer] = []

    def start(providers: dict[str, Provider] | None = None, **env: str) -> RunningApp:
        app = create_app(make_settings(**env), clock=clock, providers=providers)
        server = FakeServer(app, lifespan="on").__enter__()
        servers.append(server)
        return RunningApp(server.url, app.state.service)

    yield start
    for server in reversed(servers):
        server.__exit__(None, None, None)


@pytest.fixture
def massiva() -> Iterator[tuple[FakeMassiva, str]]:
    """A fake Massiva on loopback and the base URL to give MASSIVA_URL."""
    fake = FakeMassiva()
    with FakeServer(fake.app) as server:
        yield fake, f"{server.url}/webservices"
        fake.release()


@pytest.fixture
def massms() -> Iterator[tuple[FakeMasSMS, str]]:
    """A fake MasSMS on loopback and the base URL to give MASSMS_URL."""
    fake = FakeMasSMS()
    with FakeServer(fake.app) as server:
        yield fake, f"{server.url}/massms/api"
        fake.release()


def massiva_env(url: str, fake: FakeMassiva) -> dict[str, str]:
    return {"MASSIVA_URL": url, "MASSIVA_USER": fake.user, "MASSIVA_PASSWORD": fake.password}


def massms_env(url: str, fake: FakeMasSMS) -> dict[str, str]:
    return {
        "MASSMS_URL": url,
        "MASSMS_API_ID": fake.api_id,
        "MASSMS_USER": fake.user,
        "MASSMS_PASSWORD": fake.password,
        "MASSMS_SENDER_ID": "MiTienda",
    }


@pytest.fixture(scope="module")
def shared_server() -> Iterator[tuple[SwappableApp, str]]:
    """One fake-provider server for a whole test module; tests swap in their own fake."""
    current = SwappableApp()
    with FakeServer(current) as server:
        yield current, server.url
