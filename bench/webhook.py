"""Inbound-webhook throughput against a bare Starlette route, as a ratio (DESIGN.md §8).

    .venv/bin/python bench/webhook.py [--seconds 10] [--concurrency 50] [--post]
    .venv/bin/python bench/webhook.py --only webhook --database postgres [--instances 2]

Starts, each as its own process, the bare route (bench/bare_app.py under uvicorn, one worker,
uvloop + httptools) and the real service (`responder serve`, sandbox provider, a temporary
database), loads each with keep-alive connections from wrk (bench/webhook.lua) or, without wrk,
from a multi-process Python client, and prints requests/s, latency and the ratio. Only 200 `OK`
answers count. Afterwards it checks that every acknowledged webhook is in the database, stops
everything and removes the temporary folder. All traffic stays on 127.0.0.1.

With `--database postgres` the service runs on a throwaway database of the PostgreSQL server
RESPONDER_TEST_POSTGRES (default: this machine's), dropped afterwards; `--instances N` starts N
`responder serve` processes on it and loads each with its own wrk (its share of the
connections), as a load balancer in front of them would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
HOST = "127.0.0.1"
PARKED_TAIL = 2  # seconds wrk keeps running after the window, so every answer comes back


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    marker: str  # a string unique to its command line, for the leftover check

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server so far, all threads (the SQLite thread too)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down gracefully, the lifespan closes the store), then KILL."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} did not stop in 20 s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start(
    name: str, argv: list[str], env: dict[str, str], cwd: Path, marker: str, servers: list[Server]
) -> Server:
    """Starts a server and registers it in `servers` at once, so clean-up always finds it."""
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    port = int(argv[argv.index("--port") + 1])
    server = Server(name, port, proc, log, marker)
    servers.append(server)
    return server


def wait_ready(server: Server, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log.read_text(errors="replace")
        if server.proc.poll() is not None or "Application startup failed" in log:
            raise SystemExit(f"{server.name} failed to start:\n{log[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.base}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    tail = server.log.read_text()[-3000:]
    raise SystemExit(f"{server.name} did not answer /healthz in {timeout:.0f} s:\n{tail}")


def start_bare(work: Path, servers: list[Server]) -> Server:
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH), "bare_app:app",
        "--host", HOST, "--port", str(port), "--workers", "1", "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "MASS"))}
    server = start("bare", argv, env, work, f"bare_app:app --host {HOST} --port {port}", servers)
    wait_ready(server)
    return server


@dataclass
class Responder:
    servers: list[Server]  # one per instance, all on `database`
    database: str  # a SQLite file or a postgresql:// URL
    webhook_token: str
    admin_token: str

    @property
    def server(self) -> Server:
        return self.servers[0]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_server() -> str:
    return os.environ.get("RESPONDER_TEST_POSTGRES") or DEFAULT_POSTGRES


def with_database(url: str, name: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))


def postgres_admin(statement: str) -> None:
    """One statement on the server's maintenance database (CREATE / DROP DATABASE)."""
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(postgres_server(), timeout=10)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def copy_postgres_database(source: str, copy: str) -> None:
    """`copy` made by PostgreSQL from `source` (no other session on it), file by file.
    PostgreSQL 15's default copy (STRATEGY WAL_LOG) writes the whole database into the WAL:
    gigabytes for `large`, and the checkpoints that followed ran through the measured load
    (seconds with a p99 of 100-400 ms in bench/steady.py)."""
    postgres_admin(f'CREATE DATABASE "{copy}" TEMPLATE "{source}" STRATEGY FILE_COPY')


def create_postgres_database() -> tuple[str, str]:
    name = f"responder_bench_{uuid.uuid4().hex[:12]}"
    postgres_admin(f'CREATE DATABASE "{name}"')
    return name, with_database(postgres_server(), name)


def drop_postgres_database(name: str) -> None:
    postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def export(ref: str, work: Path) -> Path:
    """The package, rules and templates as committed at `ref`, read-only from git."""
    folder = work / f"src-{ref.replace('/', '_')}"
    folder.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "responder", "rules.yaml", "templates"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def start_responder(
    work: Path,
    ref: str | None,
    servers: list[Server],
    database: str,
    instances: int = 1,
    rules_ref: str | None = None,
) -> Responder:
    """`rules_ref`: the rules and templates as committed there (default: those of `ref`, or
    the working tree's), so two versions of the code can answer with the same rules."""
    source = export(ref, work) if ref else ROOT
    rules_source = export(rules_ref, work / "rules") if rules_ref else source
    shutil.copy(rules_source / "rules.yaml", work / "rules.yaml")
    shutil.copytree(rules_source / "templates", work / "templates")
    webhook_token, admin_token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "MASS"))}
    env.update(
        RESPONDER_DATABASE=database,
        RESPONDER_RULES=str(work / "rules.yaml"),
        RESPONDER_TEMPLATES=str(work / "templates"),
        RESPONDER_WEBHOOK_TOKEN=webhook_token,
        RESPONDER_ADMIN_TOKEN=admin_token,
    )
    if ref:  # ahead of the editable install of the working tree
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    script = Path(sys.executable).with_name("responder")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "responder"]
    started = []
    for number in range(1, instances + 1):  # one after the other: the first one migrates
        port = free_port()
        argv = [*command, "serve", "--host", HOST, "--port", str(port)]
        name = "responder" if instances == 1 else f"responder-{number}"
        spool = {"RESPONDER_SPOOL": str(work / f"spool-{number}")}
        # cwd is the temporary folder: no stray `.env` with provider credentials is read.
        marker = f"serve --host {HOST} --port {port}"
        server = start(name, argv, env | spool, work, marker, servers)
        wait_ready(server)
        started.append(server)
    return Responder(started, database, webhook_token, admin_token)


def profile(server: Server, seconds: float, out: str) -> subprocess.Popen[bytes]:
    """py-spy samples the server while it is loaded; per-thread stacks (loop vs SQLite)."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    argv = [
        py_spy, "record", "--pid", str(server.proc.pid), "--duration", str(math.ceil(seconds)),
        "--rate", "200", "--nonblocking", "--threads", "--output", out,
        "--format", "flamegraph" if out.endswith(".svg") else "raw",
    ]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def leftovers(markers: list[str]) -> list[str]:
    found = []
    for marker in markers:
        out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
        found += [line for line in out.splitlines() if line and "pgrep" not in line]
    return found


# -- load -----------------------------------------------------------------------------------


@dataclass
class Load:
    generator: str
    acked: int = 0  # 200 answers with body `OK`
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    window: float = 0.0  # first request sent .. last answer received
    latency_ms: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0  # seconds of CPU the load generator used
    server_cpu: float = 0.0  # seconds of CPU the server used meanwhile
    machine_cpu: float = 0.0  # seconds of CPU all processes used meanwhile
    elapsed: float = 0.0  # wall time of the whole load run, parked tail included

    @property
    def rate(self) -> float:
        return self.acked / self.window if self.window else 0.0

    @property
    def not_ok(self) -> int:
        return sum(n for code, n in self.statuses.items() if code != "200") + (
            self.statuses.get("200", 0) - self.acked
        )


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, all processes)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(servers: list[Server], path: str, args: argparse.Namespace, window: float) -> Load:
    """One wrk per server, at once, each with its share of the connections and its own run
    number (its own gateway lines: two wrk never send the same webhook)."""
    duration = math.ceil(window) + PARKED_TAIL
    shares = [args.concurrency // len(servers) + (i < args.concurrency % len(servers))
              for i in range(len(servers))]  # fmt: skip
    argvs = [
        [
            "wrk",
            f"-t{args.threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "30s",
            "-s",
            str(BENCH / "webhook.lua"),
            server.base,
            "--",
            path,
            "post" if args.post else "get",
            f"{window}",
            str(args.pool),
            str(args.threads),
            str(next(RUNS)),
        ]
        for server, connections in zip(servers, shares, strict=True)
    ]
    cpu0, machine0 = children_cpu(), machine_busy()
    server_cpu0 = sum(s.cpu_seconds() for s in servers)
    began = time.monotonic()
    runs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for a in argvs]  # fmt: skip
    outputs = [run.communicate(timeout=duration + 60) for run in runs]
    elapsed = time.monotonic() - began
    cpu1, machine1 = children_cpu(), machine_busy()
    server_cpu1 = sum(s.cpu_seconds() for s in servers)
    results = []
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        lines = [ln for ln in stdout.splitlines() if ln.startswith("BENCH_JSON ")]
        if run.returncode != 0 or not lines:
            raise SystemExit(f"wrk failed ({run.returncode}):\n{stdout}\n{stderr}")
        results.append(json.loads(lines[-1].removeprefix("BENCH_JSON ")))
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for data in results:
        for code, n in data["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
        for kind, n in data["errors"].items():
            if kind != "status":
                errors[kind] = errors.get(kind, 0) + n
    sent = sum(d["sent"] for d in results)
    # Percentiles of several runs cannot be merged exactly: the worst instance's are shown.
    latency_ms = {k: max(d["latency_us"][k] for d in results) / 1000
                  for k in ("p50", "p90", "p99", "p999", "max")}  # fmt: skip
    latency_ms["mean"] = (
        sum(d["latency_us"]["mean"] * d["sent"] for d in results) / max(1, sent) / 1000
    )
    return Load(
        "wrk",
        acked=sum(d["acked"] for d in results),
        sent=sent,
        statuses=statuses,
        errors=errors,
        window=max(d["window"] for d in results),
        latency_ms=latency_ms,
        client_cpu=cpu1 - cpu0,
        server_cpu=server_cpu1 - server_cpu0,
        machine_cpu=machine1 - machine0,
        elapsed=elapsed,
    )


# The Python fallback generates the same kind of traffic as webhook.lua.
TEXTS = (
    "horario", "Horario", "a que hora abren", "¿A qué hora cierran?", "abren el sabado?",
    "horaro", "hoario por favor", "precio cafe", "PRECIO CAFE", "precio te", "precio torta",
    "precio jugo", "precio pizza", "precio empanada", "cuanto cuesta el cafe", "precios",
    "costo del envio", "hola", "Hola", "buenas", "buenos dias", "buenas tardes",
    "hola quiero precio", "donde estan", "direccion", "¿Dónde están ubicados?", "como llego",
    "asesor", "quiero hablar con una persona", "gracias", "ok", "Mañana paso por ahí", "sí", "no",
    "¿tienen delivery?", "me interesa", "info", "Buenas noches, ¿siguen abiertos?",
)  # fmt: skip
RARE = ("asesor", "quiero hablar con una persona")
SYLLABLES = (
    "ma", "pe", "lo", "ra", "ti", "que", "so", "ña", "ca", "fe", "do", "xu", "ber", "tal",
    "zo", "mi", "gu", "chi", "lle", "vo", "ar", "en", "os", "ji",
)  # fmt: skip
RUNS = itertools.count()  # each load run has its own gateway lines: see lines()
PREFIXES = ("58412", "58412", "58412", "58414", "58424", "58416", "58426")


def lines(run: int) -> tuple[str, ...]:
    """Three gateway lines per run, cycling over ten sets (as webhook.lua)."""
    return tuple(f"5841410{(run % 10) * 3 + j:05d}" for j in range(3))


def phone_pool(size: int) -> list[str]:
    return [
        PREFIXES[i % len(PREFIXES)] + f"{(i * 7919 + 1234567) % 10_000_000:07d}"
        for i in range(1, size + 1)
    ]


def junk_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def sms_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return " ".join(junk_word(rng) for _ in range(rng.randint(1, 4)))
    base = rng.choice(TEXTS)
    while base in RARE and rng.random() >= 0.15:
        base = rng.choice(TEXTS)
    if roll < 0.55:
        base += " " + junk_word(rng)
        if roll < 0.3:
            base += " " + junk_word(rng)
    return base


FRESH = 15.0  # seconds before a (phone, linea, msg) may come again: see webhook.lua


def fresh_fields(
    rng: random.Random, seen: dict[str, float], now: float, gateway_lines: tuple[str, ...]
) -> tuple[str, str]:
    """A text and line this phone has not sent in FRESH seconds (the service would take a
    repeat for the gateway retrying and store it once)."""
    if len(seen) > 64:
        for key in [k for k, at in seen.items() if now - at > FRESH]:
            del seen[key]
    msg, line = sms_text(rng), rng.choice(gateway_lines)
    tries = 0
    while now - seen.get(f"{line}|{msg}", -FRESH - 1) <= FRESH:
        tries += 1
        if tries < 10:
            msg, line = sms_text(rng), rng.choice(gateway_lines)
        else:
            msg += " " + junk_word(rng)
    seen[f"{line}|{msg}"] = now
    return msg, line


async def _client(
    port: int,
    path: str,
    post: bool,
    connections: int,
    window: float,
    pool: int,
    seed: int,
    share: tuple[int, int],
    run: int,
) -> dict[str, Any]:
    rng = random.Random(seed)
    # this process's own phones, so processes cannot repeat each other
    phones = phone_pool(pool)[share[0] :: share[1]]
    recent: dict[str, dict[str, float]] = {}
    gateway_lines = lines(run)
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    acked = sent = 0
    errors = 0
    first = time.monotonic()
    last = first
    deadline = first + window

    def build() -> bytes:
        phone = rng.choice(phones)
        seen = recent.setdefault(phone, {})
        msg, line = fresh_fields(rng, seen, time.monotonic(), gateway_lines)
        fields = urllib.parse.urlencode(
            {"msg": msg, "phone": phone, "linea": line, "email": "ventas@example.com"}
        )
        if post:
            body = fields.encode()
            return (
                f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
        return f"GET {path}?{fields} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()

    async def connection() -> None:
        nonlocal acked, sent, errors, last
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while time.monotonic() < deadline:
                began = time.monotonic()
                writer.write(build())
                sent += 1
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1].decode()
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                ended = time.monotonic()
                latencies.append(ended - began)
                statuses[status] = statuses.get(status, 0) + 1
                if status == "200" and body == b"OK":
                    acked += 1
                    last = ended
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return {
        "acked": acked,
        "sent": sent,
        "statuses": statuses,
        "errors": errors,
        "first": first,
        "last": last,
        "latencies": latencies,
    }


def _client_process(
    job: tuple[int, str, bool, int, float, int, int, tuple[int, int], int],
) -> dict[str, Any]:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(_client(*job))


def run_python(servers: list[Server], path: str, args: argparse.Namespace, window: float) -> Load:
    """Client processes, shared round-robin over the servers."""
    processes = max(1, args.threads, len(servers))
    share = [args.concurrency // processes + (i < args.concurrency % processes) for i in
             range(processes)]  # fmt: skip
    seed, run = int(time.time()), next(RUNS)
    jobs = [
        (servers[i % len(servers)].port, path, args.post, n, window, args.pool, seed + i,
         (i, processes), run)
        for i, n in enumerate(share)
    ]  # fmt: skip
    cpu0, machine0 = children_cpu(), machine_busy()
    server_cpu0 = sum(s.cpu_seconds() for s in servers)
    began = time.monotonic()
    workers = multiprocessing.get_context("spawn").Pool(len(jobs))
    try:
        results = workers.map(_client_process, jobs)
        workers.close()
    except BaseException:
        workers.terminate()
        raise
    finally:
        workers.join()  # reaped: their CPU shows in RUSAGE_CHILDREN
    elapsed = time.monotonic() - began
    client_cpu = children_cpu() - cpu0
    machine_cpu = machine_busy() - machine0
    statuses: dict[str, int] = {}
    for result in results:
        for code, n in result["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    latencies = sorted(x for r in results for x in r["latencies"])

    def pct(p: float) -> float:
        return float(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]) * 1000

    return Load(
        "python",
        acked=sum(r["acked"] for r in results),
        sent=sum(r["sent"] for r in results),
        statuses=statuses,
        errors={"socket": sum(r["errors"] for r in results)},
        window=max(r["last"] for r in results) - min(r["first"] for r in results),
        latency_ms={k: pct(p) for k, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9))}
        | {"max": latencies[-1] * 1000, "mean": sum(latencies) / len(latencies) * 1000}
        if latencies
        else {},
        client_cpu=client_cpu,
        server_cpu=sum(s.cpu_seconds() for s in servers) - server_cpu0,
        machine_cpu=machine_cpu,
        elapsed=elapsed,
    )


def load(servers: list[Server], path: str, args: argparse.Namespace, window: float) -> Load:
    if args.generator == "wrk":
        return run_wrk(servers, path, args, window)
    return run_python(servers, path, args, window)


# -- checks ---------------------------------------------------------------------------------


def api_unread_total(responder: Responder) -> tuple[int, int]:
    """(conversations, sum of unread) from GET /api/conversations, 500 per page."""
    conversations = unread = 0
    offset = 0
    while True:
        request = urllib.request.Request(
            f"{responder.server.base}/api/conversations?limit=500&offset={offset}",
            headers={"Authorization": f"Bearer {responder.admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            page = json.load(answer)["conversations"]
        conversations += len(page)
        unread += sum(c["unread"] for c in page)
        if len(page) < 500:
            return conversations, unread
        offset += 500


COUNTS = {
    "inbound": "SELECT COUNT(*) FROM messages WHERE direction = 'in'",
    "outbound": "SELECT COUNT(*) FROM messages WHERE direction = 'out'",
    "outbound_delivered": (
        "SELECT COUNT(*) FROM messages WHERE direction = 'out' AND status = 'delivered'"
    ),
    "contacts": "SELECT COUNT(*) FROM contacts",
    "human_mode": "SELECT COUNT(*) FROM contacts WHERE mode = 'human'",
    "rejected": "SELECT COUNT(*) FROM rejected_webhooks",
    "decision_errors": (
        "SELECT COUNT(*) FROM messages WHERE direction = 'in' AND error IS NOT NULL"
    ),
}


def database_counts(database: str) -> dict[str, int]:
    """Counts read from the database itself after the servers have stopped."""
    if database.startswith("postgresql://"):
        return postgres_counts(database)
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return {name: int(db.execute(sql).fetchone()[0]) for name, sql in COUNTS.items()}
    finally:
        db.close()


def postgres_counts(url: str) -> dict[str, int]:
    import asyncpg

    async def run() -> dict[str, int]:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return {name: int(await connection.fetchval(sql)) for name, sql in COUNTS.items()}
        finally:
            await connection.close()

    return asyncio.run(run())


# -- report ---------------------------------------------------------------------------------


def describe(name: str, result: Load) -> None:
    lat = result.latency_ms
    print(
        f"  {name:<16} {result.rate:>9,.0f} req/s   {result.acked:>8,} x 200 OK "
        f"in {result.window:5.2f} s   non-200: {result.not_ok}"
        + (f" {result.statuses}" if result.not_ok else "")
    )
    if lat:
        print(
            f"  {'':<16} latency p50 {lat['p50']:.2f} ms  p90 {lat['p90']:.2f} ms  "
            f"p99 {lat['p99']:.2f} ms  p99.9 {lat['p999']:.2f} ms  max {lat['max']:.1f} ms"
        )
    errors = {k: v for k, v in result.errors.items() if v}
    per_request = result.server_cpu / result.acked * 1e6 if result.acked else 0.0
    others = max(0.0, result.machine_cpu - result.server_cpu - result.client_cpu)
    print(
        f"  {'':<16} server CPU {per_request:.0f} us/request "
        f"({result.server_cpu / result.window:.0%} of a core), "
        f"{result.generator} {result.client_cpu / result.window:.0%}, "
        f"other processes {others / result.elapsed:.2f} core(s)"
        + (f"   socket errors: {errors}" if errors else "")
    )


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def verify(responder: Responder, acked: int, errors: int) -> bool:
    """Every 200 `OK` has its inbound row: read through the API, then from the file itself."""
    conversations, unread = api_unread_total(responder)
    responder.stop()
    counts = database_counts(responder.database)
    print("\nnothing acknowledged was lost?")
    print(
        f"  200 OK answers (warm-up included): {acked:,}; inbound rows in the database: "
        f"{counts['inbound']:,}; API: {conversations:,} conversations, sum of unread {unread:,}"
    )
    print(
        f"  auto-replies stored: {counts['outbound']:,} "
        f"({counts['outbound_delivered']:,} delivered by the sandbox); "
        f"contacts in human mode: {counts['human_mode']:,}; "
        f"rejected webhooks: {counts['rejected']:,}; decision errors: {counts['decision_errors']:,}"
    )
    ok = counts["inbound"] >= acked
    if counts["inbound"] == acked:
        print("  OK: every acknowledged message is stored, and nothing else was")
    elif counts["inbound"] < acked:
        print(f"  FAIL: {acked - counts['inbound']:,} acknowledged message(s) are missing")
        print("  (a phone + linea + msg repeated within dedupe_window is stored once by design;")
        print("  the load generators never repeat one within 15 s)")
    else:
        # Only a request whose answer never arrived (a socket error) may be stored without
        # a 200: the load generators wait for every answer before they stop.
        ok = counts["inbound"] - acked <= errors
        print(
            f"  {'OK' if ok else 'FAIL'}: {counts['inbound'] - acked:,} stored without a 200 "
            f"seen ({errors} socket error(s))"
        )
    if unread != counts["inbound"]:
        print(f"  note: the API's unread sum ({unread:,}) differs from the inbound rows")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per target")
    parser.add_argument("--concurrency", type=int, default=50, help="keep-alive connections")
    parser.add_argument("--post", action="store_true", help="POST form bodies instead of GET")
    parser.add_argument("--rounds", type=int, default=1, help="bare/webhook pairs, alternating")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load first")
    parser.add_argument("--pool", type=int, default=5000, help="distinct sender phones")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads / client processes")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--only", choices=("both", "bare", "webhook"), default="both", help="targets to load"
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="a SQLite file, or a throwaway database on RESPONDER_TEST_POSTGRES's server",
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="responder processes on the one database"
    )
    parser.add_argument(
        "--rules-ref",
        help="answer with rules.yaml and templates/ as committed at this git ref",
    )
    parser.add_argument(
        "--ref",
        help="run the responder as committed at this git ref (e.g. HEAD), not the working tree",
    )
    parser.add_argument(
        "--profile",
        metavar="SVG",
        help="py-spy record the responder's last run: .svg flame graph, else collapsed stacks",
    )
    args = parser.parse_args()
    if args.generator == "auto":
        args.generator = "wrk" if shutil.which("wrk") else "python"
    args.threads = max(1, min(args.threads, args.concurrency))
    # A SIGTERM to the bench runs the same clean-up as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    method = "POST form" if args.post else "GET query"
    print(
        f"responder webhook bench: {method}, {args.concurrency} keep-alive connections, "
        f"{args.seconds:g} s measured per run after {args.warmup:g} s warm-up, "
        f"{args.rounds} round(s), {args.pool:,} sender phones"
    )
    print(
        f"load generator: {args.generator} ({args.threads} thread(s)) in its own process; each "
        f"server is another process (uvicorn, 1 worker, uvloop + httptools)."
    )
    print(
        f"  This machine has {os.cpu_count()} cores, shared by client, server and whatever else "
        "runs: both figures are for client and server on the same box."
    )
    if args.ref:
        sha = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", args.ref],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        print(f"responder code: {args.ref} ({sha}), exported with git archive")
    else:
        print("responder code: the working tree")
    if args.generator == "python":
        print("  (no wrk: the Python client may be the bottleneck; `apt-get install wrk`)")

    if args.database == "sqlite" and args.instances > 1:
        print(f"  {args.instances} instances on one SQLite file (not the deployment we advise)")
    work = Path(tempfile.mkdtemp(prefix="responder-bench-"))
    servers: list[Server] = []
    pg_name = None
    helpers: list[subprocess.Popen[bytes]] = []  # py-spy
    ok = True
    try:
        bare = responder = None
        bare_path = "/webhooks/massiva/" + "x" * 32 + "/inbound"
        if args.only in ("both", "bare"):
            bare = start_bare(work, servers)
        if args.only in ("both", "webhook"):
            if args.database == "postgres":
                pg_name, database = create_postgres_database()
                print(f"PostgreSQL: {with_database(postgres_server(), pg_name)} (dropped after)")
            else:
                database = str(work / "responder.db")
            responder = start_responder(
                work, args.ref, servers, database, args.instances, args.rules_ref
            )
            print(f"responder instances: {len(responder.servers)} on {args.database}")
        hook_path = f"/webhooks/massiva/{responder.webhook_token}/inbound" if responder else ""

        acked = errors = 0
        if args.warmup > 0:
            if bare:
                load([bare], bare_path, args, args.warmup)
            if responder:
                warm = load(responder.servers, hook_path, args, args.warmup)
                acked, errors = warm.acked, sum(warm.errors.values())

        rates: dict[str, list[float]] = {"bare": [], "hook": []}
        for round_ in range(1, args.rounds + 1):
            print(f"\nround {round_}")
            if bare:
                result = load([bare], bare_path, args, args.seconds)
                rates["bare"].append(result.rate)
                describe("bare route", result)
            if responder:
                profiler = None
                if args.profile and round_ == args.rounds:
                    profiler = profile(responder.server, args.seconds, args.profile)
                    helpers.append(profiler)
                result = load(responder.servers, hook_path, args, args.seconds)
                if profiler is not None:
                    profiler.wait(timeout=60)
                    print(f"  py-spy profile of this run: {args.profile}")
                rates["hook"].append(result.rate)
                acked += result.acked
                errors += sum(result.errors.values())
                describe("inbound webhook", result)
            if bare and responder:
                print(f"  ratio            {rates['hook'][-1] / rates['bare'][-1]:.2f}x")

        if bare:
            bare.stop()
        if responder:
            ok = verify(responder, acked, errors)

        if rates["bare"] and rates["hook"]:
            bare_rate, hook_rate = median(rates["bare"]), median(rates["hook"])
            ratio = hook_rate / bare_rate
            label = "median of " if args.rounds > 1 else ""
            print(
                f"\nratio webhook / bare ({label}{args.rounds} run(s)): {ratio:.2f}x  "
                f"({hook_rate:,.0f} / {bare_rate:,.0f} req/s) - "
                f"{'meets' if ratio >= 0.25 else 'BELOW'} the 0.25x target; "
                f"product goal 0.5x {'met' if ratio >= 0.5 else 'not met'}"
            )
    finally:
        for helper in helpers:
            if helper.poll() is None:
                helper.terminate()
                helper.wait(timeout=10)
        markers = [str(BENCH / "webhook.lua")]
        markers += [f"record --pid {s.proc.pid} " for s in servers]
        ok = finish(servers, markers, work, ok)
        if pg_name:
            drop_postgres_database(pg_name)
    return 0 if ok else 1


def finish(servers: list[Server], markers: list[str], work: Path, ok: bool) -> bool:
    """Stops the servers, checks nothing is left running, shows logs after a failure, removes
    the work folder; False when anything went wrong."""
    for server in servers:
        server.stop()
    left = leftovers([s.marker for s in servers] + markers)
    if left:
        ok = False
        print("leftover processes:\n  " + "\n  ".join(left))
    else:
        print("\nstopped: no leftover processes (pgrep -f)")
    if not ok:
        for server in servers:
            if server.log.exists():
                tail = server.log.read_text(errors="replace")[-2000:]
                print(f"--- {server.name} log (tail) ---\n{tail}")
    shutil.rmtree(work, ignore_errors=True)
    print(f"removed {work}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
