"""`responder backup` while a real `responder serve` takes webhooks, `responder restore`, and
the PostgreSQL branch (DESIGN §13)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from responder.cli import main
from tests import loopback
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN
from tests.served import ServeProcess

BEFORE = 1500  # webhooks acknowledged before the backup starts: a database of several MiB
SENDERS = 4


def environment(workdir: Path) -> dict[str, str]:
    return {
        "RESPONDER_DATABASE": str(workdir / "responder.db"),
        "RESPONDER_RULES": str(workdir / "rules.yaml"),
        "RESPONDER_TEMPLATES": str(workdir / "templates"),
        "RESPONDER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "RESPONDER_ADMIN_TOKEN": ADMIN_TOKEN,
    }


def responder(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "responder", *args],
        cwd=workdir,
        env={**os.environ, **environment(workdir)},
        capture_output=True,
        text=True,
        timeout=120,
    )


class Senders:
    """Webhooks from SENDERS threads, each text unique; `acked` keeps the texts answered OK."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = iter(range(10**9))
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(SENDERS)]

    def _run(self) -> None:
        path = f"{self.url}/webhooks/massiva/{WEBHOOK_TOKEN}/inbound"
        with loopback.Client(timeout=10) as client:
            while not self._stop.is_set():
                with self._lock:
                    n = next(self._counter)
                text = f"copia {n}"
                phone = f"58412{(n * 7919 + 1234567) % 10_000_000:07d}"
                response = client.get(path, params={"phone": phone, "msg": text})
                if response.status_code == 200 and response.text == "OK":
                    with self._lock:
                        self.acked.append(text)

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def snapshot(self) -> set[str]:
        with self._lock:
            return set(self.acked)

    def __enter__(self) -> Senders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


@pytest.fixture
def served(workdir: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(workdir, environment(workdir))
    yield server
    server.stop()


def inbound_texts(database: Path) -> set[str]:
    db = sqlite3.connect(database)
    try:
        return {r[0] for r in db.execute("SELECT text FROM messages WHERE direction = 'in'")}
    finally:
        db.close()


def test_a_backup_while_serving_holds_every_acknowledged_message(
    workdir: Path, served: ServeProcess
) -> None:
    copy = workdir / "copies" / "backup.db"
    copy.parent.mkdir()
    with Senders(served.url) as senders:
        while senders.count() < BEFORE:
            threading.Event().wait(0.05)
        acknowledged = senders.snapshot()
        done = responder(workdir, "backup", str(copy))
        during = senders.count() - len(acknowledged)
    assert done.returncode == 0, done.stderr
    assert "backed up" in done.stdout
    assert during > 0  # webhooks kept being answered while the copy was made
    assert sorted(p.name for p in copy.parent.iterdir()) == ["backup.db"]  # no partial left
    db = sqlite3.connect(copy)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        db.close()
    missing = acknowledged - inbound_texts(copy)
    assert not missing, f"{len(missing)} acknowledged messages missing, e.g. {sorted(missing)[:3]}"

    # A second backup to the same PATH is refused, unless --force.
    again = responder(workdir, "backup", str(copy))
    assert again.returncode == 1
    assert "--force" in again.stderr
    assert responder(workdir, "backup", "--force", str(copy)).returncode == 0

    # Restore checks the copy, and refuses to replace the database the service runs on.
    checked = responder(workdir, "restore", str(copy))
    assert checked.returncode == 0, checked.stderr
    assert "integrity ok" in checked.stdout
    refused = responder(workdir, "restore", "--yes", str(copy))
    assert refused.returncode == 1
    assert "running" in refused.stderr

    served.stop()
    kept = inbound_texts(copy)
    assert len(inbound_texts(workdir / "responder.db")) > len(acknowledged)
    restored = responder(workdir, "restore", "--yes", str(copy))
    assert restored.returncode == 0, restored.stderr
    assert inbound_texts(workdir / "responder.db") == kept


def test_restore_refuses_a_damaged_copy_or_a_newer_schema(workdir: Path) -> None:
    assert responder(workdir, "send", "04121234567", "hola").returncode == 0
    copy = workdir / "copy.db"
    assert responder(workdir, "backup", str(copy)).returncode == 0
    db = sqlite3.connect(copy)
    db.execute("PRAGMA user_version = 9999")
    db.close()
    newer = responder(workdir, "restore", "--yes", str(copy))
    assert newer.returncode == 1
    assert "newer than this code's" in newer.stderr
    garbage = workdir / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    damaged = responder(workdir, "restore", "--yes", str(garbage))
    assert damaged.returncode == 1
    assert "garbage.db" in damaged.stderr


def test_on_postgresql_backup_prints_the_pg_dump_line_without_the_password(
    workdir: Path,
) -> None:
    url = "postgresql://shop:s3cr3t-pw@db.example:5433/responder"
    result = CliRunner().invoke(
        main,
        ["backup", "/tmp/responder.dump"],
        env={**environment(workdir), "RESPONDER_DATABASE": url},
    )
    assert result.exit_code == 2
    assert "pg_dump --format=custom --file /tmp/responder.dump" in result.output
    assert "postgresql://shop:***@db.example:5433/responder" in result.output
    assert "s3cr3t-pw" not in result.output
