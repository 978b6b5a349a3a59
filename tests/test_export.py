"""`responder export` reads the store only in bounded keyset pages and writes as it reads: what
keeps its memory flat on any database (responder/export.py)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from responder import export
from responder.engine import Contact, Decision, InboundMessage, Reply
from responder.store import Store, make_store
from responder.store.models import InboundJob, _json_ready, to_iso
from tests.conftest import Clock

BUSY = "584120000002"
QUIET = ["584120000001", "584120000003", "584120000004"]


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Store]:
    database = (
        str(tmp_path / "export.db")
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    opened = make_store(database, clock)
    await opened.open()
    yield opened
    await opened.close()


async def say(store: Store, clock: Clock, phone: str, text: str) -> None:
    def decide(contact: Contact) -> Decision:
        return Decision("r", (Reply(f"re: {text}", 1, "sandbox"),), "test")

    await store.receive_inbound(InboundJob(InboundMessage(phone, text, clock()), decide))
    clock.advance(1)


class PagedOnly:
    """The store as the export may use it: the two keyset reads, each with its page size;
    anything else (a whole conversation, every conversation) fails the test."""

    def __init__(self, store: Store, out: io.StringIO) -> None:
        self.store, self.out = store, out
        self.reads: list[tuple[str, int, int]] = []  # (what, rows, characters written before)

    async def conversations_after(self, phone: str, limit: int) -> Any:
        assert limit == export.CONVERSATION_PAGE
        page = await self.store.conversations_after(phone, limit)
        self.reads.append(("conversations", len(page), len(self.out.getvalue())))
        return page

    async def messages_after(self, after: tuple[str, int], last: str, limit: int) -> Any:
        assert limit == export.MESSAGE_PAGE
        page = await self.store.messages_after(after, last, limit)
        self.reads.append(("messages", len(page), len(self.out.getvalue())))
        return page


async def test_the_export_reads_bounded_pages_and_writes_as_it_reads(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CONVERSATION_PAGE", 2)
    monkeypatch.setattr(export, "MESSAGE_PAGE", 3)
    for n in range(6):
        await say(store, clock, BUSY, f"mensaje {n}")
    for phone in QUIET:
        await say(store, clock, phone, "hola")
    out = io.StringIO()
    paged = PagedOnly(store, out)
    await export.export_to(paged, "jsonl", out)  # type: ignore[arg-type]

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [c["phone"] for c in lines] == sorted([BUSY, *QUIET])
    assert [m["text"] for m in lines[1]["messages"]] == [
        t for n in range(6) for t in (f"mensaje {n}", f"re: mensaje {n}")
    ]
    assert [len(c["messages"]) for c in lines] == [2, 12, 2, 2]
    # Never more than a page in one read, and 18 messages took more than a few reads.
    assert all(rows <= 3 for what, rows, _ in paged.reads if what == "messages")
    assert sum(rows for what, rows, _ in paged.reads if what == "messages") == 18
    # Written as read: every read after the first found more written than the one before it
    # (the busiest conversation's line, too, was written while its pages were read).
    written = [before for what, _, before in paged.reads if what == "messages"]
    assert all(a < b for a, b in pairwise(written)), paged.reads


async def test_csv_has_a_row_per_message_with_its_contact(store: Store, clock: Clock) -> None:
    for phone in [BUSY, *QUIET]:
        await say(store, clock, phone, "hola")
    out = io.StringIO()
    await export.export_to(store, "csv", out)
    header, *rows = out.getvalue().splitlines()
    assert header.endswith(",mode,opted_out,contact_fields")
    assert len(rows) == 8 and all(row.endswith(",bot,False,{}") for row in rows)


async def test_a_message_as_json_is_every_field_with_moments_in_iso(
    store: Store, clock: Clock
) -> None:
    await say(store, clock, BUSY, "hola")
    for message in await store.messages(BUSY):
        assert message.as_json() == _json_ready(message)
        assert list(message.as_json()) == list(_json_ready(message))


@pytest.mark.parametrize(
    ("moment", "written"),
    [
        (datetime(2026, 11, 23, 14, 0, tzinfo=UTC), "2026-11-23T14:00:00.000000Z"),
        (
            datetime(2026, 1, 1, 20, 30, 5, 7, tzinfo=timezone(timedelta(hours=-4))),
            "2026-01-02T00:30:05.000007Z",
        ),
        (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00.000000Z"),
    ],
)
def test_moments_are_written_in_utc_with_a_fixed_width(moment: datetime, written: str) -> None:
    assert to_iso(moment) == written
