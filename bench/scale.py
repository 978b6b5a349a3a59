"""Databases of realistic size, built by the product's own code, and what the pages cost on them.

    # build (SQLite): inbound messages fed through Service.receive (the webhook's path) under
    # the bundled rules.yaml, replies sent by the outbox worker to an in-process provider
    nice -n 10 .venv/bin/python bench/scale.py build --size medium --out /work/scale/medium.sqlite
    nice -n 10 .venv/bin/python bench/scale.py build --size large --out /work/scale/large.sqlite
    # the PostgreSQL copy, through the product's own copy command
    nice -n 10 .venv/bin/python bench/scale.py copy --from /work/scale/medium.sqlite \\
        --to postgresql://postgres@127.0.0.1:5432/responder_scale_medium
    # the table: a real `responder serve` on (a copy of) the database
    .venv/bin/python bench/scale.py measure --database sqlite:/work/scale/medium.sqlite
    .venv/bin/python bench/scale.py measure \\
        --database postgres:postgresql://postgres@127.0.0.1:5432/responder_scale_medium

`build` writes nothing by hand: every row comes from `Service.receive` (deciding with the
rules, storing the message and its replies in one transaction, exactly as a webhook does),
from the outbox worker sending those replies (an in-process provider that accepts everything:
most are reported delivered at once, a few are delivered or failed later through
`Service.record_status`, the delivery-report path), and from the service's own calls for what
staff do (hand a chat back to the bot, reply as an agent, label a contact). An injected clock
walks over about two years: traffic comes in bursts of `--batch` messages a few seconds apart,
mostly in business hours, so dates, business hours and reply limits behave as they would.

The shape (fixed seed, so two builds of one size are alike):
  * `--contacts` numbers, a few writing a lot (a skewed pick), one very busy number
    (BUSY_PHONE, ~2% of the inbound messages: about 19,000 messages in `medium`);
  * texts that match the rules (horario, precio X, dirección, saludo, encuesta...), free text
    with accented Spanish words (mañana, información, envío, teléfono, ...), and a rare word
    (RARE_WORD, in RARE_COUNT messages) for the search row;
  * opt-outs (BAJA) and some opt-ins again, hand-offs (ASESOR: needs attention), agents'
    replies, hand-backs, labels.

`measure` starts `responder serve` on the database (SQLite: on a copy in a temporary folder
unless --in-place; PostgreSQL: on a copy made with CREATE DATABASE … TEMPLATE) and asks each
row of REQUESTS `--repeat` times (median, and the worst), one inbox poll with the server's
CPU time read from /proc, `responder export --format jsonl` (time, peak RSS) and start-up
(process start to /healthz answering). REQUESTS is a table of named requests: when an
endpoint's parameters change, change its row.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from responder.config import Settings  # noqa: E402
from responder.engine import InboundMessage  # noqa: E402
from responder.providers.base import OutboundSMS, Provider, SendResult  # noqa: E402
from responder.store.models import OptedOutError, StatusUpdate  # noqa: E402

SIZES = {  # messages (inbound + replies, about), contacts
    "tiny": (20_000, 2_000),
    "medium": (1_000_000, 100_000),
    "large": (5_000_000, 500_000),
}
BUSY_PHONE = "584149990000"
BUSY_SHARE = 0.019  # of the inbound messages (medium: ~9,500 in + ~9,500 replies)
RARE_WORD = "zarzaparrilla"
RARE_COUNT = 25
SEED = 16
YEARS = 2.0
LINE = "584141000001"

# What customers write. Matches a rule of the bundled rules.yaml, or the fallback.
RULE_TEXTS = [
    "hola",
    "buenas",
    "¿A qué hora abren?",
    "horario",
    "hasta que hora cierran mañana",
    "precio café",
    "precio azúcar",
    "precio harina",
    "cuanto cuesta el envío",
    "¿Dónde están ubicados?",
    "direccion",
    "como llego desde la estación",
    "encuesta",
]
FLOW_ANSWERS = ["5", "4", "3", "muy buena atención", "1", "2"]
WORDS_TEXT = (
    "mañana pedido envío información teléfono número dirección ubicación atención gracias "
    "señor señora cuándo también después pagué transferencia factura canción camión jamón "
    "piña niño año corazón café azúcar limón está llegó tardó revisión quiero necesito "
    "pregunta tienda sucursal oferta promoción descuento hoy ayer semana producto entrega "
    "domicilio llamada mensaje respuesta cuenta tarjeta crédito débito"
)
WORDS = WORDS_TEXT.split()


def free_text(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(3, 12))
    text = " ".join(words)
    if rng.random() < 0.3:
        text += f" #{rng.randint(1000, 99999)}"
    return text[0].upper() + text[1:]


# -- the clock --------------------------------------------------------------------------------


class WalkingClock:
    """The injected clock: `at` is set by the builder just before each message is handed to
    the service (which reads the clock first thing), and never goes back."""

    def __init__(self, start: datetime) -> None:
        self.at = start
        self.random = random.Random(SEED)
        self._mono = 0.0

    def __call__(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        # Real seconds: the outbox's and budget's intervals measure work, not simulated time.
        return time.monotonic()


# -- the provider -----------------------------------------------------------------------------


class BenchProvider(Provider):
    """Accepts every SMS; most are final ('delivered') at once, the rest wait for a delivery
    report the builder sends later through Service.record_status. Keeps no copy of what it
    sent (the sandbox does; millions of them would not fit)."""

    name = "sandbox"
    max_batch = 100
    per_message_texts = True

    def __init__(self, rng: random.Random, reported: float = 0.05) -> None:
        self.rng = rng
        self.reported = reported
        self.awaiting: list[str] = []  # provider ids still waiting for a report
        self.sent = 0

    async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
        results = []
        for sms in batch:
            pid = f"bench-{sms.id}"
            later = self.rng.random() < self.reported
            if later:
                self.awaiting.append(pid)
            results.append(SendResult(sms.id, pid, delivered=not later))
        self.sent += len(batch)
        return results

    async def balance(self) -> float:
        return float("inf")


def service_settings(database: str, work: Path) -> Settings:
    """Settings for a Service run in this process (no HTTP): the bundled rules and templates,
    the sandbox provider (pass a BenchProvider as "sandbox"), no tokens; spool in `work`."""
    return Settings(
        database=database,
        spool=work / "spool",
        rules=ROOT / "rules.yaml",
        templates=ROOT / "templates",
        webhook_token=None,
        admin_token=None,
        provider="sandbox",
        public_url=None,
        massiva=None,
        massms=None,
    )


# -- the builder ------------------------------------------------------------------------------


@dataclass
class Plan:
    messages: int
    contacts: int
    batch: int
    seed: int = SEED

    @property
    def inbound(self) -> int:
        # About 0.9 replies per inbound message (limits, hand-offs and opt-outs stay silent).
        return int(self.messages / 1.9)


class Builder:
    def __init__(self, plan: Plan, out: Path) -> None:
        self.plan = plan
        self.out = out
        self.rng = random.Random(plan.seed)
        self.phones: list[str] = []
        self.next_contact = 0
        self.opted_out: set[str] = set()
        self.human: set[str] = set()
        self.in_flow: set[str] = set()
        self.rare_left = RARE_COUNT
        self.attention: list[str] = []  # needs attention, the bot still on: staff look at some
        self.stats = {
            "inbound": 0,
            "duplicates": 0,
            "agent": 0,
            "labels": 0,
            "reports": 0,
            "cleared": 0,
        }

    def phone(self) -> str:
        """A new contact while some are left to meet (more early on), else a known one,
        skewed toward a few that write a lot; BUSY_PHONE for its share."""
        rng, plan = self.rng, self.plan
        if rng.random() < BUSY_SHARE:
            return BUSY_PHONE
        left_new = plan.contacts - 1 - self.next_contact
        if left_new > 0 and (not self.phones or rng.random() < 0.25):
            self.next_contact += 1
            phone = f"58412{self.next_contact:07d}"
            self.phones.append(phone)
            return phone
        # skewed: a quarter of the picks among the 1% most active
        if rng.random() < 0.25:
            return self.phones[int(len(self.phones) * 0.01 * rng.random())]
        return self.phones[int(len(self.phones) * rng.random())]

    def text(self, phone: str) -> str:
        rng = self.rng
        if phone in self.in_flow:
            self.in_flow.discard(phone)
            return rng.choice(FLOW_ANSWERS)
        if phone in self.opted_out:
            if rng.random() < 0.2:
                self.opted_out.discard(phone)
                return "ALTA"
            return free_text(rng)
        r = rng.random()
        if self.rare_left and r < 0.0005:
            self.rare_left -= 1
            return f"¿Tienen {RARE_WORD} para la tos?"
        if r < 0.006 and phone != BUSY_PHONE:
            self.opted_out.add(phone)
            return rng.choice(["BAJA", "STOP", "Baja por favor"])
        if r < 0.012 and phone != BUSY_PHONE:
            self.human.add(phone)
            return rng.choice(["ASESOR", "quiero hablar con un asesor", "una persona por favor"])
        if r < 0.75:
            text = rng.choice(RULE_TEXTS)
            if text == "encuesta":
                self.in_flow.add(phone)
            return text
        return free_text(rng)

    def times(self) -> list[datetime]:
        """The start of each burst: spread over YEARS, mostly in Caracas business hours."""
        rng = self.rng
        bursts = math.ceil(self.plan.inbound / self.plan.batch)
        start = datetime(2024, 12, 1, tzinfo=UTC)
        span_days = int(YEARS * 365)
        starts = []
        for _ in range(bursts):
            day = start + timedelta(days=rng.randrange(span_days))
            # Caracas is UTC-4: 08:00-21:00 there is 12:00-01:00 UTC; a few at night.
            hour = 12 + rng.random() * 13 if rng.random() < 0.9 else rng.random() * 24
            starts.append(day + timedelta(hours=hour))
        starts.sort()
        return starts

    async def run(self) -> None:
        from responder.service import Service

        plan = self.plan
        if self.out.exists():
            raise SystemExit(f"{self.out} exists: remove it first (the builder never appends)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="scale-build-"))
        starts = self.times()
        clock = WalkingClock(starts[0] - timedelta(minutes=1))
        provider = BenchProvider(random.Random(plan.seed + 1))
        settings = service_settings(str(self.out), work)
        service = Service(settings, clock=clock, providers={"sandbox": provider})
        await service.open()
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 1000)
        started = time.monotonic()
        last_report = started
        sent = 0
        try:
            for number, burst_start in enumerate(starts):
                await self.burst(service, clock, burst_start)
                sent += plan.batch
                await service.worker.wait_idle()
                # The flow sweep, as the running service does every 30 s: flows whose answer
                # is overdue end with their timeout reply.
                await service.expire_flows()
                await service.worker.wait_idle()
                await self.staff(service, clock)
                # The count fold, as the running service does every 5 s (a burst is about as
                # long): a database built without it would carry millions of changes that the
                # first minutes of any measurement then fold.
                await service.store.fold_counts()
                now = time.monotonic()
                if now - last_report >= 10 or number == len(starts) - 1:
                    last_report = now
                    elapsed = now - started
                    rate = self.stats["inbound"] / elapsed
                    total = await service.store.message_total()
                    print(
                        f"  {clock.at:%Y-%m-%d} burst {number + 1}/{len(starts)}: "
                        f"{self.stats['inbound']:,} in, {total:,} messages, "
                        f"{len(self.phones):,} contacts, {rate:,.0f} inbound/s, "
                        f"{total / elapsed:,.0f} rows/s, {elapsed:,.0f} s",
                        flush=True,
                    )
            await self.reports(service, clock, everything=True)
            await service.worker.wait_idle()
            await service.store.fold_counts()
        finally:
            await service.worker.wait_idle()
            await service.close()
            shutil.rmtree(work, ignore_errors=True)
        elapsed = time.monotonic() - started
        print(f"built {self.out} in {elapsed:,.0f} s: {json.dumps(self.stats)}")

    async def burst(self, service: Any, clock: WalkingClock, start: datetime) -> None:
        """`plan.batch` webhooks a second or so apart, handed over together: the store
        groups them into one transaction, as it does concurrent webhooks."""
        step = timedelta(seconds=60.0 / self.plan.batch)
        tasks, messages = [], []
        for i in range(self.plan.batch):
            if self.stats["inbound"] >= self.plan.inbound:
                break
            phone = self.phone()
            at = start + step * i
            message = InboundMessage(phone, self.text(phone), at, LINE, "massiva")
            messages.append(message)
            tasks.append(asyncio.create_task(self.one(service, clock, message)))
            self.stats["inbound"] += 1
        results = await asyncio.gather(*tasks)
        self.stats["duplicates"] += sum(1 for r in results if r.duplicate)
        self.attention.extend(
            m.phone
            for m, r in zip(messages, results)
            if r.decision.needs_attention and m.phone not in self.human
        )

    @staticmethod
    async def one(service: Any, clock: WalkingClock, message: InboundMessage) -> Any:
        # Tasks start in the order they were made, each reading the clock before its first
        # await: the service sees each message at its own moment.
        clock.at = max(clock.at, message.received_at)
        return await service.receive(message)

    async def staff(self, service: Any, clock: WalkingClock) -> None:
        """What people do now and then: answer a handed-off chat, give it back to the bot,
        label a contact; and the provider's delayed delivery reports."""
        rng = self.rng
        if self.human and rng.random() < 0.5:
            phone = rng.choice(sorted(self.human)) if len(self.human) < 64 else self.human.pop()
            self.human.discard(phone)
            text = f"Hola, le atiende Ana. {free_text(rng)}"
            try:
                await service.send(phone, text, None, "agent", author="Ana")
            except OptedOutError:  # refused by the store, as it would refuse the agent
                return
            await service.worker.drain()  # the worker's own claim, as its loop would
            self.stats["agent"] += 1
            if rng.random() < 0.5:
                await service.set_mode(phone, "bot", "Ana")
            else:
                self.human.add(phone)  # stays with people: still needs attention
        # Staff go through most of what needs attention (clearing it), never all of it.
        looked, self.attention = self.attention, []
        for phone in sorted(set(looked))[: int(len(looked) * 0.7)]:
            await service.set_mode(phone, "bot", "Ana")
            self.stats["cleared"] += 1
        if self.phones and rng.random() < 0.3:
            phone = rng.choice(self.phones)
            label = rng.choice(["mayorista", "vip", "reclamo", "nuevo", "frecuente"])
            await service.update_labels(phone, [label], [])
            self.stats["labels"] += 1
        await self.reports(service, clock)

    async def reports(self, service: Any, clock: WalkingClock, everything: bool = False) -> None:
        provider = service.providers["sandbox"]
        if not provider.awaiting or (not everything and len(provider.awaiting) < 50):
            return
        waiting, provider.awaiting = provider.awaiting, []
        at = clock.at
        updates = [
            StatusUpdate(
                "sandbox",
                pid,
                "delivered" if self.rng.random() < 0.8 else "failed",
                None if self.rng.random() < 0.8 else "absent subscriber",
                at,
            )
            for pid in waiting
        ]
        await asyncio.gather(*(service.record_status(u) for u in updates))
        self.stats["reports"] += len(updates)


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    """One row of the table: a GET as staff (`page`, signed in) or through the API (`api`,
    bearer token). The path may name {busy} (the busiest number), {phone} (a fragment of a
    number, as staff type it), {typed} (the busiest number typed as staff
    would), {rare} (RARE_WORD), {deep} (an offset 150 conversations from the end), {cursor}
    (the keyset cursor at that depth) and anything added to `database_facts`. `unchanged`:
    each request sends the ETag of an answer read just before (a poll that finds nothing new
    and gets a 304). Every row also
    shows the server process's CPU time per request, read from /proc (the database's own
    work on PostgreSQL is not in it)."""

    name: str
    kind: str
    path: str
    unchanged: bool = False  # asked with the ETag of a first answer (a poll with nothing new)


# Change a row when an endpoint's parameters change; add a row for a new way to ask.
REQUESTS = [
    Named("admin dashboard", "page", "/admin/dashboard"),
    Named("inbox search by phone (typed 0412-…)", "page", "/admin?q={typed}"),
    Named("inbox search by part of a number", "page", "/admin?q={phone}"),
    Named("inbox search by a rare word", "page", "/admin?q={rare}"),
    Named("GET /api/conversations, deep page (cursor)", "api",
          "/api/conversations?limit=100&cursor={cursor}"),
    Named("GET /api/conversations?needs_attention=true", "api",
          "/api/conversations?needs_attention=true&limit=100"),
    Named("busiest conversation, API", "api", "/api/conversations/{busy}/messages"),
    Named("busiest conversation, page", "page", "/admin/conversations/{busy}"),
    Named("one inbox poll", "page", "/admin/partials/inbox"),
    Named("one inbox poll, nothing new (304)", "page", "/admin/partials/inbox", unchanged=True),
    Named("what waits (every page, every few s)", "page", "/admin/partials/waiting"),
]  # fmt: skip


# The conversation at a depth of the newest-first list (read once, slowly, by OFFSET).
DEEP = (
    "SELECT last_message_at, phone FROM contacts WHERE last_activity_at IS NOT NULL "
    "ORDER BY last_message_at DESC, phone LIMIT 1 OFFSET ?"
)


def database_facts(database: str) -> dict[str, Any]:
    """What the paths need: the busiest number, a phone fragment, the deep offset."""
    if database.startswith("sqlite:"):
        with sqlite3.connect(f"file:{database[7:]}?mode=ro", uri=True) as db:
            busy = db.execute(
                "SELECT phone FROM messages GROUP BY phone ORDER BY COUNT(*) DESC LIMIT 1"
            ).fetchone()[0]
            busy_count = db.execute(
                "SELECT COUNT(*) FROM messages WHERE phone = ?", (busy,)
            ).fetchone()[0]
            contacts = db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
            messages = db.execute("SELECT MAX(id) FROM messages").fetchone()[0]
            at, deep_phone = db.execute(DEEP, (max(0, contacts - 150),)).fetchone()
            deep_at = datetime.fromisoformat(at)
    else:
        import asyncpg

        async def read() -> tuple[str, int, int, int, datetime, str]:
            conn = await asyncpg.connect(database[9:])
            try:
                row = await conn.fetchrow(
                    "SELECT phone, COUNT(*) AS n FROM messages GROUP BY phone "
                    "ORDER BY n DESC LIMIT 1"
                )
                contacts = await conn.fetchval("SELECT COUNT(*) FROM contacts")
                messages = await conn.fetchval("SELECT MAX(id) FROM messages")
                deep = await conn.fetchrow(DEEP.replace("?", "$1"), max(0, contacts - 150))
                return row["phone"], row["n"], contacts, messages, deep[0], deep[1]
            finally:
                await conn.close()

        busy, busy_count, contacts, messages, deep_at, deep_phone = asyncio.run(read())
    return {
        "busy": busy,
        "busy_count": busy_count,
        "contacts": contacts,
        "messages": messages,
        "phone": "0412 00012",  # a fragment, as staff type it
        # The busiest number as staff type it from a note: 0412-123.45.67.
        "typed": urllib.parse.quote(f"0{busy[2:5]}-{busy[5:8]}.{busy[8:10]}.{busy[10:]}"),
        # Where a client paging by `next` stands ~150 conversations before the end.
        "cursor": base64.urlsafe_b64encode(f"{deep_at.isoformat()}|{deep_phone}".encode())
        .decode()
        .rstrip("="),
        "rare": RARE_WORD,
        "deep": max(0, contacts - 150),
    }


def serve_env(database: str, work: Path, code: Path = ROOT) -> dict[str, str]:
    shutil.copy(ROOT / "rules.yaml", work / "rules.yaml")
    if not (work / "templates").exists():
        shutil.copytree(ROOT / "templates", work / "templates")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "MASS"))}
    # Compiled modules kept between starts, as an installed responder has them: with
    # PYTHONDONTWRITEBYTECODE (set on some machines) every start compiled every module again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("PYTHONPYCACHEPREFIX", str(work / "pycache"))
    env.update(
        RESPONDER_DATABASE=database,
        RESPONDER_RULES=str(work / "rules.yaml"),
        RESPONDER_TEMPLATES=str(work / "templates"),
        RESPONDER_WEBHOOK_TOKEN=WEBHOOK_TOKEN,
        RESPONDER_ADMIN_TOKEN=ADMIN_TOKEN,
        RESPONDER_SPOOL=str(work / "spool"),
        # This checkout's code (or `code`, e.g. an older commit), ahead of the installed one.
        PYTHONPATH=os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")])),
    )
    return env


WEBHOOK_TOKEN = "bench-webhook-token-0123456789"
ADMIN_TOKEN = "bench-admin-token-0123456789"


def responder_command() -> list[str]:
    script = Path(sys.executable).with_name("responder")
    return [str(script)] if script.exists() else [sys.executable, "-m", "responder"]


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    started_in: float  # seconds from launch to the first 200 on /healthz
    started_cpu: float = 0.0  # the server's CPU seconds by then (less noisy on a busy machine)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def serve(
    database: str,
    work: Path,
    extra: Sequence[str] = (),
    timeout: float = 120.0,
    code: Path = ROOT,
) -> Served:
    """`responder serve` on `database`, timed from launch to the first 200 on /healthz."""
    from bench.webhook import free_port

    env = serve_env(database, work, code)
    port = free_port()
    log = work / f"serve-{port}.log"
    argv = [*responder_command(), "serve", "--host", "127.0.0.1", "--port", str(port), *extra]
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    served = Served(proc, port, log, 0.0)
    deadline = started + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"responder serve failed:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{served.base}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    served.started_in = time.monotonic() - started
                    served.started_cpu = served.cpu_seconds()
                    return served
        except OSError:
            pass
        time.sleep(0.01)
    served.stop()
    raise SystemExit(
        f"responder serve did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}"
    )


def signed_in(base: str) -> Any:
    import httpx

    client = httpx.Client(base_url=base, timeout=120, follow_redirects=False)
    form = client.get("/admin/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if not found:
        raise SystemExit("no CSRF field on /admin/login")
    data = {"csrf": found.group(1), "name": "admin", "password": ADMIN_TOKEN}
    answer = client.post("/admin/login", data=data)
    if answer.status_code != 303:
        raise SystemExit(f"signing in failed: {answer.status_code} {answer.text[:300]}")
    return client


@dataclass
class Timing:
    name: str
    ms: list[float]
    cpu_ms: float | None
    status: int
    size: int

    @property
    def median(self) -> float:
        return statistics.median(self.ms)


def time_requests(
    served: Served, facts: dict[str, Any], repeat: int, only: Sequence[str] = ()
) -> list[Timing]:
    import httpx

    page = signed_in(served.base)
    api = httpx.Client(
        base_url=served.base, timeout=120, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    timings = []
    try:
        for named in REQUESTS:
            if only and not any(o in named.name for o in only):
                continue
            client = page if named.kind == "page" else api
            path = named.path.format(**{k: urllib.parse.quote(str(v)) for k, v in facts.items()})
            times, cpu = [], 0.0
            status = size = 0
            headers = {}
            if named.unchanged:
                headers["If-None-Match"] = client.get(path).headers.get("etag", "")
            for _ in range(repeat):
                before_cpu = served.cpu_seconds()
                started = time.perf_counter()
                answer = client.get(path, headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                cpu += served.cpu_seconds() - before_cpu
                status, size = answer.status_code, len(answer.content)
            timing = Timing(named.name, times, cpu * 1000 / repeat, status, size)
            timings.append(timing)
            extra = f", server CPU {timing.cpu_ms:.1f} ms" if timing.cpu_ms is not None else ""
            print(
                f"  {named.name:<48} {timing.median:9.1f} ms (max {max(times):.1f}){extra}"
                f"  [{status}, {size:,} B] {path}",
                flush=True,
            )
    finally:
        page.close()
        api.close()
    return timings


def time_export(database: str, work: Path) -> tuple[float, float]:
    """`responder export --format jsonl` to /dev/null: seconds and peak RSS (MiB)."""
    env = serve_env(database, work)
    started = time.monotonic()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            [*responder_command(), "export", "--format", "jsonl"],
            env=env, cwd=work, stdout=sink, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    if status != 0:
        raise SystemExit(
            f"export failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else status}"
        )
    return elapsed, usage.ru_maxrss / 1024


def measure_main(args: argparse.Namespace) -> int:
    database = args.database
    if not database.startswith(("sqlite:", "postgres:")):
        raise SystemExit("--database is sqlite:/path/to/file or postgres:postgresql://…")
    work = Path(tempfile.mkdtemp(prefix="scale-measure-"))
    served: Served | None = None
    copy_name: str | None = None
    try:
        if database.startswith("sqlite:"):
            source = Path(database[7:])
            if args.in_place:
                target = source
            else:
                target = work / source.name
                print(f"copying {source} to {target} (--in-place to skip)", flush=True)
                shutil.copy(source, target)
            url = str(target)
            facts = database_facts(f"sqlite:{target}")
        elif args.in_place:
            url = database[9:]
            facts = database_facts(database)
        else:
            # The server's own background work writes (sessions, the flow sweep): on a copy
            # PostgreSQL makes (CREATE DATABASE … TEMPLATE; no other session on the source).
            from bench.webhook import copy_postgres_database, with_database

            source_name = urllib.parse.urlsplit(database[9:]).path.lstrip("/")
            copy_name = f"{source_name}_measure_{os.getpid()}"
            print(f"copying {source_name} to {copy_name} (CREATE DATABASE … TEMPLATE)", flush=True)
            copy_postgres_database(source_name, copy_name)
            url = with_database(database[9:], copy_name)
            facts = database_facts(f"postgres:{url}")
        print(
            f"{database}: {facts['messages']:,} messages, {facts['contacts']:,} contacts, "
            f"busiest {facts['busy']} ({facts['busy_count']:,} messages)",
            flush=True,
        )
        starts, start_cpu = [], []
        for _ in range(args.starts):
            served = serve(url, work)
            starts.append(served.started_in)
            start_cpu.append(served.started_cpu)
            served.stop()
            served = None
        served = serve(url, work)
        if args.settle:
            # The first flow sweep (30 s after start) ends the flows left waiting: not during
            # the requests.
            time.sleep(args.settle)
        print(
            f"  start-up to the first /healthz 200: median {statistics.median(starts):.2f} s "
            f"of {args.starts} ({', '.join(f'{s:.2f}' for s in starts)}); the server's CPU "
            f"by then: median {statistics.median(start_cpu):.2f} s",
            flush=True,
        )
        timings = time_requests(served, facts, args.repeat, args.only)
        served.stop()
        served = None
        export_s = export_rss = None
        if not args.no_export:
            export_s, export_rss = time_export(url, work)
            print(
                f"  responder export --format jsonl: {export_s:.1f} s, peak RSS "
                f"{export_rss:.0f} MiB",
                flush=True,
            )
        print("\n| request | median ms | worst ms | server CPU ms |\n| --- | --- | --- | --- |")
        for t in timings:
            cpu = f"{t.cpu_ms:.1f}" if t.cpu_ms is not None else ""
            print(f"| {t.name} | {t.median:.1f} | {max(t.ms):.1f} | {cpu} |")
        if export_s is not None:
            print(
                f"| responder export --format jsonl | {export_s * 1000:.0f} | "
                f"| peak RSS {export_rss:.0f} MiB |"
            )
        print(
            f"| start-up (to /healthz) | {statistics.median(starts) * 1000:.0f} | "
            f"{max(starts) * 1000:.0f} | |"
        )
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "database": database,
                        "facts": facts,
                        "timings": [t.__dict__ | {"median": t.median} for t in timings],
                        "export_s": export_s,
                        "export_rss_mib": export_rss,
                        "starts": starts,
                        "start_cpu": start_cpu,
                    },
                    indent=1,
                )
            )
    finally:
        if served is not None:
            served.stop()
        if copy_name is not None:
            from bench.webhook import postgres_admin

            postgres_admin(f'DROP DATABASE IF EXISTS "{copy_name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    return 0


def copy_main(args: argparse.Namespace) -> int:
    """`responder migrate-to` (the product's copy command) from the SQLite file into a new
    PostgreSQL database."""
    from bench.webhook import postgres_admin

    name = urllib.parse.urlsplit(args.to).path.lstrip("/")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise SystemExit(f"database name {name!r}: use lowercase letters, digits, _")
    work = Path(tempfile.mkdtemp(prefix="scale-copy-"))
    try:
        postgres_admin(f'CREATE DATABASE "{name}"')
    except Exception as err:  # exists already: migrate-to brings it up to date
        print(f"CREATE DATABASE {name}: {err}")
    env = serve_env(args.source, work)
    started = time.monotonic()
    result = subprocess.run([*responder_command(), "migrate-to", args.to], env=env, cwd=work)
    print(f"migrate-to took {time.monotonic() - started:,.0f} s")
    shutil.rmtree(work, ignore_errors=True)
    if result.returncode == 0:
        asyncio.run(settle_postgres(args.to))
    return result.returncode


async def settle_postgres(url: str) -> None:
    """What a service running on the copy does in its first minutes, done before any
    measurement, by the store's own sweeps: the count changes folded, the search indexes'
    pending lists moved; then the queue of count changes compacted and VACUUM ANALYZE (this
    machine's server runs without autovacuum)."""
    import asyncpg

    from responder.clock import SystemClock
    from responder.store.postgres import PostgresStore

    started = time.monotonic()
    store = PostgresStore(url, SystemClock())
    await store.open()
    try:
        folded = await store.fold_counts()
        await store.index_new_numbers()
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM FULL message_count_changes")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    print(f"settled in {time.monotonic() - started:,.0f} s: {folded:,} count changes folded")


# -- command line -----------------------------------------------------------------------------


def build_main(args: argparse.Namespace) -> int:
    messages, contacts = SIZES[args.size]
    if args.messages:
        messages = args.messages
    if args.contacts:
        contacts = args.contacts
    plan = Plan(messages, contacts, args.batch)
    print(
        f"building {args.out}: ~{messages:,} messages ({plan.inbound:,} inbound), "
        f"{contacts:,} contacts, bursts of {plan.batch}",
        flush=True,
    )
    asyncio.run(Builder(plan, Path(args.out)).run())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build a SQLite database through the service")
    b.add_argument("--size", choices=sorted(SIZES), default="medium")
    b.add_argument("--messages", type=int, default=0, help="instead of the size's")
    b.add_argument("--contacts", type=int, default=0, help="instead of the size's")
    b.add_argument("--batch", type=int, default=100, help="webhooks per burst")
    b.add_argument("--out", required=True)
    m = sub.add_parser("measure", help="time the table's requests on a real responder serve")
    m.add_argument("--database", required=True, help="sqlite:/path or postgres:postgresql://…")
    m.add_argument("--repeat", type=int, default=5, help="requests of each row (median)")
    m.add_argument("--starts", type=int, default=3, help="start-ups timed (median)")
    m.add_argument("--only", action="append", default=[], help="rows whose name has this")
    m.add_argument(
        "--in-place", action="store_true", help="serve the file or database itself, not a copy"
    )
    m.add_argument("--no-export", action="store_true")
    m.add_argument("--settle", type=float, default=40.0, help="seconds after start-up, first")
    m.add_argument("--json", help="also write the figures here")
    c = sub.add_parser("copy", help="responder migrate-to from the SQLite file to PostgreSQL")
    c.add_argument("--from", dest="source", required=True, help="the SQLite file")
    c.add_argument("--to", required=True, help="postgresql://…/responder_scale_medium")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build_main(args)
    if args.command == "measure":
        return measure_main(args)
    if args.command == "copy":
        return copy_main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
