"""Steady load: webhooks at a fixed rate against a real `responder serve` on a big database,
latency counted from each request's scheduled moment, and the server's garbage collector
pauses read from its own /metrics.

    nice -n 10 .venv/bin/python bench/steady.py --database sqlite:/work/scale/large.sqlite
    nice -n 10 .venv/bin/python bench/steady.py \\
        --database postgres:postgresql://postgres@127.0.0.1:5432/responder_scale_large
    # PostgreSQL with two instances (two `responder serve`), the load spread over them
    .venv/bin/python bench/steady.py --instances 2 --database postgres:postgresql://…

Open loop: request i is due at t0 + i / rate whether or not earlier ones were answered, and
its latency runs from that due moment to the last byte of the answer, so a stall of the server
(or of the generator) shows in every request it delays: coordinated omission is counted. The
generator is its own process (uvloop, raw asyncio streams, keep-alive connections opened
before the start and reused, every request built beforehand); it reports how late it sent
(`lag`), so a generator that cannot keep up is seen, not mistaken for the server.

Numbers: `--numbers` distinct senders (random picks, so most numbers send once or twice in a
run, as many customers do), texts like customers' (the bundled rules answer them), all unique
(no duplicate merging). The server runs the bundled rules.yaml with the sandbox provider, so
every webhook's reply is also sent and recorded by the outbox worker in the same process.

SQLite: the server runs on a copy of the file in a temporary folder (removed after); with
--in-place, on the file itself. PostgreSQL: on the database itself (it gets the webhooks'
messages: use a copy made for this, e.g. `bench/scale.py copy`).

Prints p50 / p99 / p99.9 / max of the latency (after `--warmup` seconds), the generator's lag,
errors, the rate achieved, and the GC pauses during the measured window by generation
(count, total, over 10 ms, longest), from `responder_gc_pause_seconds`.
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
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from bench.scale import (  # noqa: E402
    ADMIN_TOKEN,
    RULE_TEXTS,
    WEBHOOK_TOKEN,
    Served,
    free_text,
    serve,
)
from bench.webhook import (  # noqa: E402
    copy_postgres_database,
    export,
    postgres_admin,
    with_database,
)

HOST = "127.0.0.1"
LINE = "584141000001"
TIMEOUT = 30.0
TARGET_P99_MS = 20.0
GC_TARGET_MS = 10.0


# -- the generator (its own process) ------------------------------------------------------------


def build_requests(port: int, count: int, numbers: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    path = f"/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"
    requests = []
    for i in range(count):
        phone = f"58416{rng.randrange(numbers):07d}"
        text = rng.choice(RULE_TEXTS) if rng.random() < 0.6 else free_text(rng)
        query = urllib.parse.urlencode(
            {"msg": f"{text} ({seed}-{i})", "phone": phone, "linea": LINE}
        )
        requests.append(f"GET {path}?{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
    return requests


async def _generate(
    ports: list[int],
    rate: float,
    warmup: float,
    seconds: float,
    numbers: int,
    seed: int,
    connections: int,
) -> dict[str, Any]:
    count = int(rate * (warmup + seconds))
    requests = build_requests(ports[0], count, numbers, seed)
    loop = asyncio.get_running_loop()
    due = [0.0] * count
    sent = [0.0] * count
    answered = [0.0] * count
    status = [0] * count  # HTTP status, or -1 for an error
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened = 0
    # Several instances: the connections are spread over them, as a balancer would.
    for n in range(connections):
        idle.append(await asyncio.open_connection(HOST, ports[n % len(ports)]))
        opened += 1

    def reuse() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while idle:  # the most recently used first; one the server closed is dropped
            reader, writer = idle.pop()
            if not (reader.at_eof() or writer.is_closing()):
                return reader, writer
            writer.close()
        return None

    async def one(i: int, retry: bool = True) -> None:
        nonlocal opened
        conn = reuse()
        reused = conn is not None
        if retry:
            sent[i] = loop.time()
        try:
            async with asyncio.timeout(TIMEOUT):
                if conn is None:
                    conn = await asyncio.open_connection(HOST, ports[opened % len(ports)])
                    opened += 1
                reader, writer = conn
                writer.write(requests[i])
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                keep = True
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"connection" and value.strip().lower() == b"close":
                        keep = False
                await reader.readexactly(length)
                answered[i] = loop.time()
                status[i] = int(head[9:12])
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as err:
            if conn is not None:
                conn[1].close()
            nothing = isinstance(err, asyncio.IncompleteReadError) and not err.partial
            if retry and reused and (nothing or isinstance(err, ConnectionResetError)):
                # A kept-alive connection the server had closed meanwhile (idle too long):
                # sent again on a new one, still timed from its due moment.
                await one(i, retry=False)
                return
            answered[i] = loop.time()
            status[i] = -1
            return
        if keep:
            idle.append(conn)
        else:
            conn[1].close()

    async def scrape(at: float) -> list[str]:
        """GET /metrics of every instance at `at`: the GC counters at that moment."""
        await asyncio.sleep(max(0.0, at - loop.time()))
        return list(await asyncio.gather(*(scrape_one(port) for port in ports)))

    async def scrape_one(port: int) -> str:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(
                f"GET /metrics HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                f"Authorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n".encode()
            )
            return (await reader.read()).decode(errors="replace")
        finally:
            writer.close()

    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    tasks = set()
    t0 = loop.time() + 0.2
    before = asyncio.create_task(scrape(t0 + warmup))
    i = 0
    while i < count:
        now = loop.time()
        while i < count and t0 + i / rate <= now:
            due[i] = t0 + i / rate
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < count:
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
    while tasks:
        await asyncio.gather(*list(tasks))
    after = await scrape(0.0)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    for _, writer in idle:
        writer.close()
    cpu = usage1.ru_utime - usage0.ru_utime + usage1.ru_stime - usage0.ru_stime
    return {
        "due": due,
        "sent": sent,
        "answered": answered,
        "status": status,
        "connections": opened,
        "cpu": cpu,
        "t0": t0,
        "metrics_before": await before,
        "metrics_after": after,
    }


def _generator_process(
    job: tuple[list[int], float, float, float, int, int, int],
) -> dict[str, Any]:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    return asyncio.run(_generate(*job))


def generate(ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    job = (ports, args.rate, args.warmup, args.seconds, args.numbers, args.seed, args.connections)
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        result: dict[str, Any] = pool.apply(_generator_process, (job,))
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return result


# -- the server's GC pauses -----------------------------------------------------------------------

SAMPLE = re.compile(r"^(responder_gc_\w+)\{([^}]*)\} ([0-9.e+-]+|\+Inf|NaN)$", re.M)


def gc_figures(text: str) -> dict[str, dict[str, float]]:
    """Per generation: count, sum (s), le_0.01 (pauses up to 10 ms), max (s), from /metrics."""
    found: dict[str, dict[str, float]] = {}
    for name, labels, value in SAMPLE.findall(text):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        generation = fields.get("generation")
        if generation is None:
            continue
        row = found.setdefault(generation, {})
        if name == "responder_gc_pause_seconds_count":
            row["count"] = float(value)
        elif name == "responder_gc_pause_seconds_sum":
            row["sum"] = float(value)
        elif name == "responder_gc_pause_seconds_bucket" and fields.get("le") == "0.01":
            row["le_0.01"] = float(value)
        elif name == "responder_gc_pause_max_seconds":
            row["max"] = float(value)
        elif name == "responder_gc_cpu_seconds_total":
            row["cpu"] = float(value)
    return found


def gc_delta(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    delta: dict[str, dict[str, float]] = {}
    for generation, row in after.items():
        old = before.get(generation, {})
        count = row.get("count", 0) - old.get("count", 0)
        over = count - (row.get("le_0.01", 0) - old.get("le_0.01", 0))
        delta[generation] = {
            "count": count,
            "total_ms": (row.get("sum", 0) - old.get("sum", 0)) * 1000,
            "cpu_ms": (row.get("cpu", 0) - old.get("cpu", 0)) * 1000,
            "over_10ms": over,
            "max_ms": row.get("max", 0) * 1000,  # since start (the gauge only grows)
        }
    return delta


def gc_deltas(before: list[str], after: list[str]) -> dict[str, dict[str, float]]:
    """The instances' pauses together: counts and totals added, the longest of them."""
    total: dict[str, dict[str, float]] = {}
    for old, new in zip(before, after):
        for generation, row in gc_delta(gc_figures(old), gc_figures(new)).items():
            into = total.setdefault(generation, dict.fromkeys(row, 0.0))
            for key, value in row.items():
                into[key] = max(into[key], value) if key == "max_ms" else into[key] + value
    return total


# -- analysis -------------------------------------------------------------------------------------


def pct(ms: list[float], p: float) -> float:
    if not ms:
        return math.nan
    return ms[max(0, min(len(ms) - 1, math.ceil(p / 100 * len(ms)) - 1))]


def analyse(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    start = result["t0"] + args.warmup
    rows = [
        (d, s, a, st)
        for d, s, a, st in zip(result["due"], result["sent"], result["answered"], result["status"])
        if d >= start
    ]
    latency = sorted((a - d) * 1000 for d, _, a, st in rows if st == 200)
    lag = sorted((s - d) * 1000 for d, s, _, _ in rows)
    errors = sum(1 for *_, st in rows if st != 200)
    statuses = Counter(str(st) for *_, st in rows)
    span = (rows[-1][0] - rows[0][0]) if len(rows) > 1 else 1.0
    per_second: dict[int, list[float]] = {}
    for d, _, a, _st in rows:
        per_second.setdefault(int(d - start), []).append((a - d) * 1000)
    by_second = {second: pct(sorted(v), 99) for second, v in sorted(per_second.items())}
    worst_second = max(by_second.values(), default=math.nan)
    return {
        "requests": len(rows),
        "statuses": dict(statuses),
        "errors": errors,
        "rate": len(rows) / span if span else math.nan,
        "p50": pct(latency, 50),
        "p90": pct(latency, 90),
        "p99": pct(latency, 99),
        "p999": pct(latency, 99.9),
        "max": latency[-1] if latency else math.nan,
        "mean": statistics.fmean(latency) if latency else math.nan,
        "lag_p99": pct(lag, 99),
        "lag_max": lag[-1] if lag else math.nan,
        "worst_second_p99": worst_second,
        "p99_by_second": by_second,
        "connections": result["connections"],
        "generator_cpu_s": result["cpu"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="sqlite:/path or postgres:postgresql://…")
    parser.add_argument("--rate", type=float, default=1000.0, help="webhooks per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured, after the warm-up")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--numbers", type=int, default=200_000, help="distinct senders")
    parser.add_argument("--connections", type=int, default=64, help="opened before the start")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--settle", type=float, default=45.0, help="seconds between start-up and the load"
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="serve the SQLite file or PostgreSQL database itself, not a copy",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="PostgreSQL: `responder serve` processes on the database, the load spread over them",
    )
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--ref", help="serve the code of this commit (git archive) instead")
    args = parser.parse_args()
    database = args.database
    if not database.startswith(("sqlite:", "postgres:")):
        raise SystemExit("--database is sqlite:/path/to/file or postgres:postgresql://…")
    if args.instances > 1 and not database.startswith("postgres:"):
        raise SystemExit("--instances: several instances share a PostgreSQL database only")
    work = Path(tempfile.mkdtemp(prefix="steady-"))
    servers: list[Served] = []
    copy_name: str | None = None
    try:
        if database.startswith("sqlite:"):
            source = Path(database[7:])
            if args.in_place:
                url = str(source)
            else:
                target = work / source.name
                print(f"copying {source} to {target}", flush=True)
                shutil.copy(source, target)
                url = str(target)
        elif args.in_place:
            url = database[9:]
        else:
            # A copy made by PostgreSQL itself (CREATE DATABASE … TEMPLATE): the webhooks'
            # rows go there, and it is dropped after. Needs no other session on the source.
            source_url = database[9:]
            source_name = urllib.parse.urlsplit(source_url).path.lstrip("/")
            copy_name = f"{source_name}_steady_{os.getpid()}"
            print(f"copying {source_name} to {copy_name} (CREATE DATABASE … TEMPLATE)", flush=True)
            copy_postgres_database(source_name, copy_name)
            url = with_database(source_url, copy_name)
        code = export(args.ref, work) if args.ref else ROOT
        for n in range(args.instances):
            folder = work / f"instance-{n}"
            folder.mkdir()
            servers.append(serve(url, folder, code=code))
            print(
                f"responder serve (pid {servers[-1].proc.pid}) on {database} answered in "
                f"{servers[-1].started_in:.2f} s",
                flush=True,
            )
        if args.settle:
            # The first flow sweep runs 30 s after start and ends every flow the database left
            # waiting past its timeout (thousands in bench/scale.py's databases): start after.
            print(f"letting it settle for {args.settle:g} s", flush=True)
            time.sleep(args.settle)
        cpu0 = sum(s.cpu_seconds() for s in servers)
        result = generate([s.port for s in servers], args)
        cpu = sum(s.cpu_seconds() for s in servers) - cpu0
        figures = analyse(result, args)
        figures["server_cpu_per_webhook_ms"] = cpu * 1000 / max(1, len(result["due"]))
        # The warm-up's pauses are left out: the generator read /metrics when it ended.
        figures["gc"] = gc_deltas(result["metrics_before"], result["metrics_after"])
        print(
            f"\n{figures['requests']:,} webhooks at {args.rate:,.0f}/s for {args.seconds:g} s "
            f"(after {args.warmup:g} s warm-up; achieved {figures['rate']:,.0f}/s; "
            f"{figures['errors']} errors; {figures['connections']} connections)\n"
            f"latency from the scheduled moment: p50 {figures['p50']:.1f}  p90 "
            f"{figures['p90']:.1f}  p99 {figures['p99']:.1f}  p99.9 {figures['p999']:.1f}  "
            f"max {figures['max']:.1f} ms (worst one-second p99 {figures['worst_second_p99']:.1f})"
            f"\ngenerator: lag p99 {figures['lag_p99']:.2f} ms, max {figures['lag_max']:.2f} ms, "
            f"CPU {figures['generator_cpu_s']:.1f} s; server CPU "
            f"{figures['server_cpu_per_webhook_ms']:.3f} ms per webhook"
        )
        print(
            "GC pauses in the measured window (generation: count, total wall, total CPU, "
            "over 10 ms, longest since start):"
        )
        for generation, row in sorted(figures["gc"].items()):
            print(
                f"  gen {generation}: {row['count']:,.0f}, {row['total_ms']:.1f} ms, "
                f"{row['cpu_ms']:.1f} ms CPU, {row['over_10ms']:.0f} over 10 ms, "
                f"longest {row['max_ms']:.1f} ms"
            )
        slow = {s: round(v) for s, v in figures["p99_by_second"].items() if v > TARGET_P99_MS}
        if slow:
            print(f"seconds (from the end of the warm-up) whose p99 missed the target: {slow}")
        if figures["errors"]:
            print(f"answers by status (-1: no answer in {TIMEOUT:g} s): {figures['statuses']}")
            lines = [
                line for s in servers for line in s.log.read_text(errors="replace").splitlines()
            ]
            problems = [line for line in lines if "WARNING" in line or "ERROR" in line]
            print("server log, warnings and errors (last 10):\n  " + "\n  ".join(problems[-10:]))
        verdict = "meets" if figures["p99"] < TARGET_P99_MS else "misses"
        print(f"p99 {figures['p99']:.1f} ms {verdict} the {TARGET_P99_MS:g} ms target")
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1))
    finally:
        for server in servers:
            server.stop()
        if copy_name is not None:
            postgres_admin(f'DROP DATABASE IF EXISTS "{copy_name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
