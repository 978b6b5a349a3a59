"""Outbound throughput: 2,000 queued replies drained by the outbox worker to fake providers.

Run: .venv/bin/python bench/outbox.py [--messages 2000] [--database sqlite|postgres]
The fake provider runs in its own process on 127.0.0.1 (2 cores: one each). With
`--database postgres` the store is a throwaway database on RESPONDER_TEST_POSTGRES's server
(default: this machine's), dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from responder.clock import SystemClock  # noqa: E402
from responder.config import MassivaSettings, MasSMSSettings  # noqa: E402
from responder.engine import Reply  # noqa: E402
from responder.providers.base import Provider  # noqa: E402
from responder.providers.massiva import MassivaClient  # noqa: E402
from responder.providers.massms import MasSMSClient  # noqa: E402
from responder.store import make_store  # noqa: E402
from responder.workers.outbox import OutboxWorker  # noqa: E402

FAKE = """
import sys, uvicorn
sys.path.insert(0, {root!r})
from tests.fakes.massiva import FakeMassiva
from tests.fakes.massms import FakeMasSMS
app = (FakeMassiva(credits=10**9) if {kind!r} == "massiva" else FakeMasSMS(balance=10**9)).app
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_fake(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    code = FAKE.format(root=str(ROOT), kind=kind, port=port)
    process = subprocess.Popen([sys.executable, "-c", code])
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(base + "/", timeout=0.2)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    path = "/webservices" if kind == "massiva" else "/massms/api"
    return process, base + path


def client(kind: str, url: str, batch: int) -> Provider:
    if kind == "massiva":
        return MassivaClient(MassivaSettings(url, "demo@example.com", "secret", batch))
    provider = MasSMSClient(MasSMSSettings(url, "miempresa", "demo", "secret", None))
    provider.max_batch = batch
    return provider


POSTGRES = os.environ.get("RESPONDER_TEST_POSTGRES") or (
    "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def postgres_admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def run(kind: str, url: str, batch: int, count: int, database: str) -> float:
    if database == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            return await drain(kind, url, batch, count, str(Path(folder) / "bench.db"))
    name = f"responder_bench_{uuid.uuid4().hex[:12]}"
    await postgres_admin(f'CREATE DATABASE "{name}"')
    try:
        parts = urllib.parse.urlsplit(POSTGRES)._replace(path=f"/{name}")
        return await drain(kind, url, batch, count, urllib.parse.urlunsplit(parts))
    finally:
        await postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def drain(kind: str, url: str, batch: int, count: int, database: str) -> float:
    clock = SystemClock()
    store = make_store(database, clock)
    await store.open()
    # Auto-replies repeat a few texts: realistic for keyword answers, and what MasSMS groups.
    texts = [
        "Abrimos de 8:00 a 17:00.",
        "El precio del cafe es 4,50.",
        "Un asesor le escribira.",
    ]
    for i in range(count):
        phone = f"58412{1000000 + i:07d}"
        await store.queue_outbound(phone, [Reply(texts[i % 3], 1, kind)], "cli")
    provider = client(kind, url, batch)
    worker = OutboxWorker(store, {kind: provider}, clock=clock)
    started = time.perf_counter()
    await worker.drain()
    await worker.wait_idle()
    elapsed = time.perf_counter() - started
    messages = await store.all_messages()
    sent = sum(m.status == "sent" for m in messages)
    if sent != count:
        raise SystemExit(f"{kind}: only {sent} of {count} sent")
    await provider.aclose()
    await store.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    print(
        f"{args.messages} queued replies, outbox worker → fake provider on 127.0.0.1, "
        f"store: {args.database}"
    )
    print(f"{'provider':<10}{'batch':>7}{'messages/s':>13}")
    for kind, batched in (("massiva", 50), ("massms", 100)):
        process, url = start_fake(kind)
        try:
            for batch in (1, batched):
                rate = asyncio.run(run(kind, url, batch, args.messages, args.database))
                print(f"{kind:<10}{batch:>7}{rate:>13,.0f}")
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
