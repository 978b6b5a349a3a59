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
unless --in-place; PostgreSQL: on the database itself, read-only requests only) and asks each
row of REQUESTS `--repeat` times (median, and the worst), one inbox poll with the server's
CPU time read from /proc, `responder export --format jsonl` (time, peak RSS) and start-up
(process start to /healthz answering). REQUESTS is a table of named requests: when an
endpoint's parameters change, change its row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import random
import re
import resource
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
from collections.abc import Callable, Sequence
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
from responder.store.models import StatusUpdate  # noqa: E402

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
WORDS = (
    "mañana pedido envío información teléfono número dirección ubicación atención "
    "gracias señor señora cuándo también después pagué transferencia factura canción "
    "camión jamón piña niño año corazón café azúcar limón está llegó tardó revisión "
    "quiero necesito pregunta tienda sucursal oferta promoción descuento hoy ayer semana "
    "producto entrega domicilio llamada mensaje respuesta cuenta tarjeta crédito débito"
).split()


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
        self.stats = {"inbound": 0, "duplicates": 0, "agent": 0, "labels": 0, "reports": 0, "cleared": 0}

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
            if rng.random() < 0.9:
                hour = 12 + rng.random() * 13
            else:
                hour = rng.random() * 24
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
        settings = Settings(
            database=str(self.out),
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
                await self.staff(service, clock)
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
            await service.send(phone, text, None, "agent", author="Ana")
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


# -- command line -----------------------------------------------------------------------------


def build_main(args: argparse.Namespace) -> int:
    messages, contacts = SIZES[args.size]
    if args.messages:
        messages = args.messages
    if args.contacts:
        contacts = args.contacts
    plan = Plan(messages, contacts, args.batch)
    print(f"building {args.out}: ~{messages:,} messages ({plan.inbound:,} inbound), "
          f"{contacts:,} contacts, bursts of {plan.batch}", flush=True)
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
    args = parser.parse_args(argv)
    if args.command == "build":
        return build_main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
