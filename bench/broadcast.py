"""A 10,000-recipient broadcast through a real `responder serve` to the fake Massiva, while
customers keep writing: every recipient gets it exactly once, and webhooks stay fast.

    .venv/bin/python bench/broadcast.py [--recipients 10000] [--database sqlite|postgres|both]
        [--inbound-rate 30] [--seconds 100] [--send-rate 0] [--lead 10]

For each database, starts on 127.0.0.1: the fake Massiva (bench/latency_fake.py: tests/fakes'
FakeMassiva, stamping each SMS's arrival), `responder serve` (a temporary SQLite file or a
throwaway PostgreSQL database; rules whose fallback echoes the message, so each reply names its
webhook), and an open-loop generator in its own process sending `--inbound-rate` webhooks a
second for `--seconds` (half from numbers that are recipients, half from others; each text is a
unique id). `--recipients` contacts labelled `bench` are written straight into the database
(as an import would), then, `--lead` seconds into the inbound stream, one broadcast to the
label is created through the API. Without `--send-rate` the provider has no rate limit: the
broadcast goes as fast as the outbox and the fake take it (Massiva's full rate, batches of
MASSIVA_BATCH_SIZE=50 numbers with one text).

Checks and prints: the fake received the broadcast text at exactly the recipients' numbers,
each once (no repeats, no strangers); the broadcast's counts add up and say `sent` for all;
every acknowledged webhook got exactly one reply; webhook answer latency (p50/p99, target p99 <
100 ms) and inbound → reply at the fake (p50/p99), both for the webhooks sent while the
broadcast was going out and overall; the broadcast's duration and rate. Bounded: the broadcast
must finish within `--timeout` seconds. Stops everything and removes what it made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.latency import Received, clean_env, pct, start_fake  # noqa: E402
from bench.webhook import (  # noqa: E402
    HOST,
    Server,
    create_postgres_database,
    drop_postgres_database,
    finish,
    free_port,
    machine_busy,
    start,
    wait_ready,
)

LABEL = "bench"
BROADCAST_TEXT = "Oferta de prueba: 20% de descuento hoy en toda la tienda."
REPLY_PREFIX = "Recibido "
GATEWAY_LINE = "584141000001"
TARGET_WEBHOOK_P99_MS = 100.0
RULES = """\
settings:
  timezone: America/Caracas
  reply_limit: {{count: 1000000, per: 1h}}
  loop_guard: {{count: 1000000, per: 5m}}
{send_rate}rules:
  - name: eco
    fallback: true
    reply: "Recibido {{{{ message.text }}}}"
"""


def recipients(count: int) -> list[str]:
    return [f"58426{1_000_000 + i:07d}" for i in range(count)]


def others(count: int, taken: set[str]) -> list[str]:
    found = [f"58416{(i * 7919 + 1234567) % 10_000_000:07d}" for i in range(1, count + 1)]
    return [p for p in found if p not in taken]


def message_id(index: int) -> str:
    return f"m{index:06d}"


# -- the service -----------------------------------------------------------------------------


@dataclass
class Responder:
    server: Server
    database: str
    admin_token: str
    webhook_token: str

    @property
    def inbound_path(self) -> str:
        return f"/webhooks/massiva/{self.webhook_token}/inbound"

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.server.base}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)


def start_responder(
    work: Path, fake: Server, database: str, send_rate: float, servers: list[Server]
) -> Responder:
    rate = f"  send_rate: {{massiva: {send_rate:g}}}\n" if send_rate else ""
    (work / "rules.yaml").write_text(RULES.format(send_rate=rate), encoding="utf-8")
    (work / "templates").mkdir()
    port = free_port()
    webhook_token, admin_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = clean_env()
    env.update(
        RESPONDER_DATABASE=database,
        RESPONDER_RULES=str(work / "rules.yaml"),
        RESPONDER_TEMPLATES=str(work / "templates"),
        RESPONDER_WEBHOOK_TOKEN=webhook_token,
        RESPONDER_ADMIN_TOKEN=admin_token,
        RESPONDER_SPOOL=str(work / "spool"),
        MASSIVA_URL=f"{fake.base}/webservices",
        MASSIVA_USER="demo@example.com",
        MASSIVA_PASSWORD="secret",
    )
    script = Path(sys.executable).with_name("responder")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "responder"]
    argv = [*command, "serve", "--host", HOST, "--port", str(port)]
    server = start("responder", argv, env, work, f"serve --host {HOST} --port {port}", servers)
    wait_ready(server)
    return Responder(server, database, admin_token, webhook_token)


def seed(database: str, phones: list[str]) -> float:
    """The recipients as contacts labelled LABEL, as an import writes them (no messages)."""
    began = time.monotonic()
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    if database.startswith("postgresql://"):
        import asyncpg

        async def write() -> None:
            conn = await asyncpg.connect(database)
            try:
                async with conn.transaction():
                    await conn.executemany(
                        "INSERT INTO contacts (phone, fields, first_seen_at, last_message_at) "
                        "VALUES ($1, $2::jsonb, now(), now())",
                        [(p, json.dumps({"n": str(i)})) for i, p in enumerate(phones)],
                    )
                    await conn.executemany(
                        "INSERT INTO contact_labels (phone, label) VALUES ($1, $2)",
                        [(p, LABEL) for p in phones],
                    )
            finally:
                await conn.close()

        asyncio.run(write())
    else:
        db = sqlite3.connect(database, timeout=30)
        try:
            with db:
                db.executemany(
                    "INSERT INTO contacts (phone, fields, first_seen_at, last_message_at) "
                    "VALUES (?, ?, ?, ?)",
                    [(p, json.dumps({"n": str(i)}), now, now) for i, p in enumerate(phones)],
                )
                db.executemany(
                    "INSERT INTO contact_labels (phone, label) VALUES (?, ?)",
                    [(p, LABEL) for p in phones],
                )
        finally:
            db.close()
    return time.monotonic() - began


# -- the inbound stream (its own process) ------------------------------------------------------


async def _generate(
    port: int, path: str, rate: float, count: int, phones: list[str]
) -> dict[str, Any]:
    """Open loop: request i leaves at t0 + i / rate, answered or not; keep-alive connections."""
    sent = [0.0] * count
    answered = [0.0] * count
    status = [""] * count
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one(i: int) -> None:
        query = urllib.parse.urlencode(
            {"msg": message_id(i), "phone": phones[i], "linea": GATEWAY_LINE}
        )
        request = f"GET {path}?{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
        conn = None
        while idle and conn is None:
            reader, writer = idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
            else:
                conn = (reader, writer)
        sent[i] = time.time()
        try:
            async with asyncio.timeout(30):
                if conn is None:
                    conn = await asyncio.open_connection(HOST, port)
                reader, writer = conn
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                code = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                answered[i] = time.time()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as err:
            answered[i] = time.time()
            status[i] = f"error:{type(err).__name__}"
            if conn is not None:
                conn[1].close()
            return
        status[i] = "200" if code == 200 and body == b"OK" else str(code)
        idle.append(conn)

    t0 = time.time() + 0.2
    tasks = []
    for i in range(count):
        delay = t0 + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return {"sent": sent, "answered": answered, "status": status}


def _generator_process(job: tuple[int, str, float, int, list[str]]) -> dict[str, Any]:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(_generate(*job))


# -- one run ---------------------------------------------------------------------------------


def ms(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(v * 1000 for v in values)
    if not ordered:
        return math.nan, math.nan, math.nan
    return pct(ordered, 50), pct(ordered, 99), ordered[-1]


@dataclass
class Outcome:
    database: str
    ok: bool
    row: dict[str, str]


def run_one(args: argparse.Namespace, kind: str, work: Path, servers: list[Server]) -> Outcome:
    folder = work / kind
    folder.mkdir()
    made_db = None
    if kind == "postgres":
        made_db, database = create_postgres_database()
    else:
        database = str(folder / "responder.db")
    try:
        return _run(args, kind, folder, database, servers)
    finally:
        if made_db:
            for server in servers:
                server.stop()
            drop_postgres_database(made_db)


def _run(
    args: argparse.Namespace, kind: str, folder: Path, database: str, servers: list[Server]
) -> Outcome:
    fake = start_fake(folder, 0.0, servers)
    responder = start_responder(folder, fake, database, args.send_rate, servers)
    targets = recipients(args.recipients)
    target_set = set(targets)
    seeded = seed(database, targets)
    print(f"\n{kind}: {args.recipients:,} contacts labelled {LABEL!r} written in {seeded:.1f} s")

    rng = random.Random(7)
    strangers = others(2000, target_set)
    count = round(args.inbound_rate * args.seconds)
    phones = [rng.choice(targets) if i % 2 else strangers[i % len(strangers)] for i in range(count)]
    job = (responder.server.port, responder.inbound_path, args.inbound_rate, count, phones)
    pool = multiprocessing.get_context("spawn").Pool(1)
    began = time.time()
    pending = pool.apply_async(_generator_process, (job,))
    time.sleep(args.lead)
    cpu0 = (responder.server.cpu_seconds(), fake.cpu_seconds(), machine_busy(), time.monotonic())
    created_at = time.time()
    body = {"text": BROADCAST_TEXT, "name": "bench", "segment": {"labels": [LABEL]}}
    created = responder.api("POST", "/api/broadcasts", body)["broadcast"]
    create_s = time.time() - created_at
    broadcast_id = created["id"]
    deadline = time.monotonic() + args.timeout
    state = created
    while state["status"] not in ("done", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        state = responder.api("GET", f"/api/broadcasts/{broadcast_id}")["broadcast"]
    finished = state["status"] == "done"
    spent = time.monotonic() - cpu0[3]
    cpu = {
        "responder": (responder.server.cpu_seconds() - cpu0[0]) / spent,
        "fake": (fake.cpu_seconds() - cpu0[1]) / spent,
        "machine": (machine_busy() - cpu0[2]) / spent,
    }
    try:
        load = pending.get(timeout=args.seconds + args.timeout + 60)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    elapsed = time.time() - began

    # Every acknowledged webhook's reply, then the fake's whole record.
    acked = {message_id(i): i for i, s in enumerate(load["status"]) if s == "200"}
    received = Received()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        received.fetch(fake)
        got = {t.removeprefix(REPLY_PREFIX) for _, _, t, _ in received.records}
        if set(acked) <= got:
            break
        time.sleep(0.3)
    time.sleep(1.0)
    received.fetch(fake)
    final = responder.api("GET", f"/api/broadcasts/{broadcast_id}")["broadcast"]
    responder.server.stop()
    fake.stop()

    # The broadcast: exactly the recipients, each once.
    got_broadcast = [
        (at, phone) for at, phone, text, _ in received.records if text == BROADCAST_TEXT
    ]
    per_phone = Counter(phone for _, phone in got_broadcast)
    repeats = sum(n - 1 for n in per_phone.values() if n > 1)
    stranger_numbers = [p for p in per_phone if p not in target_set]
    missing = len(target_set - set(per_phone))
    counts = final["counts"]
    adds_up = sum(counts.values()) == final["recipients"] == args.recipients
    all_sent = counts["sent"] + counts["delivered"] == args.recipients
    first = min(at for at, _ in got_broadcast) if got_broadcast else math.nan
    last = max(at for at, _ in got_broadcast) if got_broadcast else math.nan
    duration = last - first
    exact = (
        finished and not repeats and not stranger_numbers and not missing and adds_up and all_sent
    )

    # The customers: answers and replies, during the broadcast and overall.
    sent, answered, status = load["sent"], load["answered"], load["status"]
    replies: dict[str, list[float]] = {}
    for at, _, text, _ in received.records:
        if text.startswith(REPLY_PREFIX):
            replies.setdefault(text.removeprefix(REPLY_PREFIX), []).append(at)
    lost = [m for m in acked if m not in replies]
    doubled = sum(len(v) - 1 for v in replies.values() if len(v) > 1)
    during = [i for i in acked.values() if first <= sent[i] <= last]
    before = [i for i in acked.values() if sent[i] < created_at]
    answer_all = [answered[i] - sent[i] for i in acked.values()]
    answer_during = [answered[i] - sent[i] for i in during]
    reply_all = [min(replies[m]) - sent[i] for m, i in acked.items() if m in replies]
    reply_during = [
        min(replies[message_id(i)]) - sent[i] for i in during if message_id(i) in replies
    ]
    not_ok = Counter(s for s in status if s != "200")
    b50, b99, _ = ms([answered[i] - sent[i] for i in before])
    rb50, rb99, _ = ms(
        [min(replies[message_id(i)]) - sent[i] for i in before if message_id(i) in replies]
    )
    w50, w99, wmax = ms(answer_during)
    a50, a99, _ = ms(answer_all)
    r50, r99, rmax = ms(reply_during)
    ra50, ra99, _ = ms(reply_all)

    print(
        f"  broadcast {broadcast_id}: created in {create_s * 1000:.0f} ms, status {final['status']}"
        f", counts {counts}; at the fake: {len(got_broadcast):,} messages to "
        f"{len(per_phone):,} distinct numbers, repeats {repeats}, strangers "
        f"{len(stranger_numbers)}, missing {missing} → {'EXACTLY ONCE' if exact else 'FAIL'}"
    )
    print(
        f"  went out in {duration:.1f} s ({args.recipients / duration:,.0f}/s) from the first to "
        f"the last message at the fake; {received.requests:,} SendSms requests in all"
        if got_broadcast
        else "  nothing of the broadcast reached the fake"
    )
    print(
        f"  inbound: {len(acked):,} of {count:,} webhooks answered 200 OK in {elapsed:.1f} s"
        + (f" (other: {dict(not_ok)})" if not_ok else "")
        + f"; {len(during):,} of them sent while the broadcast was going out"
    )
    print(
        f"  webhook answer  during the broadcast: p50 {w50:.1f}  p99 {w99:.1f}  max {wmax:.1f} ms"
        f"   (all: p50 {a50:.1f}  p99 {a99:.1f} ms)"
    )
    print(
        f"  inbound → reply at the fake, during: p50 {r50:.1f}  p99 {r99:.1f}  max {rmax:.1f} ms"
        f"   (all: p50 {ra50:.1f}  p99 {ra99:.1f} ms)"
    )
    print(
        f"  before the broadcast ({len(before):,} webhooks, the machine's baseline): answer p50 "
        f"{b50:.1f}  p99 {b99:.1f} ms; reply p50 {rb50:.1f}  p99 {rb99:.1f} ms"
    )
    print(f"  replies: missing {len(lost)}, duplicated {doubled}")
    print(
        f"  CPU while the broadcast ran: responder {cpu['responder']:.0%} of a core, fake "
        f"{cpu['fake']:.0%}, the whole machine {cpu['machine']:.2f} of {os.cpu_count()} cores "
        "(the database server and other people's jobs included)"
    )
    ok = exact and not lost and not doubled and not not_ok and w99 < TARGET_WEBHOOK_P99_MS
    row = {
        "database": kind,
        "recipients": f"{args.recipients:,}",
        "exactly once": "yes" if exact else "NO",
        "broadcast": f"{duration:.1f} s, {args.recipients / duration:,.0f}/s"
        if got_broadcast
        else "-",
        "webhooks": f"{args.inbound_rate:g}/s, {len(during):,} during",
        "answer p50/p99 (before)": f"{w50:.1f} / {w99:.1f} ms ({b50:.1f} / {b99:.1f})",
        "reply p50/p99 (before)": f"{r50:.1f} / {r99:.1f} ms ({rb50:.1f} / {rb99:.1f})",
        "replies lost": str(len(lost) + doubled),
    }
    return Outcome(kind, ok, row)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--inbound-rate", type=float, default=30.0, help="webhooks a second")
    parser.add_argument("--seconds", type=float, default=100.0, help="of inbound webhooks")
    parser.add_argument("--lead", type=float, default=10.0, help="seconds before the broadcast")
    parser.add_argument(
        "--send-rate", type=float, default=0.0, help="settings.send_rate for massiva (0: none)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="for the broadcast")
    args = parser.parse_args()
    if args.recipients < 1 or args.inbound_rate <= 0 or args.seconds <= 0:
        parser.error("--recipients, --inbound-rate and --seconds must be positive")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    rate = f"send rate {args.send_rate:g}/s" if args.send_rate else "no send rate"
    print(
        f"broadcast bench: {args.recipients:,} recipients, {rate}; {args.inbound_rate:g} inbound "
        f"webhooks/s for {args.seconds:g} s; {os.cpu_count()} cores shared with whatever else runs"
    )
    work = Path(tempfile.mkdtemp(prefix="responder-broadcast-"))
    servers: list[Server] = []
    outcomes: list[Outcome] = []
    ok = False
    try:
        for kind in kinds:
            outcomes.append(run_one(args, kind, work, servers))
        ok = all(o.ok for o in outcomes)
        if outcomes:
            keys = list(outcomes[0].row)
            widths = {k: max(len(k), *(len(o.row[k]) for o in outcomes)) for k in keys}
            print("\n" + " | ".join(k.ljust(widths[k]) for k in keys))
            print("-|-".join("-" * widths[k] for k in keys))
            for o in outcomes:
                print(" | ".join(o.row[k].ljust(widths[k]) for k in keys))
            print(
                f"\nwebhook answer p99 target < {TARGET_WEBHOOK_P99_MS:g} ms, every recipient "
                f"exactly once, no reply lost: {'met' if ok else 'NOT met'}"
            )
    finally:
        ok = finish(servers, [], work, ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
