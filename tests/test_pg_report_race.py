"""A delivery report and the send's outcome that records its provider id, in two transactions
at once on PostgreSQL (two instances, or two writers): the report waits for the outcome, so it
finds the id, instead of being kept as an early report just after the outcome looked for early
reports, and never applied."""

from __future__ import annotations

import asyncio

import asyncpg

from responder.store.models import StatusUpdate
from responder.store.pg_rows import report_lock_keys
from responder.store.postgres import PostgresStore
from tests.conftest import Clock
from tests.test_store_contract import ANA, inbound


async def test_a_report_waits_for_the_outcome_that_records_its_provider_id(
    postgres_url: str, clock: Clock
) -> None:
    store = PostgresStore(postgres_url, clock)
    await store.open()
    other = await asyncpg.connect(postgres_url)
    try:
        [reply_id] = (await inbound(store, clock, ANA, "hola")).reply_ids
        # Another instance records the send's outcome: its transaction holds the provider
        # id's lock (as every outcome's does) and has written the id, not committed yet.
        outcome = other.transaction()
        await outcome.start()
        [key] = report_lock_keys([("sandbox", "MSG-1")])
        await other.execute("SELECT pg_advisory_xact_lock($1)", key)
        await other.execute(
            "UPDATE messages SET provider = 'sandbox', provider_id = 'MSG-1', status = 'sent' "
            "WHERE id = $1",
            reply_id,
        )
        report = asyncio.create_task(
            store.apply_status(StatusUpdate("sandbox", "MSG-1", "delivered", None, clock()))
        )
        await asyncio.sleep(0.3)
        assert not report.done()  # it waits for the outcome's transaction
        await outcome.commit()
        assert await asyncio.wait_for(report, 10) is True  # found, not kept for later
        status = await store.pool.fetchval("SELECT status FROM messages WHERE id = $1", reply_id)
        assert status == "delivered"
        assert await store.pool.fetchval("SELECT count(*) FROM early_reports") == 0
    finally:
        await other.close()
        await store.close()
