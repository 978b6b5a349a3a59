"""The spool on its own, on real files: records, order, what survives a reopen, slots."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from responder.config import load_settings
from responder.engine import InboundMessage
from responder.spool import Spool, SpoolSlot, SpoolUnavailable, UnreadableRecord, decode, encode
from responder.store.models import StatusUpdate

AT = datetime(2026, 11, 23, 14, 0, 0, 123456, tzinfo=UTC)


def inbound(text: str, phone: str = "584121234567", at: datetime = AT) -> InboundMessage:
    return InboundMessage(phone, text, at, None, "massiva")


def texts(slot: SpoolSlot) -> list[str]:
    found = []
    for entry in slot.read(1000):
        item = decode(entry.line)
        assert isinstance(item, InboundMessage)
        found.append(item.text)
    return found


@pytest.mark.parametrize(
    "item",
    [
        inbound("hola"),
        InboundMessage("584121234567", "ñandú \u2764 \udc80", AT, "0412", "massiva"),
        inbound("x", at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-4)))),
        StatusUpdate("massiva", "abc-1", "delivered", None, AT),
        StatusUpdate("massiva", "abc-2", "failed", "número inválido", AT),
    ],
    ids=["inbound", "unicode-and-lone-surrogate", "offset-and-microseconds", "report", "failed"],
)
def test_a_record_reads_back_as_it_was_written(item: InboundMessage | StatusUpdate) -> None:
    line = encode(item)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.isascii()
    assert decode(line.rstrip(b"\n")) == item


@pytest.mark.parametrize(
    "line",
    [
        b"{not json",
        b'{"v": 2, "kind": "inbound"}',
        b'{"v": 1, "kind": "email"}',
        b'{"v": 1, "kind": "inbound", "phone": 58412, "text": "x", "received_at": "2026-11-23"}',
        b'{"v": 1, "kind": "status", "provider": "massiva"}',
        b'{"v":1,"kind":"inbound","phone":"1","text":"x","received_at":"2026-11-23T10:00",'
        b'"line":null,"provider":"massiva"}',
        b"[1, 2]",
    ],
    ids=["json", "version", "kind", "phone-number", "missing", "no-offset", "list"],
)
def test_a_damaged_line_is_our_own_error(line: bytes) -> None:
    with pytest.raises(UnreadableRecord):
        decode(line)


async def test_records_come_back_in_order_and_a_reopen_starts_where_replay_stopped(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=400)  # about three records a segment
    spool.open()
    for n in range(10):
        await spool.append(inbound(f"m{n}"))
    assert spool.pending == 10
    assert len(list((tmp_path / "spool" / "0").glob("*.jsonl"))) > 2
    entries = spool.own.read(4)
    assert texts(spool.own)[:4] == ["m0", "m1", "m2", "m3"]
    for entry in entries:
        spool.own.done(entry)
    assert spool.pending == 6
    await spool.close()

    again = Spool(tmp_path / "spool", segment_bytes=400)
    again.open()
    assert again.own.folder == tmp_path / "spool" / "0"  # the slot the last process left
    assert again.pending == 6
    assert texts(again.own) == [f"m{n}" for n in range(4, 10)]
    for entry in again.own.read(1000):
        again.own.done(entry)
    assert again.pending == 0
    # Every replayed segment is gone: what waits on disk is bounded by what is not replayed.
    assert list((tmp_path / "spool" / "0").glob("*.jsonl")) == []
    await again.append(inbound("after"))
    assert texts(again.own) == ["after"]
    await again.close()


async def test_a_line_cut_short_by_a_crash_is_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    await spool.append(inbound("entero"))
    await spool.close()
    [segment] = (tmp_path / "0").glob("*.jsonl")
    whole = segment.read_bytes()
    with segment.open("ab") as file:  # the process died in the middle of a write
        file.write(encode(inbound("cortado"))[:40])
    again = Spool(tmp_path)
    again.open()
    assert again.pending == 1
    assert texts(again.own) == ["entero"]
    assert segment.read_bytes() == whole
    await again.append(inbound("siguiente"))
    assert texts(again.own) == ["entero", "siguiente"]
    await again.close()


async def test_appends_made_together_share_one_write_and_keep_their_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    await asyncio.gather(*(spool.append(inbound(f"m{n}")) for n in range(50)))
    assert texts(spool.own) == [f"m{n}" for n in range(50)]
    [segment] = (tmp_path / "0").glob("*.jsonl")
    lines = segment.read_bytes().splitlines()
    assert [json.loads(line)["text"] for line in lines] == [f"m{n}" for n in range(50)]
    await spool.close()


async def test_a_full_spool_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    record = len(encode(inbound("m0")))
    spool = Spool(tmp_path, max_bytes=3 * record)
    spool.open()
    for n in range(3):
        await spool.append(inbound(f"m{n}"))
    with pytest.raises(SpoolUnavailable, match=r"^the spool .* is full"):
        await spool.append(inbound("m3"))
    assert spool.pending == 3
    assert texts(spool.own) == ["m0", "m1", "m2"]
    await spool.close()


async def test_two_processes_on_one_folder_hold_two_slots_and_a_left_slot_is_adopted(
    tmp_path: Path,
) -> None:
    first, second = Spool(tmp_path), Spool(tmp_path)
    first.open()
    second.open()  # flock locks are per open file: a second holder here is like a second process
    assert (first.own.folder.name, second.own.folder.name) == ("0", "1")
    await first.append(inbound("del primero"))
    await second.append(inbound("del segundo"))
    assert second.adopt() == []  # held by a live process: never touched
    await first.close()  # the first process stops with its record not stored
    [adopted] = second.adopt()
    assert adopted.folder.name == "0"
    assert second.pending == 2
    assert texts(adopted) == ["del primero"]
    third = Spool(tmp_path)
    third.open()
    assert third.own.folder.name == "2"  # slot 0 is held by the process that adopted it
    assert third.adopt() == []
    for entry in adopted.read(10):
        adopted.done(entry)
    await second.let_go(adopted)
    assert second.pending == 1
    await second.close()
    await third.close()


def test_the_spool_sits_beside_a_sqlite_file_and_in_the_working_folder_for_a_url() -> None:
    def spool(**env: str) -> Path:
        return load_settings(env, env_file="/nonexistent").spool

    assert spool() == Path("responder.db-spool")
    assert spool(RESPONDER_DATABASE="/var/lib/r/shop.db") == Path("/var/lib/r/shop.db-spool")
    assert spool(RESPONDER_DATABASE="postgresql://u@h/db") == Path("responder-spool")
    assert spool(RESPONDER_SPOOL="/srv/spool") == Path("/srv/spool")
