"""End-to-end reply latency: inbound webhook sent → auto-reply received by a fake Massiva.

    .venv/bin/python bench/latency.py [--rates 50,200] [--seconds 30] [--warmup 2]
                                      [--provider-delay MS]

For each rate, starts three processes on 127.0.0.1: a fake Massiva (bench/latency_fake.py:
tests/fakes' FakeMassiva, stamping the arrival time of every SMS it accepts), the real service
(`responder serve`, a temporary database, a rules file whose fallback echoes the message) and
an open-loop load generator (request i leaves at start + i / rate, whether or not earlier ones
were answered; keep-alive connections, opened as needed). Every inbound text is unique
(`m<run><n>`) and phones cycle over a pool, so the service's duplicate detection never merges
two. After the run it waits for the outbox to drain, then joins each acknowledged webhook with
its reply at the fake by the echoed id: latency = arrival at the fake − webhook sent (both
`time.time()`, one machine). Prints p50/p90/p99/max, the webhook's own answer latency, and
the loss check: every 200 `OK` got exactly one reply (missing, duplicates). Targets at
200/s: p50 < 20 ms, p99 < 100 ms. Stops everything, checks for leftovers, removes the
temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import re
import resource
import secrets
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.webhook import (  # noqa: E402
    HOST,
    Server,
    finish,
    free_port,
    machine_busy,
    phone_pool,
    start,
    wait_ready,
)

TARGET_RATE = 200.0
TARGET_P50_MS = 20.0
TARGET_P99_MS = 100.0
REQUEST_TIMEOUT = 30.0  # seconds a webhook may take before the generator gives up on it
GATEWAY_LINE = "584141000001"
REPLY_PREFIX = "Recibido "
ID_RE = re.compile(r"\bm\d+\b")
SLICE = 5.0  # seconds per slice of the p99-over-time line

RULES = """\
settings:
  timezone: America/Caracas
  reply_limit: {count: 1000000, per: 1h}
  loop_guard: {count: 1000000, per: 5m}
rules:
  - name: eco
    fallback: true
    reply: "Recibido {{ message.text }}"
"""


# -- processes ------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "MASS"))}


def start_fake(work: Path, delay: float, servers: list[Server]) -> Server:
    port = free_port()
    script = BENCH / "latency_fake.py"
    argv = [sys.executable, str(script), "--port", str(port), "--delay", f"{delay:g}"]
    server = start("fake-massiva", argv, clean_env(), work, f"{script} --port {port}", servers)
    wait_ready(server)
    return server


@dataclass
class Responder:
    server: Server
    database: Path
    webhook_token: str

    @property
    def inbound_path(self) -> str:
        return f"/webhooks/massiva/{self.webhook_token}/inbound"


def start_responder(work: Path, fake: Server, servers: list[Server]) -> Responder:
    (work / "rules.yaml").write_text(RULES, encoding="utf-8")
    (work / "templates").mkdir()
    port = free_port()
    webhook_token, admin_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = clean_env()
    env.update(
        RESPONDER_DATABASE=str(work / "responder.db"),
        RESPONDER_RULES=str(work / "rules.yaml"),
        RESPONDER_TEMPLATES=str(work / "templates"),
        RESPONDER_WEBHOOK_TOKEN=webhook_token,
        RESPONDER_ADMIN_TOKEN=admin_token,
        MASSIVA_URL=f"{fake.base}/webservices",
        MASSIVA_USER="demo@example.com",
        MASSIVA_PASSWORD="secret",
    )
    script = Path(sys.executable).with_name("responder")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "responder"]
    argv = [*command, "serve", "--host", HOST, "--port", str(port)]
    # cwd is the temporary folder: no stray `.env` is read.
    server = start("responder", argv, env, work, f"serve --host {HOST} --port {port}", servers)
    wait_ready(server)
    return Responder(server, work / "responder.db", webhook_token)


# -- load generator (its own process) -------------------------------------------------------


def message_id(run: int, index: int) -> str:
    return f"m{run}{index:06d}"


async def _generate(
    port: int, path: str, rate: float, count: int, run: int, pool: int
) -> dict[str, Any]:
    """Open loop: request i starts at t0 + i / rate. Returns per-request columns."""
    phones = phone_pool(pool)
    due = [0.0] * count  # scheduled send time
    sent = [0.0] * count  # time.time() just before the request went out
    answered = [0.0] * count
    status = [""] * count  # "200" (with body OK), another code, or "error:<Type>"
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0

    async def one(i: int) -> None:
        nonlocal opened
        query = urllib.parse.urlencode(
            {"msg": message_id(run, i), "phone": phones[i % len(phones)], "linea": GATEWAY_LINE}
        )
        request = f"GET {path}?{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
        conn = None
        while idle and conn is None:  # the most recently used first; drop ones the server closed
            reader, writer = idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
            else:
                conn = (reader, writer)
        sent[i] = time.time()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                if conn is None:
                    conn = await asyncio.open_connection(HOST, port)
                    opened += 1
                reader, writer = conn
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                code = int(head[9:12])
                length, keep = 0, True
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        keep = False
                body = await reader.readexactly(length)
                answered[i] = time.time()
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as err:
            answered[i] = time.time()
            status[i] = f"error:{type(err).__name__}"
            if conn is not None:
                conn[1].close()
            return
        status[i] = "200" if code == 200 and body == b"OK" else str(code)
        if keep:
            idle.append(conn)
        else:
            conn[1].close()

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.time() + 0.2
    tasks = []
    for i in range(count):
        due[i] = t0 + i / rate
        delay = due[i] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "due": due,
        "sent": sent,
        "answered": answered,
        "status": status,
        "connections": opened,
        "cpu": cpu,
    }


def _generator_process(job: tuple[int, str, float, int, int, int]) -> dict[str, Any]:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(_generate(*job))


def generate(responder: Responder, rate: float, count: int, run: int, pool: int) -> dict[str, Any]:
    job = (responder.server.port, responder.inbound_path, rate, count, run, pool)
    workers = multiprocessing.get_context("spawn").Pool(1)
    try:
        result: dict[str, Any] = workers.apply(_generator_process, (job,))
        workers.close()
    except BaseException:
        workers.terminate()
        raise
    finally:
        workers.join()
    return result


# -- the fake's records ---------------------------------------------------------------------


@dataclass
class Received:
    records: list[tuple[float, str, str, int]] = field(default_factory=list)
    requests: int = 0  # SendSms requests the fake answered

    def fetch(self, fake: Server) -> None:
        url = f"{fake.base}/bench/sent?since={len(self.records)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            data = json.load(answer)
        self.records += [tuple(r) for r in data["sent"]]
        self.requests = data["requests"]


def drain(
    fake: Server, received: Received, expected: set[str], timeout: float, settle: float
) -> float:
    """Polls the fake until every expected id has a reply (or `timeout`), then `settle` more
    seconds for late duplicates. Returns the seconds waited for the replies."""
    began = time.monotonic()
    deadline = began + timeout
    waited = timeout
    while time.monotonic() < deadline:
        received.fetch(fake)
        got = {m.group() for _, _, text, _ in received.records if (m := ID_RE.search(text))}
        if expected <= got:
            waited = time.monotonic() - began
            break
        time.sleep(0.2)
    time.sleep(settle)
    received.fetch(fake)
    return waited


# -- analysis -------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return math.nan
    return values[max(0, min(len(values) - 1, math.ceil(p / 100 * len(values)) - 1))]


def summary(values_s: list[float]) -> str:
    ms = sorted(v * 1000 for v in values_s)
    if not ms:
        return "no data"
    return (
        f"p50 {pct(ms, 50):.1f}  p90 {pct(ms, 90):.1f}  p99 {pct(ms, 99):.1f}  max {ms[-1]:.1f} ms"
    )


def database_counts(database: Path) -> dict[str, Any]:
    """Read-only, after the responder has stopped."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        inbound = db.execute("SELECT COUNT(*) FROM messages WHERE direction = 'in'").fetchone()[0]
        statuses = dict(
            db.execute(
                "SELECT status, COUNT(*) FROM messages WHERE direction = 'out' GROUP BY status"
            ).fetchall()
        )
        retried = db.execute(
            "SELECT COUNT(*) FROM messages WHERE direction = 'out' AND attempts > 1"
        ).fetchone()[0]
        errors = db.execute(
            "SELECT error, COUNT(*) FROM messages WHERE direction = 'out' AND error IS NOT NULL "
            "GROUP BY error ORDER BY 2 DESC LIMIT 5"
        ).fetchall()
        return {"inbound": inbound, "outbound": statuses, "retried": retried, "errors": errors}
    finally:
        db.close()


@dataclass
class Outcome:
    rate: float
    ok: bool
    p50_ms: float
    p99_ms: float
    achieved: float


def report(
    rate: float,
    warm: int,
    load: dict[str, Any],
    received: Received,
    run: int,
    phones: list[str],
    waited: float,
    cpu: dict[str, float],
    elapsed: float,
) -> Outcome:
    count = len(load["status"])
    due, sent, answered, status = load["due"], load["sent"], load["answered"], load["status"]
    ids = [message_id(run, i) for i in range(count)]
    acked = {ids[i]: i for i in range(count) if status[i] == "200"}
    others = Counter(s for s in status if s != "200")

    arrivals: dict[str, list[tuple[float, str]]] = {}
    unmatched = 0
    for at, phone, text, _ in received.records:
        match = ID_RE.search(text)
        if match is None or not text.startswith(REPLY_PREFIX):
            unmatched += 1
            continue
        arrivals.setdefault(match.group(), []).append((at, phone))
    missing = [m for m in acked if m not in arrivals]
    duplicates = sum(len(v) - 1 for v in arrivals.values() if len(v) > 1)
    duplicated_ids = sum(1 for v in arrivals.values() if len(v) > 1)
    unacked = [m for m in arrivals if m not in acked]  # a reply to a webhook not answered OK
    wrong_phone = sum(
        1
        for m, i in acked.items()
        if m in arrivals and any(p != phones[i % len(phones)] for _, p in arrivals[m])
    )

    measured = range(warm, count)
    e2e = [arrivals[ids[i]][0][0] - sent[i] for i in measured if ids[i] in arrivals]
    after_ok = [arrivals[ids[i]][0][0] - answered[i] for i in measured if ids[i] in arrivals]
    answer = [answered[i] - sent[i] for i in measured if status[i] == "200"]
    lag = [sent[i] - due[i] for i in measured]
    window = sent[count - 1] - sent[warm] if count - warm > 1 else 0.0
    achieved = (count - warm - 1) / window if window > 0 else 0.0
    last_answer = max(answered)
    last_reply = max((at for at, _, _, _ in received.records), default=last_answer)

    print(
        f"  load generator: {count - warm:,} webhooks in {window:.2f} s = {achieved:.1f}/s "
        f"achieved (target {rate:g}/s; +{warm:,} warm-up first); behind schedule "
        f"p99 {pct(sorted(lag), 99) * 1000:.1f} ms, max {max(lag) * 1000:.1f} ms; "
        f"{load['connections']} connection(s)"
    )
    if achieved < rate * 0.98 or max(lag) > 0.05:
        print("  NOTE: the generator fell behind its schedule (busy machine?): load was burstier")
    print(
        f"  webhook answers: {len(acked):,} x 200 OK of {count:,} sent"
        + (f"; other: {dict(others)}" if others else "; no other answers or errors")
    )
    print(f"  webhook answer latency:       {summary(answer)}")
    records = received.records
    batch_mean = len(records) / received.requests if received.requests else 0.0
    print(
        f"  replies at the fake: {len(records):,} in {received.requests:,} SendSms request(s) "
        f"({batch_mean:.2f} SMS each); last reply {round((last_reply - last_answer) * 1000):+d} ms "
        f"from the last webhook answer (all in after {waited:.1f} s of waiting)"
    )
    print(
        f"  end-to-end (sent → at fake): {summary(e2e)}   ({len(e2e):,} measured)\n"
        f"    of which after the OK:     {summary(after_ok)}"
    )
    slices: dict[int, list[float]] = {}
    for i in measured:
        if ids[i] in arrivals:
            key = int((due[i] - due[warm]) // SLICE)
            slices.setdefault(key, []).append(arrivals[ids[i]][0][0] - sent[i])
    line = "  ".join(f"{pct(sorted(v), 99) * 1000:.0f}" for _, v in sorted(slices.items()))
    print(f"    end-to-end p99 per {SLICE:g} s slice (ms): {line}")
    loss_ok = not missing and not duplicates and not unacked and not unmatched and not wrong_phone
    print(
        f"  loss check ({len(acked):,} acknowledged, warm-up included): "
        f"missing {len(missing)}, duplicates {duplicates} (over {duplicated_ids} id(s)), "
        f"replies to unacknowledged webhooks {len(unacked)}, unmatched texts {unmatched}, "
        f"wrong phone {wrong_phone} → {'OK' if loss_ok else 'FAIL'}"
    )
    if missing:
        print(f"    missing ids (first 10): {', '.join(missing[:10])}")
    if duplicated_ids:
        dup = [m for m, v in arrivals.items() if len(v) > 1][:5]
        print(f"    duplicated ids (first 5): {', '.join(dup)}")
    print(
        f"  CPU: responder {cpu['responder'] / elapsed:.0%} of a core, fake "
        f"{cpu['fake'] / elapsed:.0%}, generator {cpu['generator'] / elapsed:.0%}, "
        f"other processes {cpu['others'] / elapsed:.2f} core(s) (over {elapsed:.1f} s)"
    )
    p50 = pct(sorted(e2e), 50) * 1000 if e2e else math.inf
    p99 = pct(sorted(e2e), 99) * 1000 if e2e else math.inf
    return Outcome(rate, loss_ok and not others, p50, p99, achieved)


def describe_database(counts: dict[str, Any], acked: int) -> bool:
    outbound = counts["outbound"]
    print(
        f"  database after stop: {counts['inbound']:,} inbound, outbound by status {outbound}, "
        f"{counts['retried']} sent more than once (attempts > 1)"
    )
    for error, n in counts["errors"]:
        print(f"    outbound error x{n}: {error}")
    ok: bool = counts["inbound"] == acked and outbound.get("sent", 0) == acked
    if not ok:
        print("  FAIL: the database does not hold one inbound and one sent reply per 200 OK")
    return ok


def log_problems(server: Server) -> list[str]:
    text = server.log.read_text(errors="replace") if server.log.exists() else ""
    return [ln for ln in text.splitlines() if ln.startswith(("WARNING", "ERROR", "CRITICAL"))]


# -- main -----------------------------------------------------------------------------------


def run_rate(
    args: argparse.Namespace, rate: float, run: int, work: Path, servers: list[Server]
) -> Outcome:
    folder = work / f"rate-{rate:g}"
    folder.mkdir()
    fake = start_fake(folder, args.provider_delay / 1000, servers)
    responder = start_responder(folder, fake, servers)
    print(
        f"\n{rate:g} webhooks/s for {args.seconds:g} s (after {args.warmup:g} s warm-up): "
        f"fake Massiva pid {fake.proc.pid}, responder pid {responder.server.proc.pid}"
    )
    warm = round(rate * args.warmup)
    count = warm + round(rate * args.seconds)
    phones = phone_pool(args.pool)

    cpu0 = {"responder": responder.server.cpu_seconds(), "fake": fake.cpu_seconds()}
    machine0, began = machine_busy(), time.monotonic()
    load = generate(responder, rate, count, run, args.pool)
    elapsed = time.monotonic() - began
    cpu = {
        "responder": responder.server.cpu_seconds() - cpu0["responder"],
        "fake": fake.cpu_seconds() - cpu0["fake"],
        "generator": load["cpu"],
    }
    cpu["others"] = max(0.0, machine_busy() - machine0 - sum(cpu.values()))

    received = Received()
    expected = {message_id(run, i) for i, s in enumerate(load["status"]) if s == "200"}
    waited = drain(fake, received, expected, args.drain, settle=2.0)
    responder.server.stop()
    received.fetch(fake)  # anything sent while the responder shut down
    fake.stop()
    outcome = report(rate, warm, load, received, run, phones, waited, cpu, elapsed)
    outcome.ok &= describe_database(database_counts(responder.database), len(expected))
    problems = log_problems(responder.server)
    if problems:
        print(f"  responder log: {len(problems)} warning/error line(s), first ones:")
        for line in problems[:5]:
            print(f"    {line[:200]}")
    else:
        print("  responder log: no warnings or errors")
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,200", help="inbound webhooks per second, each")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load first")
    parser.add_argument("--pool", type=int, default=2000, help="distinct sender phones")
    parser.add_argument(
        "--provider-delay",
        type=float,
        default=0.0,
        metavar="MS",
        help="the fake answers SendSms this many ms late (a distant gateway); 0 by default",
    )
    parser.add_argument("--drain", type=float, default=15.0, help="seconds to wait for replies")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if not rates or any(r <= 0 for r in rates):
        parser.error("--rates: positive numbers, comma-separated")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(
        f"responder end-to-end latency bench: open-loop GET webhooks at {args.rates} per second, "
        f"{args.seconds:g} s each, {args.pool:,} sender phones, unique texts"
    )
    print(
        "latency = reply's arrival at the fake Massiva − webhook sent (time.time(), same "
        "machine); generator, responder and fake are separate processes on 127.0.0.1"
    )
    print(f"  This machine has {os.cpu_count()} cores, shared with whatever else runs.")
    if args.provider_delay:
        print(
            f"  the fake Massiva answers each SendSms {args.provider_delay:g} ms after it arrives "
            "(latency still ends at its arrival)"
        )

    work = Path(tempfile.mkdtemp(prefix="responder-latency-"))
    servers: list[Server] = []
    outcomes: list[Outcome] = []
    ok = True
    try:
        for run, rate in enumerate(rates, start=1):
            outcomes.append(run_rate(args, rate, run, work, servers))
        ok = all(o.ok for o in outcomes)
        print("\nsummary")
        for o in outcomes:
            verdict = ""
            if o.rate == TARGET_RATE:
                verdict = (
                    f"   p50 target < {TARGET_P50_MS:g} ms: "
                    f"{'met' if o.p50_ms < TARGET_P50_MS else 'NOT met'}, "
                    f"p99 target < {TARGET_P99_MS:g} ms: "
                    f"{'met' if o.p99_ms < TARGET_P99_MS else 'NOT met'}"
                )
            print(
                f"  {o.rate:>5g}/s (achieved {o.achieved:.1f}/s): end-to-end p50 "
                f"{o.p50_ms:.1f} ms, p99 {o.p99_ms:.1f} ms, "
                f"nothing lost or duplicated: {'yes' if o.ok else 'NO'}{verdict}"
            )
    finally:
        ok = finish(servers, [], work, ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
