"""The counts the writer keeps (DESIGN §13, migrations SQLite 0022 / PostgreSQL 0010) and the
keyset pages, on both backends: the counts equal a recount of the messages after every kind of
write (sends, reports, failures, retries, cancels, opt-outs), erasure keeps them, periods are
read in whole hours, and pages neither repeat nor skip while new messages arrive."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from responder.engine import Reply
from responder.store import pg_counts, sqlite_counts
from responder.store.base import Store
from responder.store.counts import CountKey
from responder.store.migrate import copy_to_postgres
from responder.store.models import AuditEvent, ImportRow, SendOutcome, StatusUpdate
from responder.store.postgres import PostgresStore
from responder.store.sqlite import SQLiteStore
from tests.conftest import Clock
from tests.test_store_contract import OpenStore, admin_inbound, answer, inbound, rows
from tests.test_store_contract import backend as backend  # the fixtures: both engines
from tests.test_store_contract import database as database
from tests.test_store_contract import open_store as open_store


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


ANA, LUIS, EVA = "584121111111", "584122222222", "584123333333"


async def recount(store: Store) -> dict[CountKey, int]:
    """What the counts must be: the messages as they are, counted here."""
    found: Counter[CountKey] = Counter()
    for m in await store.all_messages():
        hour = m.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        found[(hour, m.direction, m.provider or "", m.status, m.rule or "")] += 1
    return dict(found)


async def assert_rollups_agree(store: Store, kept: dict[CountKey, int]) -> None:
    days: Counter[tuple[str, ...]] = Counter()
    hours: Counter[tuple[str, ...]] = Counter()
    for (hour, direction, provider, status, rule), n in kept.items():
        days[(f"{hour:%Y-%m-%d}", direction, provider, status, rule)] += n
        hours[(f"{hour:%Y-%m-%dT%H}", direction)] += n
    assert await store.kept_rollups() == (dict(days), dict(hours))


async def check(store: Store) -> dict[CountKey, int]:
    kept = await store.kept_counts()
    assert kept == await recount(store)
    await assert_rollups_agree(store, kept)
    await store.fold_counts()  # the sweep moves the changes; nothing changes for readers
    assert await rows(store, "SELECT COUNT(*) FROM message_count_changes") == [(0,)]
    assert await store.kept_counts() == kept
    await assert_rollups_agree(store, kept)
    return kept


async def test_counts_follow_every_write_and_survive_erasure(store: Store, clock: Clock) -> None:
    await admin_inbound(store, clock, ANA, "precio", "precio")
    await admin_inbound(store, clock, LUIS, "horario", "horario")
    clock.advance(3600)
    await admin_inbound(store, clock, EVA, "???", None)
    await admin_inbound(store, clock, ANA, "horario", "horario")
    [agent] = await store.queue_outbound(ANA, [Reply("hola", 1, "massms")], "agent", author="ana")
    await check(store)
    out = [m for m in await store.all_messages() if m.direction == "out" and m.id != agent.id]
    claimed = await store.claim_outbox(10)
    assert {c.id for c in claimed} >= {m.id for m in out}
    await check(store)  # queued -> sending
    await store.record_outcomes(
        [
            SendOutcome(out[0].id, "sandbox", "sent", provider_id="p0"),
            SendOutcome(out[1].id, "sandbox", "sent", provider_id="p1"),
            SendOutcome(out[2].id, "sandbox", "failed", error="rechazado"),
            # A failover: the message moves to another provider (its count with it).
            SendOutcome(agent.id, "massiva", "sent", provider_id="p9", failover_from="massms"),
        ]
    )
    await check(store)
    await store.apply_status(StatusUpdate("sandbox", "p0", "delivered", "linea", clock()))
    await store.apply_status(StatusUpdate("sandbox", "p1", "failed", "sin señal", clock()))
    await store.apply_status(StatusUpdate("sandbox", "p1", "delivered", None, clock()))
    await check(store)
    await store.retry_message(out[2].id, "ana")
    [scheduled] = await store.queue_outbound(
        LUIS, [Reply("luego", 1, "sandbox")], "agent", send_at=clock() + timedelta(days=1)
    )
    await store.cancel_message(scheduled.id, "ana")
    await check(store)
    # An opt-out fails what was queued for the number, in the writer's transaction.
    await store.queue_outbound(EVA, [Reply("¿sigue ahí?", 1, "sandbox")], "agent")
    await inbound(store, clock, EVA, "BAJA", answer("Listo", rule="opt_out", opted_out=True))
    before_erasure = await check(store)
    assert sum(before_erasure.values()) == len(await store.all_messages())

    # Erasure keeps the counts: texts cleared by retention, a person forgotten.
    clock.advance(86400)
    assert await store.clear_old_texts(clock(), 0, 500) is not None
    assert await store.forget_contact(ANA) is not None
    assert await store.kept_counts() == before_erasure
    await store.fold_counts()
    assert await store.kept_counts() == before_erasure
    assert len(await store.all_messages()) < sum(before_erasure.values())


async def test_a_write_that_moves_no_count_appends_no_change(store: Store, clock: Clock) -> None:
    """Renewing leases changes rows but no counted column: nothing for the sweep to fold."""
    await admin_inbound(store, clock, ANA, "precio", "precio")
    await admin_inbound(store, clock, LUIS, "horario", "horario")
    claimed = await store.claim_outbox(10)
    assert len(claimed) == 2
    kept = await check(store)
    await store.renew_leases([c.id for c in claimed])
    assert await rows(store, "SELECT COUNT(*) FROM message_count_changes") == [(0,)]
    assert await store.kept_counts() == kept


async def test_a_period_is_read_in_whole_hours(store: Store, clock: Clock) -> None:
    start = clock()  # 14:00 UTC
    for step in range(6):  # one inbound and one reply every 10 hours
        await admin_inbound(store, clock, ANA, f"m{step}", "precio" if step % 2 else "horario")
        clock.advance(10 * 3600)
    kept = await store.kept_counts()

    def expected(since: datetime, until: datetime) -> tuple[dict[str, int], list[Any]]:
        statuses: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for (hour, direction, _, status, rule), n in kept.items():
            if since <= hour < until:
                if direction == "out":
                    statuses[status] += n
                elif rule:
                    rules[rule] += n
        return dict(statuses), sorted(rules.items(), key=lambda r: (-r[1], r[0]))

    # Windows inside a day, across whole UTC days, and with ragged edges on both sides.
    for since, until in [
        (start, start + timedelta(hours=1)),
        (start, start + timedelta(hours=10)),  # ends where a message is: not counted
        (start + timedelta(hours=3), start + timedelta(hours=45)),
        (start - timedelta(days=1), start + timedelta(days=3)),
        (start + timedelta(hours=10), start + timedelta(hours=10, minutes=1)),
    ]:
        whole = until.replace(minute=0, second=0, microsecond=0)
        statuses, rules = expected(since, whole if whole == until else whole + timedelta(hours=1))
        assert await store.outbound_status_counts(since, until) == statuses
        assert await store.top_rules(since, until=until) == rules
        hourly = await store.message_counts_by_hour(since, until)
        assert sum(n for _, _, n in hourly) == sum(statuses.values()) + sum(n for _, n in rules)
        providers = await store.provider_counts(since, until)
        assert sum(providers.values()) == sum(n for *_, n in hourly)
    assert await store.message_counts_by_hour(start + timedelta(days=9)) == []


async def test_conversation_pages_neither_repeat_nor_skip_while_messages_arrive(
    store: Store, clock: Clock
) -> None:
    phones = [f"5841200{n:05d}" for n in range(23)]
    for phone in phones:
        await admin_inbound(store, clock, phone, "hola")
        clock.advance(1)
    seen: list[str] = []
    moved: set[str] = set()
    page = await store.conversations(5)
    while page:
        seen.extend(c.phone for c in page)
        # Meanwhile two conversations get news: one already listed, one not yet.
        for phone in (seen[0], next((p for p in phones if p not in seen), seen[-1])):
            clock.advance(1)
            await admin_inbound(store, clock, phone, "otra vez")
            moved.add(phone)
        last = page[-1]
        page = await store.conversations(5, after=(last.last_message_at, last.phone))
    assert len(seen) == len(set(seen))  # nothing twice
    assert set(seen) | moved == set(phones)  # nothing skipped but what moved to the top


async def test_equal_times_are_ordered_by_number_across_pages(store: Store, clock: Clock) -> None:
    phones = sorted(f"5841200{n:05d}" for n in range(7))
    for phone in phones:
        await admin_inbound(store, clock, phone, "hola")  # the same moment for all
    first = await store.conversations(3)
    rest = await store.conversations(10, after=(first[-1].last_message_at, first[-1].phone))
    assert [c.phone for c in first + rest] == phones
    only = await store.conversations(2, needs_attention=False)
    assert [c.phone for c in only] == phones[:2]
    after = (only[-1].last_message_at, only[-1].phone)
    assert [c.phone for c in await store.conversations(9, needs_attention=False, after=after)] == (
        phones[2:]
    )


async def test_a_long_conversation_is_read_newest_first_in_pages(
    store: Store, clock: Clock
) -> None:
    for n in range(230):
        await inbound(store, clock, ANA, f"m{n}", answer(None))
        clock.advance(1)
    await inbound(store, clock, LUIS, "otro", answer(None))
    everything = [m.id for m in await store.messages(ANA)]
    newest = await store.message_page(ANA, None, 100)
    assert [m.id for m in newest] == everything[-100:]  # oldest first within the page
    older = await store.message_page(ANA, newest[0].id, 100)
    await inbound(store, clock, ANA, "nuevo", answer(None))  # arrives while paging back
    oldest = await store.message_page(ANA, older[0].id, 100)
    assert [m.id for m in oldest + older + newest] == everything
    assert await store.message_page(ANA, oldest[0].id, 100) == []
    since = await store.message_page(ANA, None, 1000, since_id=older[0].id)
    assert [m.id for m in since] == [*everything[-200:], (await store.messages(ANA))[-1].id]


async def test_the_audit_trail_pages_back(store: Store, clock: Clock) -> None:
    for n in range(5):
        await store.record_audit(AuditEvent(clock(), "ana", "mode_changed", str(n), {}))
    first = await store.audit_events(2)
    assert [e.subject for e in first] == ["4", "3"]
    second = await store.audit_events(2, before=first[-1].id)
    third = await store.audit_events(2, before=second[-1].id)
    assert [e.subject for e in second + third] == ["2", "1", "0"]


async def test_inbox_counts_are_kept(store: Store, clock: Clock) -> None:
    async def recounted(me: str | None) -> dict[str, int]:
        every = await store.conversations(1000)
        return {
            "all": len(every),
            "human": sum(c.mode == "human" for c in every),
            "needs_attention": sum(c.needs_attention for c in every),
            "opted_out": sum(c.opted_out for c in every),
            "unread": sum(c.unread > 0 for c in every),
            "unassigned": sum(c.assigned_to is None for c in every),
            "resolved": sum(c.status == "resolved" for c in every),
            "mine": sum(c.assigned_to == me for c in every) if me else 0,
        }

    async def same() -> None:
        for me in (None, "ana"):
            assert await store.conversation_counts(me) == await recounted(me)
        await store.fold_counts()
        assert await store.conversation_counts("ana") == await recounted("ana")

    # Imported contacts that never wrote are not conversations: not counted, until they write.
    await store.import_contacts([ImportRow(EVA, {"nombre": "Eva"}, ()), ImportRow(ANA, {}, ())])
    await same()
    await admin_inbound(store, clock, ANA, "hola")
    await admin_inbound(store, clock, LUIS, "???", None)
    await same()
    await admin_inbound(store, clock, EVA, "asesor", "asesor", mode="human")
    await same()
    await store.assign(ANA, "ana")
    await store.mark_read(ANA)
    await store.set_status(LUIS, "resolved")
    await store.set_mode(EVA, "bot")
    await same()
    await inbound(store, clock, LUIS, "BAJA", answer("Listo", rule="opt_out", opted_out=True))
    await admin_inbound(store, clock, ANA, "otra", None)
    await same()
    await store.forget_contact(ANA)
    await same()
    # A write that moves no count (a second message, unread already) appends no change.
    await admin_inbound(store, clock, "584124444444", "hola")
    await same()
    await admin_inbound(store, clock, "584124444444", "hola otra vez")
    assert await rows(store, "SELECT COUNT(*) FROM conversation_count_changes") == [(0,)]
    await same()


async def test_migrate_to_copies_the_counts_as_kept(
    tmp_path: Path, clock: Clock, postgres_url: str
) -> None:
    source = SQLiteStore(tmp_path / "kept.db", clock)
    await source.open()
    try:
        await admin_inbound(source, clock, ANA, "precio", "precio")
        await admin_inbound(source, clock, LUIS, "???", None)
        await source.set_mode(LUIS, "human")
        await source.forget_contact(ANA)  # its messages go; their counts stay
        kept, inbox = await source.kept_counts(), await source.conversation_counts()
    finally:
        await source.close()
    assert sum(kept.values()) == 3 and inbox["all"] == 1
    await copy_to_postgres(tmp_path / "kept.db", postgres_url, clock, lambda *_: None)
    target = PostgresStore(postgres_url, clock)
    await target.open()
    try:
        assert await target.kept_counts() == kept
        assert await target.conversation_counts() == inbox
        await admin_inbound(target, clock, EVA, "hola", "saludo")  # and go on from there
        await target.fold_counts()
        assert sum((await target.kept_counts()).values()) == 5
        assert (await target.conversation_counts())["all"] == 2
    finally:
        await target.close()


async def test_a_write_outside_the_store_is_counted_and_folded_later(
    tmp_path: Path, clock: Clock
) -> None:
    store = SQLiteStore(tmp_path / "outside.db", clock)
    await store.open()
    try:
        await admin_inbound(store, clock, ANA, "hola")
        store.db.execute(  # as a script or an older tool might: no store transaction around it
            "INSERT INTO messages (phone, direction, text, status, origin, created_at, "
            "updated_at) VALUES (?, 'in', 'x', 'received', 'massiva', ?, ?)",
            (LUIS, "2026-11-23T14:30:00.000000Z", "2026-11-23T14:30:00.000000Z"),
        )
        assert await store.kept_counts() == await recount(store)  # readers add what waits
        [(waiting,)] = await rows(store, "SELECT COUNT(*) FROM message_count_changes")
        assert waiting >= 2  # the store's own writes wait for the sweep too
        assert await store.fold_counts() == waiting
        assert await rows(store, "SELECT COUNT(*) FROM message_count_changes") == [(0,)]
        assert await store.kept_counts() == await recount(store)
        assert await store.fold_counts() == 0  # nothing left: no write at all
    finally:
        await store.close()


async def test_a_long_backlog_is_folded_a_few_changes_per_transaction(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite's writer runs on the event loop: seconds of webhooks folded in one transaction
    # held it tens of milliseconds. PostgreSQL: a copy's backlog, or a service stopped a while,
    # was one statement of minutes. FOLD_ROWS at a time, the counts the same.
    monkeypatch.setattr(sqlite_counts, "FOLD_ROWS", 3)
    monkeypatch.setattr(pg_counts, "FOLD_ROWS", 3)
    for n in range(5):
        await admin_inbound(store, clock, f"58412{4000000 + n:07d}", f"hola {n}")
    [(waiting,)] = await rows(store, "SELECT COUNT(*) FROM message_count_changes")
    assert waiting > 3 * 2
    transactions = []
    each = store._transaction  # type: ignore[attr-defined]

    async def counted(*args: Any, **kwargs: Any) -> Any:
        transactions.append(args)
        return await each(*args, **kwargs)

    monkeypatch.setattr(store, "_transaction", counted)
    assert await store.fold_counts() == waiting
    assert len(transactions) == waiting // 3 + 1  # the last one finds fewer than 3
    assert await rows(store, "SELECT COUNT(*) FROM message_count_changes") == [(0,)]
    kept = await store.kept_counts()
    assert kept == await recount(store)
    await assert_rollups_agree(store, kept)
    assert await store.fold_counts() == 0
