"""Broadcasts with two `responder serve` processes on one database: a pause, a resume and a
cancel made at one instance hold at the other at once, and no number gets the text twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests import loopback
from tests.conftest import ADMIN_TOKEN, WEBHOOK_TOKEN
from tests.fakes.massiva import FakeMassiva
from tests.served import ServeProcess
from tests.test_broadcasts import write_rules
from tests.test_instances import Database, database, env, instances, wait

__all__ = ["database", "env", "instances"]  # fixtures
PHONES = [f"58412300{i:04d}" for i in range(30)]


def api(server: ServeProcess, method: str, path: str, **kwargs: object) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = loopback.request(method, f"{server.url}{path}", headers=headers, **kwargs)
    assert response.status_code in (200, 201), response.text
    body: dict[str, object] = response.json()
    return body


def counts(server: ServeProcess, broadcast_id: int) -> dict[str, int]:
    found = api(server, "GET", f"/api/broadcasts/{broadcast_id}")["broadcast"]
    assert isinstance(found, dict)
    result: dict[str, int] = found["counts"]
    assert sum(result.values()) == found["recipients"]
    return result


def test_pause_resume_and_cancel_from_another_instance(
    instances: Callable[..., ServeProcess],
    database: Database,
    massiva: tuple[FakeMassiva, str],
    workdir: Path,
) -> None:
    write_rules(workdir, "send_rate: {massiva: 5}")
    fake = massiva[0]
    first, second = instances("a"), instances("b")
    for phone in PHONES:
        response = loopback.get(
            f"{first.url}/webhooks/massiva/{WEBHOOK_TOKEN}/inbound",
            params={"msg": "hola", "phone": phone},
        )
        assert response.status_code == 200

    def sent() -> list[str]:
        return [s.phone for s in fake.sent if s.text == "Oferta"]

    created = api(first, "POST", "/api/broadcasts", json={"text": "Oferta"})["broadcast"]
    assert isinstance(created, dict)
    bid = created["id"]
    assert wait(lambda: len(sent()) >= 5, 10)
    api(second, "POST", f"/api/broadcasts/{bid}/pause")
    time.sleep(1.0)  # what was being sent at that moment finishes
    held = len(sent())
    time.sleep(2.0)
    assert len(sent()) == held < len(PHONES)  # neither instance sends while paused
    api(first, "POST", f"/api/broadcasts/{bid}/resume")
    assert wait(lambda: len(sent()) >= held + 5, 10)
    api(second, "POST", f"/api/broadcasts/{bid}/cancel")
    time.sleep(1.0)
    went = len(sent())
    time.sleep(2.0)
    assert len(sent()) == went < len(PHONES)
    final = counts(first, bid)
    assert final == counts(second, bid)
    assert (final["sent"], final["cancelled"], final["queued"]) == (went, 30 - went, 0)
    assert max(Counter(sent()).values()) == 1  # nobody twice
    rows = database.rows(
        f"SELECT COUNT(*) FROM messages WHERE broadcast_id = {int(bid)} AND status = 'sent'"
    )
    assert rows == [(went,)]
