"""Forgetting a person (DESIGN §13) while the outbox, the poller and the webhooks still hold
their messages: what comes back for an erased message is dropped quietly, nothing else in the
same grouped write fails, and (on PostgreSQL) an erasure waits for writes in flight."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest

from responder.engine import Reply
from responder.store.base import Store
from responder.store.broadcast_models import Segment
from responder.store.models import PollResult, SendOutcome, StatusUpdate
from responder.store.pg_batch import apply_outcomes, lock_messages
from responder.store.pg_rows import allocate_ids, insert_messages, lock_phones, outbound_row
from responder.store.postgres import PostgresStore
from tests.conftest import Clock
from tests.test_store_contract import OpenStore, answer, inbound, rows
from tests.test_store_contract import backend as backend  # the fixtures: both engines
from tests.test_store_contract import database as database
from tests.test_store_contract import open_store as open_store

ANA, LUIS = "584121234567", "584241234567"


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


async def attempts_of(store: Store, message_id: int) -> list[tuple[Any, ...]]:
    return await rows(
        store, f"SELECT provider, outcome FROM attempts WHERE message_id = {message_id:d}"
    )


async def test_an_outcome_for_a_forgotten_message_is_dropped_and_the_rest_recorded(
    store: Store, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    await inbound(store, clock, ANA, "hola", answer("uno"))
    await inbound(store, clock, LUIS, "hola", answer("dos"))
    claimed = {item.phone: item for item in await store.claim_outbox(10)}
    assert sorted(claimed) == [ANA, LUIS]
    assert await store.forget_contact(ANA) is not None  # while her reply is being sent
    caplog.set_level(logging.WARNING, logger="responder.store")
    # One grouped write: her outcome and his, and a retry of hers from another send.
    await asyncio.gather(
        store.record_outcomes(
            [
                SendOutcome(claimed[ANA].id, "sandbox", "sent", "p-ana"),
                SendOutcome(claimed[LUIS].id, "sandbox", "sent", "p-luis"),
            ]
        ),
        store.record_outcomes(
            [SendOutcome(claimed[ANA].id, "sandbox", "queued", None, "HTTP 500", clock())]
        ),
    )
    assert caplog.records == []  # not a failed write retried alone
    assert await store.messages(ANA) == []
    assert await attempts_of(store, claimed[ANA].id) == []
    [reply] = [m for m in await store.messages(LUIS) if m.direction == "out"]
    assert (reply.status, reply.provider_id) == ("sent", "p-luis")
    assert await attempts_of(store, claimed[LUIS].id) == [("sandbox", "sent")]
    assert await store.claim_outbox(10) == []  # the retry brought nothing back


async def test_a_report_waiting_for_a_forgotten_message_s_outcome_goes_with_it(
    store: Store, clock: Clock
) -> None:
    await inbound(store, clock, ANA, "hola", answer("uno"))
    await inbound(store, clock, LUIS, "hola", answer("dos"))
    claimed = {item.phone: item for item in await store.claim_outbox(10)}
    # Both reports overtake the sends' answers; then she is forgotten.
    for pid in ("p-ana", "p-luis"):
        assert not await store.apply_status(StatusUpdate("sandbox", pid, "delivered", "L", clock()))
    assert await store.forget_contact(ANA) is not None
    await store.record_outcomes(
        [
            SendOutcome(claimed[ANA].id, "sandbox", "sent", "p-ana"),
            SendOutcome(claimed[LUIS].id, "sandbox", "sent", "p-luis"),
        ]
    )
    [reply] = [m for m in await store.messages(LUIS) if m.direction == "out"]
    assert reply.status == "delivered"
    assert await rows(store, "SELECT provider_id FROM early_reports") == []  # hers too


async def test_polls_leases_and_late_reports_for_a_forgotten_message_change_nothing(
    store: Store, clock: Clock
) -> None:
    [queued] = await store.queue_outbound(ANA, [Reply("hola", 1, "massms")], "cli")
    await store.record_outcomes([SendOutcome(queued.id, "massms", "sent", "ms-1")])
    [sending] = await store.queue_outbound(ANA, [Reply("otra", 1, "massms")], "cli")
    assert [i.id for i in await store.claim_outbox(10)] == [sending.id]
    clock.advance(10)
    [polled] = await store.claim_polls(["massms"], 10)
    assert polled.id == queued.id
    assert await store.forget_contact(ANA) is not None
    await store.record_polls([PollResult(polled.id, "delivered", None, None)])
    await store.renew_leases([sending.id])
    assert await store.release_own() == 0
    assert await store.release_expired() == 0
    # A delivery report for it cannot be told from one that came early: kept 48 hours at
    # most (a provider id and a status: nothing of the person), never applied to anything.
    assert not await store.apply_status(StatusUpdate("massms", "ms-1", "delivered", "L", clock()))
    assert await store.all_messages() == []
    assert await rows(store, "SELECT COUNT(*) FROM attempts") == [(0,)]


# -- PostgreSQL: another instance's write in flight while the erasure runs (SQLite has one writer
# at a time: nothing is in flight beside an erasure) -----------------------------------------------

ON_POSTGRES = pytest.mark.parametrize("backend", ["postgres"])


async def until_blocked(conn: Any) -> None:
    """Waits until a session of this database waits for a lock (the erasure, below)."""
    for _ in range(500):
        waiting = await conn.fetchval(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the erasure never waited for the write in flight")


@pytest.fixture
async def other_instance(database: str) -> Any:
    """A connection of its own to the PostgreSQL database, as another instance's writer."""
    conn = await asyncpg.connect(database)
    yield conn
    await conn.close()


@ON_POSTGRES
async def test_forgetting_waits_for_an_outcome_being_recorded(
    store: Store, clock: Clock, other_instance: Any
) -> None:
    assert isinstance(store, PostgresStore)
    await inbound(store, clock, ANA, "BAJA", answer("Listo", "opt_out", opted_out=True))
    [item] = await store.claim_outbox(10)
    async with other_instance.transaction():  # the writer recording the send's answer
        await lock_messages(other_instance, [item.id], [])
        outcome = SendOutcome(item.id, "sandbox", "sent", "p-1")
        await apply_outcomes(other_instance, [([outcome], clock(), clock())], clock())
        erasing = asyncio.create_task(store.forget_contact(ANA))
        await until_blocked(other_instance)
    forgotten = await erasing
    assert forgotten is not None and forgotten.messages == 2 and forgotten.kept_opted_out
    assert await store.all_messages() == []
    assert await rows(store, "SELECT COUNT(*) FROM attempts") == [(0,)]


@ON_POSTGRES
async def test_forgetting_goes_again_when_a_grouped_write_waits_for_the_number_too(
    store: Store, clock: Clock, other_instance: Any
) -> None:
    """A batch holding her reply (its outcome) that then wants her number (a new message from
    her) waits in a circle with the erasure: PostgreSQL ends the erasure, which goes again."""
    assert isinstance(store, PostgresStore)
    await inbound(store, clock, ANA, "hola", answer("uno"))
    [item] = await store.claim_outbox(10)
    async with other_instance.transaction():
        await lock_messages(other_instance, [item.id], [])
        erasing = asyncio.create_task(store.forget_contact(ANA))
        await until_blocked(other_instance)  # the erasure holds her number, waits for her reply
        await lock_phones(other_instance, [ANA])  # the batch's inbound half
        outcome = SendOutcome(item.id, "sandbox", "sent", "p-1")
        await apply_outcomes(other_instance, [([outcome], clock(), clock())], clock())
    forgotten = await erasing
    assert forgotten is not None and forgotten.messages == 2
    assert await store.all_messages() == []
    assert await rows(store, "SELECT COUNT(*) FROM attempts") == [(0,)]


@ON_POSTGRES
async def test_forgetting_waits_for_a_broadcast_being_fed_to_the_number(
    store: Store, clock: Clock, other_instance: Any
) -> None:
    assert isinstance(store, PostgresStore)
    await inbound(store, clock, ANA, "hola", answer(None))
    broadcast = await store.create_broadcast(
        name="promo",
        text="Oferta",
        segment=Segment(),
        via="sandbox",
        send_at=None,
        status="running",
        created_by=None,
        since=None,
    )
    async with other_instance.transaction():  # the feeder queueing her message
        await other_instance.execute(
            "UPDATE broadcast_recipients SET status = 'fed' WHERE broadcast_id = $1 "
            "AND phone = $2 AND status = 'pending'",
            broadcast.id,
            ANA,
        )
        [message_id] = await allocate_ids(other_instance, 1)
        row = outbound_row(message_id, ANA, Reply("Oferta", 1), "broadcast", None, clock())
        await insert_messages(other_instance, [row])
        erasing = asyncio.create_task(store.forget_contact(ANA))
        await until_blocked(other_instance)
    forgotten = await erasing
    assert forgotten is not None and forgotten.messages == 2
    assert await store.all_messages() == []  # her broadcast message went too
    assert await rows(store, "SELECT phone LIKE 'forgotten-%' FROM broadcast_recipients") == [
        (True,)
    ]
