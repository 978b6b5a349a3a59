"""The store contract: every behaviour of the `Store` interface, run against both backends
(SQLite on a file, PostgreSQL on the test run's database). Where two instances appear they
share one database, as two processes would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from responder import service as service_module
from responder.budget import Overrun, Owner
from responder.config import Settings
from responder.engine import Contact, Decision, FlowState, InboundMessage, Reply
from responder.providers.base import OutboundSMS, Provider, SendResult
from responder.service import Service
from responder.store import Store, make_store
from responder.store.models import (
    UNASSIGNED,
    AuditEvent,
    FlowTimeout,
    InboundJob,
    InboundResult,
    MessageStateError,
    OptedOutError,
    PollResult,
    SavedReplyExists,
    SendOutcome,
    SessionRecord,
    StaleRuleVersion,
    StatusUpdate,
    UnknownContactError,
    UnknownMessageError,
    UnknownUserError,
    User,
    UserExists,
)
from responder.store.overruns import MAX_OVERRUNS
from responder.store.postgres import PostgresStore
from responder.store.reports import EARLY_REPORTS_KEPT
from responder.store.search import SearchQuery
from responder.store.sqlite import SQLiteStore
from responder.web.sessions import SignInLimiter
from tests.conftest import Clock

ANA, LUIS, EVA = "584121234567", "584241234567", "584161112233"
LINE = "584141234567"
OpenStore = Callable[..., Awaitable[Store]]


class CountingProvider(Provider):
    name = "counting"

    def __init__(self, credits: float) -> None:
        self.credits = credits
        self.calls = 0

    async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
        raise NotImplementedError

    async def balance(self) -> float:
        self.calls += 1
        await asyncio.sleep(0)
        return self.credits


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """RESPONDER_DATABASE for this test: a SQLite file, or the run's PostgreSQL database."""
    if backend == "sqlite":
        return str(tmp_path / "contract.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def open_store(database: str, clock: Clock) -> AsyncIterator[OpenStore]:
    """Opens one more instance on the test's database (`instance` names it in claims)."""
    opened: list[Store] = []

    async def open_one(instance: str | None = None) -> Store:
        store = make_store(database, clock)
        if instance is not None:
            store.instance = instance
        await store.open()
        opened.append(store)
        return store

    yield open_one
    for store in reversed(opened):
        if store.is_open:
            await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> Store:
    return await open_store()


async def rows(store: Store, sql: str) -> list[tuple[Any, ...]]:
    """A query without parameters, run as it is on either backend (for what no method shows)."""
    if isinstance(store, SQLiteStore):
        return [tuple(r) for r in store.db.execute(sql).fetchall()]
    assert isinstance(store, PostgresStore)
    return [tuple(r) for r in await store.pool.fetch(sql)]


def answer(text: str | None, rule: str = "r", **changes: Any) -> Callable[[Contact], Decision]:
    replies = (Reply(text, 1, "sandbox"),) if text else ()
    return lambda contact: Decision(rule, replies, "test", **changes)


async def inbound(
    store: Store,
    clock: Clock,
    phone: str,
    text: str,
    decide: Callable[[Contact], Decision] | None = None,
    *,
    line: str | None = LINE,
    dedupe: float = 0.0,
    history: float = 0.0,
) -> InboundResult:
    message = InboundMessage(phone, text, clock(), line)
    job = InboundJob(message, decide or answer(f"re: {text}"), dedupe, history)
    return await store.receive_inbound(job)


# -- inbound messages and their replies -----------------------------------------------------------


async def test_an_inbound_message_and_its_replies_are_committed_together(
    store: Store, clock: Clock
) -> None:
    seen: list[Contact] = []

    def decide(contact: Contact) -> Decision:
        seen.append(contact)
        return Decision("hola", (Reply("uno", 1, "sandbox"), Reply("dos", 1, "massiva")), "t")

    result = await inbound(store, clock, ANA, "hola", decide)
    assert [c.first_contact for c in seen] == [True]
    assert len(result.reply_ids) == 2 and result.reply_ids[0] > result.message_id
    messages = await store.messages(ANA)
    assert [(m.id, m.direction, m.text, m.status) for m in messages] == [
        (result.message_id, "in", "hola", "received"),
        (result.reply_ids[0], "out", "uno", "queued"),
        (result.reply_ids[1], "out", "dos", "queued"),
    ]
    assert (messages[0].rule, messages[0].line, messages[0].origin) == ("hola", LINE, "massiva")
    assert (messages[2].provider, messages[2].origin, messages[2].rule) == (
        "massiva",
        "auto",
        "hola",
    )
    assert messages[0].created_at == clock()
    conversation = await store.conversation(ANA)
    assert (conversation.last_text, conversation.unread, conversation.mode) == ("dos", 1, "bot")
    assert await store.messages_by_id([result.reply_ids[1], result.message_id]) == [
        messages[0],
        messages[2],
    ]


async def test_concurrent_inbound_is_grouped_and_complete(store: Store, clock: Clock) -> None:
    seen: list[Contact] = []

    def decide(contact: Contact) -> Decision:
        seen.append(contact)
        return Decision("r", (Reply(f"re {len(seen)}", 1, "sandbox"),), "test")

    jobs = [
        InboundJob(InboundMessage(f"58412000{i % 50:04d}", f"m{i}", clock()), decide)
        for i in range(500)
    ]
    results = await asyncio.gather(*(store.receive_inbound(job) for job in jobs))
    assert len(await store.all_messages()) == 1000
    assert len({r.message_id for r in results}) == 500
    assert all(len(r.reply_ids) == 1 for r in results)
    # Contacts after their first message are no longer first contacts, even within one batch.
    assert sum(c.first_contact for c in seen) == 50
    conversations = await store.conversations(limit=500)
    assert len(conversations) == 50
    assert all(c.unread == 10 for c in conversations)


async def test_a_failing_decision_does_not_lose_the_message(store: Store, clock: Clock) -> None:
    def broken(contact: Contact) -> Decision:
        raise RuntimeError("bug")

    result = await inbound(store, clock, ANA, "hola", broken)
    [message] = await store.all_messages()
    assert message.id == result.message_id
    assert message.error == "internal error: bug"


async def test_a_number_s_messages_are_decided_one_after_another_across_instances(
    open_store: OpenStore, clock: Clock
) -> None:
    """Each decision sees every earlier one from the number, whichever instance took it."""
    first, second = await open_store(), await open_store()
    seen: list[int] = []

    def count(contact: Contact) -> Decision:
        n = int(contact.fields.get("n", 0))
        seen.append(n)
        return Decision("r", (), "t", fields={"n": n + 1})

    await asyncio.gather(
        *(inbound(s, clock, ANA, f"m{i}", count) for i in range(20) for s in (first, second))
    )
    assert sorted(seen) == list(range(40))
    assert (await second.conversation(ANA)).fields == {"n": 40}


# -- dedupe window, reply limit and loop guard inputs: read from the database ---------------------


async def test_the_same_message_within_the_dedupe_window_is_a_duplicate(
    store: Store, clock: Clock
) -> None:
    first = await inbound(store, clock, ANA, "hola", dedupe=10)
    clock.advance(9)
    again = await inbound(store, clock, ANA, "hola", dedupe=10)
    assert again.duplicate and again.message_id == first.message_id
    assert again.decision.explanation == f"duplicate of message {first.message_id}"
    other_line = await inbound(store, clock, ANA, "hola", line="584140000000", dedupe=10)
    assert not other_line.duplicate
    clock.advance(11)
    later = await inbound(store, clock, ANA, "hola", dedupe=10)
    assert not later.duplicate
    texts = [m.text for m in await store.messages(ANA) if m.direction == "in"]
    assert texts == ["hola", "hola", "hola"]
    assert (await store.conversation(ANA)).unread == 3  # the duplicate changed nothing


async def test_duplicates_within_one_batch_and_without_a_window(store: Store, clock: Clock) -> None:
    message = InboundMessage(ANA, "hola", clock(), LINE)
    together = await asyncio.gather(
        *(store.receive_inbound(InboundJob(message, answer("re"), 10)) for _ in range(3))
    )
    assert [r.duplicate for r in together] == [False, True, True]
    assert {r.message_id for r in together} == {together[0].message_id}
    no_window = await store.receive_inbound(InboundJob(message, answer("re"), 0))
    assert not no_window.duplicate


async def test_a_duplicate_reaching_another_instance_is_answered_once(
    open_store: OpenStore, clock: Clock
) -> None:
    first, second = await open_store(), await open_store()
    await inbound(second, clock, ANA, "antes", dedupe=10)  # `second` has seen this number
    clock.advance(30)
    original = await inbound(first, clock, ANA, "hola", dedupe=10)
    retry = await inbound(second, clock, ANA, "hola", dedupe=10)
    assert retry.duplicate and retry.message_id == original.message_id


async def test_decisions_see_recent_auto_replies_from_the_database(
    open_store: OpenStore, clock: Clock
) -> None:
    """Auto-replies inside the limits' window, whichever instance sent them and including a
    flow timeout's: not confirmations of opt-out/opt-in, not staff messages, not older ones."""
    first, second = await open_store(), await open_store()
    start = clock()
    await inbound(first, clock, ANA, "viejo", answer("muy viejo"))
    clock.advance(7200)
    await inbound(second, clock, ANA, "alta", answer("confirmo alta", "opt_in", opted_out=False))
    await inbound(first, clock, ANA, "hola", answer("hola!"))
    await second.queue_outbound(ANA, [Reply("agente", 1, "sandbox")], "agent")
    flow = FlowState("pedido", 1, 0, clock())
    await first.receive_inbound(
        InboundJob(
            InboundMessage(ANA, "pedido", clock()),
            answer("¿talla?", "pedido", flow=flow, flow_changed=True),
        )
    )
    timeout = Decision(
        "pedido", (Reply("se acabó el tiempo", 1, "sandbox"),), "t", flow_changed=True
    )
    assert await second.apply_decisions([FlowTimeout(ANA, timeout, flow)])
    clock.advance(60)
    seen: list[Contact] = []

    def remember(contact: Contact) -> Decision:
        seen.append(contact)
        return Decision("r", (Reply("siguiente", 1, "sandbox"),), "t")

    # Two from the same number in one batch: the second sees the first's reply too.
    await asyncio.gather(
        *(
            inbound(s, clock, ANA, t, remember, history=3600)
            for s, t in ((first, "a"), (first, "b"))
        )
    )
    replies = [text for _, text in seen[0].recent_replies]
    assert replies == ["hola!", "¿talla?", "se acabó el tiempo"]
    assert [text for _, text in seen[1].recent_replies] == [*replies, "siguiente"]
    assert all(at > start for at, _ in seen[0].recent_replies)


# -- opt-out --------------------------------------------------------------------------------------


async def test_an_opt_out_stops_what_is_queued_and_refuses_new_messages(
    store: Store, clock: Clock
) -> None:
    await inbound(store, clock, ANA, "hola", answer(None))
    [waiting] = await store.queue_outbound(ANA, [Reply("oferta", 1, "sandbox")], "cli")
    later = clock() + timedelta(hours=1)
    [scheduled] = await store.queue_outbound(
        ANA, [Reply("luego", 1, "sandbox")], "cli", send_at=later
    )
    assert scheduled.status == "scheduled" and scheduled.send_at == later
    result = await inbound(store, clock, ANA, "BAJA", answer("Listo", "opt_out", opted_out=True))
    by_id = {m.id: m for m in await store.messages(ANA)}
    for stopped in (waiting.id, scheduled.id):
        assert (by_id[stopped].status, by_id[stopped].error) == (
            "failed",
            "not sent: the number opted out",
        )
    conversation = await store.conversation(ANA)
    assert conversation.opted_out and conversation.opted_out_at == clock()
    with pytest.raises(OptedOutError):
        await store.queue_outbound(ANA, [Reply("otra", 1, "sandbox")], "agent")
    # Only the confirmation of the opt-out itself still goes out.
    assert [i.id for i in await store.claim_outbox(10)] == list(result.reply_ids)
    await inbound(store, clock, ANA, "ALTA", answer("Bienvenido", "opt_in", opted_out=False))
    assert not (await store.conversation(ANA)).opted_out
    assert len(await store.queue_outbound(ANA, [Reply("de nuevo", 1, "sandbox")], "agent")) == 1


async def test_an_opt_out_in_a_group_keeps_the_id_of_the_message_that_asked(
    store: Store, clock: Clock
) -> None:
    """The contact keeps which message opted it out, also when that message is not the first
    of its group (its id is only known when the group's rows are written)."""
    stop = answer("Listo", "opt_out", opted_out=True)
    jobs = [
        InboundJob(InboundMessage(phone, text, clock(), LINE), decide)
        for phone, text, decide in (
            (ANA, "hola", answer("hola")),
            (LUIS, "hola", answer("hola")),
            (ANA, "precio", answer("10")),
            (LUIS, "BAJA", stop),
            (EVA, "BAJA", stop),
        )
    ]
    results = await asyncio.gather(*(store.receive_inbound(job) for job in jobs))
    kept = await rows(
        store,
        "SELECT phone, opted_out, opt_out_message_id FROM contacts ORDER BY phone",
    )
    assert kept == [
        (ANA, False, None),
        (EVA, True, results[4].message_id),
        (LUIS, True, results[3].message_id),
    ]
    await inbound(store, clock, LUIS, "ALTA", answer("Bienvenido", "opt_in", opted_out=False))
    assert (
        await rows(store, f"SELECT opt_out_message_id FROM contacts WHERE phone = '{LUIS}'")
    ) == [(None,)]


# -- outbox: claims, leases, priorities -----------------------------------------------------------


async def test_claims_are_stamped_and_only_expired_ones_are_taken_over(
    open_store: OpenStore, clock: Clock
) -> None:
    store = await open_store()
    await store.queue_outbound(ANA, [Reply("hola", 1, "massiva")], "cli")
    other = await open_store("other-host:4242:abcd")  # a live instance elsewhere
    [claimed] = await other.claim_outbox(10)
    assert (claimed.text, claimed.attempts) == ("hola", 1)
    assert await store.release_expired() == 0
    assert await store.claim_outbox(10) == []
    assert await store.release_own() == 0  # a stop never touches another instance's sends
    clock.advance(20)
    await other.renew_leases([claimed.id])  # still sending: the lease is renewed
    clock.advance(20)
    assert await store.claim_outbox(10) == []
    clock.advance(11)  # the other instance stopped renewing
    [taken] = await store.claim_outbox(10)
    assert (taken.id, taken.attempts) == (claimed.id, 2)


async def test_a_dead_process_on_this_machine_loses_its_claims_at_once(
    open_store: OpenStore, clock: Clock
) -> None:
    store = await open_store()
    await store.queue_outbound(ANA, [Reply("hola", 1, "massiva")], "cli")
    dead = await open_store(store.instance.rsplit(":", 1)[0] + ":dead")  # our pid, gone
    assert len(await dead.claim_outbox(10)) == 1
    await dead.close()
    assert await store.release_expired() == 1
    assert [m.status for m in await store.all_messages()] == ["queued"]


@pytest.mark.parametrize(("at_most_once", "status"), [(False, "queued"), (True, "failed")])
async def test_a_stop_releases_only_its_own_sends(
    open_store: OpenStore, clock: Clock, at_most_once: bool, status: str
) -> None:
    store = await open_store()
    await store.queue_outbound(ANA, [Reply("mine", 1, "massiva")], "cli")
    assert len(await store.claim_outbox(10)) == 1
    await store.queue_outbound(LUIS, [Reply("theirs", 1, "massiva")], "cli")
    other = await open_store("other-host:4242:abcd")
    assert len(await other.claim_outbox(10)) == 1
    assert await store.release_own(at_most_once) == 1
    by_text = {m.text: m for m in await store.all_messages()}
    assert (by_text["mine"].status, by_text["theirs"].status) == (status, "sending")
    if at_most_once:
        assert by_text["mine"].error is not None and "at_most_once" in by_text["mine"].error


async def test_replies_handed_over_are_committed_claimed(store: Store, clock: Clock) -> None:
    handed: list[list[Any]] = []
    store.hand_over = handed.append
    result = await inbound(store, clock, ANA, "hola")
    [[item]] = handed
    assert (item.id, item.phone, item.text, item.attempts) == (
        result.reply_ids[0],
        ANA,
        "re: hola",
        1,
    )
    assert result.claimed == (item,)
    [_, reply] = await store.messages(ANA)
    assert reply.status == "sending"
    assert await store.claim_outbox(10) == []
    assert await store.release_own() == 1  # leased to this instance


async def test_a_reply_to_an_old_message_is_leased_from_now(
    open_store: OpenStore, clock: Clock
) -> None:
    """A message replayed from the spool was received minutes ago: its reply, handed over at
    commit, must not look like an abandoned claim that another instance takes over and sends
    a second time."""
    store = await open_store()
    store.hand_over = lambda items: None
    message = InboundMessage(ANA, "hola", clock() - timedelta(minutes=10), LINE)
    result = await store.receive_inbound(InboundJob(message, answer("re: hola")))
    assert len(result.claimed) == 1
    other = await open_store("other-host:4242:abcd")
    assert await other.claim_outbox(10) == []
    assert await other.release_expired() == 0
    clock.advance(31)  # now the lease has run out, with nobody renewing it
    assert [i.id for i in await other.claim_outbox(10)] == list(result.reply_ids)


async def test_customers_first_then_oldest_and_scheduled_when_due(
    store: Store, clock: Clock
) -> None:
    await store.queue_outbound(ANA, [Reply("difusion", 1, "sandbox")], "cli")
    await store.queue_outbound(ANA, [Reply("agente", 1, "sandbox")], "agent")
    later = clock() + timedelta(hours=1)
    await store.queue_outbound(ANA, [Reply("luego", 1, "sandbox")], "cli", send_at=later)
    await store.queue_outbound(ANA, [Reply("respuesta", 1, "sandbox")], "auto")
    claimed = await store.claim_outbox(10)
    assert [i.text for i in claimed] == ["respuesta", "difusion", "agente"]
    assert await store.claim_outbox(10) == []
    clock.advance(3600)
    [due] = await store.claim_outbox(10)
    assert (due.text, due.send_at) == ("luego", later)


async def test_claims_by_two_instances_never_overlap(open_store: OpenStore, clock: Clock) -> None:
    first, second = await open_store(), await open_store()
    for i in range(60):
        await first.queue_outbound(f"58412{i:07d}", [Reply("hola", 1, "sandbox")], "cli")
    claims = await asyncio.gather(*(s.claim_outbox(7) for _ in range(6) for s in (first, second)))
    ids = [item.id for claim in claims for item in claim]
    assert len(ids) == len(set(ids)) == 60


# -- send outcomes, delivery reports, polls -------------------------------------------------------


async def test_outcomes_attempts_and_the_order_of_reports(store: Store, clock: Clock) -> None:
    one, two = await store.queue_outbound(
        ANA, [Reply("uno", 1, "massiva"), Reply("dos", 1, "massiva")], "agent"
    )
    retry_at = clock() + timedelta(seconds=30)
    await store.record_outcomes(
        [
            SendOutcome(one.id, "massiva", "sent", "p-1"),
            SendOutcome(two.id, "massiva", "queued", error="HTTP 500", retry_at=retry_at),
        ]
    )
    assert await store.apply_status(StatusUpdate("massiva", "p-1", "delivered", "+58414", clock()))
    await store.record_outcomes([SendOutcome(one.id, "massiva", "sent", "p-1")])  # a late 'sent'
    assert await store.apply_status(StatusUpdate("massiva", "p-1", "failed", "TARDE", clock()))
    by_id = {m.id: m for m in await store.all_messages()}
    assert (by_id[one.id].status, by_id[one.id].line, by_id[one.id].error) == (
        "delivered",
        "+58414",
        None,
    )
    assert (by_id[two.id].status, by_id[two.id].error) == ("queued", "HTTP 500")
    attempts = await store.message_attempts(one.id)
    assert [(a["outcome"], a["error"]) for a in attempts] == [
        ("sent", None),
        ("sent", None),
        ("report ignored", "failed reported after delivered: TARDE"),
    ]
    assert isinstance(attempts[0]["at"], str) and attempts[0]["at"].endswith("Z")
    assert [a["outcome"] for a in await store.message_attempts(two.id)] == ["retry"]
    assert await store.claim_outbox(10) == []  # the retry waits for its time
    clock.advance(30)
    assert [i.id for i in await store.claim_outbox(10)] == [two.id]


async def test_a_report_that_comes_first_is_applied_with_the_send_s_answer(
    store: Store, clock: Clock
) -> None:
    [message] = await store.queue_outbound(ANA, [Reply("hola", 1, "massiva")], "agent")
    assert not await store.apply_status(StatusUpdate("massiva", "p-9", "failed", "X", clock()))
    await store.record_outcomes([SendOutcome(message.id, "massiva", "sent", "p-9")])
    [stored] = await store.all_messages()
    assert (stored.status, stored.error, stored.provider_id) == ("failed", "X", "p-9")
    assert await rows(store, "SELECT provider_id FROM early_reports") == []


async def early_reports(store: Store) -> list[tuple[Any, ...]]:
    return await rows(
        store, "SELECT provider, provider_id, status, detail FROM early_reports ORDER BY id"
    )


async def test_early_reports_are_dropped_after_48_hours(store: Store, clock: Clock) -> None:
    [old, kept] = await store.queue_outbound(
        ANA, [Reply("uno", 1, "massiva"), Reply("dos", 1, "massiva")], "agent"
    )
    assert not await store.apply_status(StatusUpdate("massiva", "A", "delivered", "L", clock()))
    assert await early_reports(store) == [("massiva", "A", "delivered", "L")]
    clock.advance(EARLY_REPORTS_KEPT.total_seconds() - 60)
    assert not await store.apply_status(StatusUpdate("massiva", "B", "failed", "X", clock()))
    assert len(await early_reports(store)) == 2  # the first one is 47 h 59 min old: kept
    clock.advance(120)
    # The send's answer for A comes after 48 h: too late to be trusted, and it is purged.
    await store.record_outcomes(
        [SendOutcome(old.id, "massiva", "sent", "A"), SendOutcome(kept.id, "massiva", "sent", "B")]
    )
    by_id = {m.id: m for m in await store.all_messages()}
    assert (by_id[old.id].status, by_id[kept.id].status) == ("sent", "failed")
    assert by_id[kept.id].error == "X"
    assert await early_reports(store) == []
    # A new early report purges what has grown old, too.
    assert not await store.apply_status(StatusUpdate("massiva", "C", "failed", None, clock()))
    clock.advance(timedelta(hours=49).total_seconds())
    assert not await store.apply_status(StatusUpdate("massiva", "D", "failed", None, clock()))
    assert await early_reports(store) == [("massiva", "D", "failed", None)]


async def test_an_unconfirmed_send_is_settled_by_its_report(store: Store, clock: Clock) -> None:
    [queued] = await store.queue_outbound(ANA, [Reply("hola", 1, "massiva")], "agent")
    await store.record_outcomes(
        [SendOutcome(queued.id, "massiva", "unconfirmed", "m-7", error="status '7'")]
    )
    assert (await store.all_messages())[0].status == "unconfirmed"
    assert await store.apply_status(StatusUpdate("massiva", "m-7", "delivered", "L", clock()))
    [message] = await store.all_messages()
    assert (message.status, message.error) == ("delivered", None)


async def test_a_failover_is_recorded_as_an_attempt(store: Store, clock: Clock) -> None:
    [message] = await store.queue_outbound(ANA, [Reply("hola", 1, "massiva")], "agent")
    await store.claim_outbox(10)
    await store.record_outcomes(
        [SendOutcome(message.id, "massms", "queued", None, "no credits", clock(), "massiva")]
    )
    [claimed] = await store.claim_outbox(10)
    assert (claimed.provider, claimed.failover_from) == ("massms", "massiva")
    attempts = await store.message_attempts(message.id)
    assert [(a["provider"], a["outcome"]) for a in attempts] == [("massiva", "failover")]


async def test_polls_are_claimed_once_until_their_hold_passes(
    open_store: OpenStore, clock: Clock
) -> None:
    first, second = await open_store(), await open_store()
    for i in range(30):
        [m] = await first.queue_outbound(f"58412{i:07d}", [Reply("hola", 1, "massms")], "cli")
        await first.record_outcomes([SendOutcome(m.id, "massms", "sent", f"ms-{i}")])
    assert await first.claim_polls(["massms"], 100) == []  # first poll after 10 s
    clock.advance(10)
    claims = await asyncio.gather(
        *(s.claim_polls(["massms"], 4) for _ in range(5) for s in (first, second))
    )
    ids = [item.id for claim in claims for item in claim]
    assert len(ids) == len(set(ids)) == 30
    assert await second.claim_polls(["massms"], 100) == []
    assert await second.claim_polls(["massiva"], 100) == []
    results = [PollResult(i, "delivered" if i % 2 else None, None, None) for i in ids[:10]]
    await second.record_polls(results)
    clock.advance(60)  # the hold passed: the ones not recorded are due again
    again = await first.claim_polls(["massms"], 100)
    assert sorted(i.id for i in again) == sorted(ids[10:])
    assert {i.polls for i in again} == {0}
    polled = {m.id: m for m in await first.messages_by_id(ids[:10])}
    assert {polled[i].status for i in ids[:10] if i % 2} == {"delivered"}


# -- shared state: leases, budgets, sign-in failures, balances, meta ------------------------------


async def test_a_lease_has_one_holder_until_it_expires(open_store: OpenStore, clock: Clock) -> None:
    first, second = await open_store(), await open_store()
    assert await first.try_lease("flow-timeouts", 90)
    assert not await second.try_lease("flow-timeouts", 90)
    assert await first.try_lease("flow-timeouts", 90)  # the holder renews
    assert await second.try_lease("balance-check", 90)  # another job, another lease
    clock.advance(91)  # the holder went away without renewing
    assert await second.try_lease("flow-timeouts", 90)
    assert not await first.try_lease("flow-timeouts", 90)


async def test_the_send_budget_is_shared_by_every_instance(
    open_store: OpenStore, clock: Clock
) -> None:
    store, other = await open_store(), await open_store()
    # A burst of one second's worth (20), whichever instance asks, then 20 per second.
    takes = [await s.take_send_budget("massiva", 20, 5) for s in (store, other, store, other)]
    assert takes == [0, 0, 0, 0]
    assert await other.take_send_budget("massiva", 20, 5) == pytest.approx(0.25)
    assert await store.take_send_budget("massms", 20, 5) == 0  # per provider
    clock.advance(0.25)
    assert await store.take_send_budget("massiva", 20, 5) == 0
    # A batch larger than a second's worth waits for a full second, then goes.
    assert await other.take_send_budget("massiva", 20, 50) == pytest.approx(1.0)
    clock.advance(1.0)
    assert await other.take_send_budget("massiva", 20, 50) == 0
    assert await store.take_send_budget("massiva", 20, 1) == pytest.approx(1.55)


async def test_the_send_budget_holds_when_instances_ask_at_once(
    open_store: OpenStore, clock: Clock
) -> None:
    stores = [await open_store(), await open_store()]
    waits = await asyncio.gather(*(s.take_send_budget("massiva", 10, 1) for s in stores * 10))
    assert sorted(waits)[:10] == [0] * 10 and all(w > 0 for w in sorted(waits)[10:])


async def test_sign_in_failures_count_across_instances(open_store: OpenStore, clock: Clock) -> None:
    stores = [await open_store(), await open_store()]
    one, two = (SignInLimiter(store, clock, attempts=5, per=60) for store in stores)
    client = ["client:1.2.3.4"]
    for limiter in (one, two, one, two, one):
        assert await limiter.retry_after(client) == 0
        await limiter.failed(client)
        clock.advance(1)
    assert await two.retry_after(client) == pytest.approx(55)  # the fifth failure was on `one`
    assert await one.retry_after(["client:5.6.7.8"]) == 0  # per client
    clock.advance(55)
    assert await two.retry_after(client) == 0  # the oldest failure left the window
    await one.failed(client)
    assert await two.retry_after(client) > 0
    await two.succeeded(client)
    assert await one.retry_after(client) == 0
    clock.advance(86400)
    await one.failed(["account:admin"])  # failures older than a day are purged
    assert await rows(stores[0], "SELECT key FROM sign_in_failures") == [("account:admin",)]


async def test_balances_are_asked_once_a_minute_for_every_instance(
    make_settings: Callable[..., Settings], backend: str, clock: Clock
) -> None:
    first_provider, second_provider = CountingProvider(907.0), CountingProvider(907.0)
    settings = make_settings(backend=backend)
    first = Service(settings, clock=clock, providers={"massiva": first_provider})
    second = Service(settings, clock=clock, providers={"massiva": second_provider})
    await first.open()
    await second.open()
    try:
        shown = await first.fresh_balances()
        assert [(b.provider, b.credits, b.error) for b in shown] == [("massiva", 907.0, None)]
        again = await second.fresh_balances()  # the other instance reads what the first asked
        assert [(b.provider, b.credits) for b in again] == [("massiva", 907.0)]
        assert (first_provider.calls, second_provider.calls) == (1, 0)
        clock.advance(61)
        second_provider.credits = 900.0
        assert [b.credits for b in await second.fresh_balances()] == [900.0]
        assert [b.credits for b in await first.fresh_balances()] == [900.0]
        assert (first_provider.calls, second_provider.calls) == (1, 1)
        assert (await first.balances())["massiva"]["credits"] == 900.0
        assert (await first.balances())["massiva"]["checked_at"] == "2026-11-23T14:01:01.000000Z"
    finally:
        await second.close()
        await first.close()


async def test_meta_values_are_settled_once_for_every_instance(open_store: OpenStore) -> None:
    stores = [await open_store() for _ in range(3)]
    values = await asyncio.gather(
        *(s.meta_value("session_secret", partial(str, f"secret-{i}")) for i, s in enumerate(stores))
    )
    assert len(set(values)) == 1
    assert await stores[0].meta_value("session_secret", lambda: "another") == values[0]


async def test_overruns_are_counted_per_rule_and_source_by_every_instance(
    open_store: OpenStore, clock: Clock
) -> None:
    first, second = await open_store(), await open_store()
    assert await first.overruns() == []
    lenta = Owner("lenta", 14, r"^(\w|\w\w)+$")
    await first.record_overruns([Overrun("pattern", lenta, "out of time")])
    clock.advance(60)
    bucle = Owner("bucle", 12, "{% for %}")
    # Two instances counting at once add up.
    await asyncio.gather(
        first.record_overruns([Overrun("pattern", lenta, "out of time")]),
        second.record_overruns(
            [Overrun("pattern", lenta, "out of time"), Overrun("template", bucle, "10000 steps")]
        ),
    )
    found = {(o.kind, o.rule): o for o in await second.overruns()}
    pattern = found[("pattern", "lenta")]
    assert (pattern.count, pattern.line, pattern.source) == (3, 14, lenta.source)
    assert pattern.last_at - pattern.first_at == timedelta(seconds=60)
    assert (found[("template", "bucle")].count, found[("template", "bucle")].why) == (
        1,
        "10000 steps",
    )
    # Only the newest are kept: a stream of edited rules cannot grow the value forever.
    many = [Overrun("pattern", Owner(f"r{i}", i, "x"), "out of time") for i in range(150)]
    await first.record_overruns(many)
    kept = await first.overruns()
    assert len(kept) == MAX_OVERRUNS and kept[-1].rule == "r149"


async def test_generated_tokens_survive_restarts(
    make_settings: Callable[..., Settings], backend: str, clock: Clock
) -> None:
    settings = make_settings(backend=backend, RESPONDER_WEBHOOK_TOKEN="", RESPONDER_ADMIN_TOKEN="")
    tokens = []
    for _ in range(2):
        service = Service(settings, clock=clock)
        await service.open()
        tokens.append((service.webhook_token, service.admin_token))
        await service.close()
    assert tokens[0] == tokens[1]
    assert len(tokens[0][0]) >= 24 and tokens[0][0] != tokens[0][1]


# -- sessions -------------------------------------------------------------------------------------


def session_record(key: str, user: str, at: datetime, credential: str = "c1") -> SessionRecord:
    return SessionRecord(key, user, f"csrf-{key}", credential, at, at, at + timedelta(days=7))


async def test_sessions_are_kept_touched_ended_and_purged(store: Store, clock: Clock) -> None:
    start = clock()
    for i in range(4):
        await store.create_session(session_record(f"k{i}", "admin", clock()), keep=3)
        clock.advance(60)
    assert await store.session("k0") is None  # beyond the 3 most recent
    kept = await store.session("k3")
    assert kept == session_record("k3", "admin", start + timedelta(minutes=3))
    await store.touch_session("k1", clock())
    assert (await store.session("k1")) is not None
    await store.create_session(session_record("other", "ana", clock(), "c2"), keep=3)
    assert await store.end_sessions("admin", unless_credential="c9") == 3
    assert await store.session("k3") is None and await store.session("other") is not None
    await store.create_session(session_record("old", "ana", start), keep=3)
    await store.delete_session("other")
    assert await store.session("other") is None
    assert await store.purge_sessions(clock(), start + timedelta(seconds=1)) == 1
    assert await store.session("old") is None


# -- the team: people, tokens, audit ---------------------------------------------------------------


async def test_people_are_added_changed_and_read_by_every_instance(
    open_store: OpenStore, clock: Clock
) -> None:
    first, second = await open_store(), await open_store()
    assert await first.users() == [] and await first.user("ana") is None
    ana = User("ana", "agent", "$argon2id$h1", False, clock())
    await first.add_user(ana)
    await first.add_user(User("bea", "owner", "$argon2id$h2", False, clock()))
    with pytest.raises(UserExists):
        await second.add_user(User("ana", "owner", "$argon2id$h3", False, clock()))
    assert await second.user("ana") == ana
    assert [u.name for u in await second.users()] == ["ana", "bea"]
    promoted = await second.change_user("ana", role="owner")
    assert promoted == User("ana", "owner", "$argon2id$h1", False, ana.created_at)
    assert await first.user("ana") == promoted
    with pytest.raises(UnknownUserError):
        await first.change_user("nadie", disabled=True)
    assert ana.as_json() == {
        "name": "ana",
        "role": "agent",
        "disabled": False,
        "created_at": "2026-11-23T14:00:00.000000Z",
    }


@pytest.mark.parametrize(
    ("change", "ends"),
    [
        ({"disabled": True}, True),
        ({"password_hash": "$argon2id$new"}, True),
        ({"password_hash": "$argon2id$h1"}, False),  # the same password: nothing changed
        ({"role": "owner"}, False),
    ],
)
async def test_disabling_or_a_new_password_ends_the_persons_sessions_at_once(
    open_store: OpenStore, clock: Clock, change: dict[str, Any], ends: bool
) -> None:
    first, second = await open_store(), await open_store()
    await first.add_user(User("ana", "agent", "$argon2id$h1", False, clock()))
    await first.create_session(session_record("ana-1", "ana", clock()), keep=5)
    await first.create_session(session_record("bea-1", "bea", clock()), keep=5)
    await second.change_user("ana", **change)
    assert (await first.session("ana-1") is None) is ends
    assert await first.session("bea-1") is not None


async def test_api_tokens_are_kept_by_hash_touched_and_revoked(
    open_store: OpenStore, clock: Clock
) -> None:
    first, second = await open_store(), await open_store()
    token = await first.add_api_token("ana", "sha-1")
    other = await first.add_api_token("ana", "sha-2")
    assert (token.user, token.created_at, token.last_used_at, token.revoked) == (
        "ana",
        clock(),
        None,
        False,
    )
    assert await second.api_token_by_hash("sha-1") == token
    assert await second.api_token_by_hash("sha-9") is None
    clock.advance(60)
    await second.touch_api_token(token.id, clock())
    found = await first.api_token(token.id)
    assert found is not None and found.last_used_at == clock()
    assert await second.revoke_api_token(token.id)
    assert not await first.revoke_api_token(token.id)  # once
    assert not await first.revoke_api_token(10**9)
    revoked = await first.api_token_by_hash("sha-1")
    assert revoked is not None and revoked.revoked
    assert [(t.id, t.revoked) for t in await second.api_tokens("ana")] == [
        (token.id, True),
        (other.id, False),
    ]
    assert await second.api_tokens("bea") == []


async def test_the_audit_trail_lists_the_newest_first(open_store: OpenStore, clock: Clock) -> None:
    first, second = await open_store(), await open_store()
    await first.record_audit(AuditEvent(clock(), "admin", "user_created", "ana", {"role": "agent"}))
    clock.advance(1)
    await second.record_audit(AuditEvent(clock(), None, "sign_in_failed", "nadie\x00", {}))
    clock.advance(1)
    await first.record_audit(
        AuditEvent(clock(), "ana", "mode_changed", ANA, {"mode": "human", "nota": "ñ"})
    )
    events = await second.audit_events()
    assert [e.action for e in events] == ["mode_changed", "sign_in_failed", "user_created"]
    assert events[0].detail == {"mode": "human", "nota": "ñ"} and events[0].actor == "ana"
    assert events[2] == AuditEvent(
        clock() - timedelta(seconds=2), "admin", "user_created", "ana", {"role": "agent"}
    )
    assert [e.action for e in await first.audit_events(limit=1)] == ["mode_changed"]
    assert events[0].as_json()["at"] == "2026-11-23T14:00:02.000000Z"


async def test_a_persons_message_carries_its_author(store: Store, clock: Clock) -> None:
    await inbound(store, clock, ANA, "hola")
    [signed] = await store.queue_outbound(
        ANA, [Reply("le atiende Ana", 1, "sandbox")], "agent", handoff=True, author="ana"
    )
    [unsigned] = await store.queue_outbound(ANA, [Reply("desde la consola", 1, "sandbox")], "cli")
    assert (signed.author, unsigned.author) == ("ana", None)
    shown = [(m.text, m.author) for m in await store.messages(ANA)]
    assert shown == [
        ("hola", None),
        ("re: hola", None),
        ("le atiende Ana", "ana"),
        ("desde la consola", None),
    ]
    assert signed.as_json()["author"] == "ana"
    assert [m.author for m in await store.messages_by_id([signed.id])] == ["ana"]


# -- the inbox: retries, cancellations, failures, saved replies ---------------------------------


async def fail(store: Store, message_id: int, error: str = "massiva: rejected (x)") -> None:
    [claimed] = [i for i in await store.claim_outbox(10) if i.id == message_id]
    await store.record_outcomes([SendOutcome(claimed.id, claimed.provider, "failed", error=error)])


async def test_a_failed_message_is_queued_again_as_a_new_attempt(
    open_store: OpenStore, clock: Clock
) -> None:
    store, other = await open_store(), await open_store()
    await inbound(store, clock, ANA, "hola", answer(None))
    [sent] = await store.queue_outbound(ANA, [Reply("le escribo", 1, "sandbox")], "agent")
    await fail(store, sent.id)
    assert await other.failed_phones([ANA, LUIS]) == {ANA}
    clock.advance(3600)
    retried = await other.retry_message(sent.id, "ana")
    assert (retried.status, retried.error, retried.text) == ("queued", None, "le escribo")
    assert retried.send_at == clock() and retried.updated_at == clock()
    assert await store.failed_phones([ANA]) == set()
    [claimed] = await store.claim_outbox(10)
    assert (claimed.id, claimed.attempts, claimed.send_at) == (sent.id, 2, clock())
    attempts = await store.message_attempts(sent.id)
    assert [(a["outcome"], a["error"]) for a in attempts] == [
        ("failed", "massiva: rejected (x)"),
        ("requeued", "retried by ana"),
    ]
    for status in ("sending", "queued"):  # only a failed message is retried
        with pytest.raises(MessageStateError) as refused:
            await store.retry_message(sent.id, "ana")
        assert refused.value.status == status
        if status == "sending":
            await store.record_outcomes([SendOutcome(sent.id, "sandbox", "queued")])
    with pytest.raises(UnknownMessageError):
        await store.retry_message(999_999, "ana")
    [inbound_id] = [m.id for m in await store.messages(ANA) if m.direction == "in"]
    with pytest.raises(UnknownMessageError):  # an inbound message is not anyone's to resend
        await store.retry_message(inbound_id, "ana")


async def test_a_retry_to_a_number_that_opted_out_is_refused(store: Store, clock: Clock) -> None:
    await inbound(store, clock, ANA, "hola", answer(None))
    [sent] = await store.queue_outbound(ANA, [Reply("oferta", 1, "sandbox")], "agent")
    await fail(store, sent.id)
    result = await inbound(store, clock, ANA, "BAJA", answer("Listo", "opt_out", opted_out=True))
    with pytest.raises(OptedOutError):
        await store.retry_message(sent.id, "ana")
    assert (await store.messages_by_id([sent.id]))[0].status == "failed"
    # The confirmation of the opt-out itself may be sent again.
    [confirmation] = result.reply_ids
    await fail(store, confirmation)
    assert (await store.retry_message(confirmation, "ana")).status == "queued"


async def test_a_queued_message_is_cancelled_and_never_sent(store: Store, clock: Clock) -> None:
    await inbound(store, clock, ANA, "hola", answer(None))
    [waiting] = await store.queue_outbound(ANA, [Reply("ya va", 1, "sandbox")], "agent")
    [later] = await store.queue_outbound(
        ANA, [Reply("mañana", 1, "sandbox")], "cli", send_at=clock() + timedelta(days=1)
    )
    for message in (waiting, later):
        cancelled = await store.cancel_message(message.id, "bea")
        assert (cancelled.status, cancelled.error) == ("failed", "cancelled by bea")
    clock.advance(2 * 86400)
    assert await store.claim_outbox(10) == []
    # A cancelled message is not a failure to flag; it can still be sent after all.
    assert await store.failed_phones([ANA]) == set()
    assert [a["outcome"] for a in await store.message_attempts(waiting.id)] == ["cancelled"]
    with pytest.raises(MessageStateError) as refused:
        await store.cancel_message(waiting.id, "bea")
    assert refused.value.status == "failed"
    assert (await store.retry_message(waiting.id, "ana")).status == "queued"
    [claimed] = await store.claim_outbox(10)
    with pytest.raises(MessageStateError) as sending:
        await store.cancel_message(claimed.id, "bea")
    assert sending.value.status == "sending"


async def test_a_message_in_the_provider_s_scheduler_is_not_cancelled(
    store: Store, clock: Clock
) -> None:
    await inbound(store, clock, ANA, "hola", answer(None))
    [later] = await store.queue_outbound(
        ANA,
        [Reply("mañana", 1, "sandbox")],
        "cli",
        send_at=clock() + timedelta(days=1),
        due=clock(),
    )
    [claimed] = await store.claim_outbox(10)
    await store.record_outcomes([SendOutcome(claimed.id, "sandbox", "scheduled", "p-1")])
    assert (await store.messages_by_id([later.id]))[0].status == "scheduled"
    with pytest.raises(MessageStateError):
        await store.cancel_message(later.id, "bea")


async def test_a_failure_is_flagged_until_something_gets_through(
    store: Store, clock: Clock
) -> None:
    for phone in (ANA, LUIS):
        await inbound(store, clock, phone, "hola", answer(None))
    [first] = await store.queue_outbound(ANA, [Reply("uno", 1, "sandbox")], "agent")
    await fail(store, first.id, "expired: the message waited too long to be sent")
    [lost] = await store.queue_outbound(LUIS, [Reply("dos", 1, "sandbox")], "agent")
    await fail(store, lost.id)
    assert await store.failed_phones([ANA, LUIS, EVA]) == {ANA, LUIS}
    clock.advance(1)
    await store.queue_outbound(ANA, [Reply("tres", 1, "sandbox")], "agent")
    [claimed] = await store.claim_outbox(10)
    await store.record_outcomes([SendOutcome(claimed.id, "sandbox", "sent", "p-3")])
    assert await store.failed_phones([ANA, LUIS]) == {LUIS}
    assert await store.failed_phones([]) == set()


async def test_saved_replies_are_kept_by_name_for_every_instance(
    open_store: OpenStore, clock: Clock
) -> None:
    first, second = await open_store(), await open_store()
    hours = await first.add_saved_reply("horario", "Abrimos de 8 a 5, {{ contact.nombre }}", "ana")
    assert (hours.name, hours.author, hours.created_at) == ("horario", "ana", clock())
    price = await second.add_saved_reply("precios", "Vea la lista", None)
    with pytest.raises(SavedReplyExists):
        await second.add_saved_reply("horario", "otro", "bea")
    assert await first.saved_replies() == [hours, price]
    assert hours.as_json()["created_at"] == "2026-11-23T14:00:00.000000Z"
    assert await second.delete_saved_reply(hours.id) == hours
    assert await first.delete_saved_reply(hours.id) is None
    assert [r.name for r in await first.saved_replies()] == ["precios"]


# -- rules versions -------------------------------------------------------------------------------


async def test_rule_versions_are_published_in_order_and_a_stale_base_is_refused(
    open_store: OpenStore, clock: Clock
) -> None:
    first, second = await open_store(), await open_store()
    assert await first.latest_rule_version_id() is None
    v1 = await first.add_rule_version(
        "rules: []", {"a.txt": "hola {{ x }}"}, sha256="s1", source="file"
    )
    assert (v1.source, v1.author, v1.note, v1.created_at) == ("file", None, "", clock())
    assert v1.templates == {"a.txt": "hola {{ x }}"}
    v2 = await second.add_rule_version(
        "rules: [1]", {}, sha256="s2", source="admin", author="ana", base=v1.id, check_base=True
    )
    assert await first.latest_rule_version_id() == v2.id > v1.id
    with pytest.raises(StaleRuleVersion) as stale:
        await first.add_rule_version(
            "rules: [2]", {}, sha256="s3", source="admin", base=v1.id, check_base=True
        )
    assert stale.value.active == v2.id
    assert await second.rule_version(v1.id) == v1
    assert await second.rule_version(999) is None
    assert [v.id for v in await first.rule_versions()] == [v2.id, v1.id]
    assert await first.rule_version_with_sha("s1") == v1
    assert await first.rule_version_with_sha("nope") is None


async def test_two_publishes_from_one_base_cannot_both_succeed(
    open_store: OpenStore, clock: Clock
) -> None:
    stores = [await open_store() for _ in range(4)]
    base = (await stores[0].add_rule_version("r0", {}, sha256="s0", source="file")).id

    async def publish(store: Store, n: int) -> bool:
        try:
            await store.add_rule_version(
                f"r{n}", {}, sha256=f"s{n}", source="admin", base=base, check_base=True
            )
        except StaleRuleVersion:
            return False
        return True

    assert sorted(await asyncio.gather(*(publish(s, n) for n, s in enumerate(stores)))) == [
        False,
        False,
        False,
        True,
    ]


# -- flows ----------------------------------------------------------------------------------------


async def test_a_flow_timeout_applies_only_to_the_flow_it_expected(
    store: Store, clock: Clock
) -> None:
    flow = FlowState("pedido", 1, 0, clock())
    await inbound(store, clock, ANA, "pedido", answer("¿talla?", flow=flow, flow_changed=True))
    [waiting] = await store.contacts_in_flows()
    assert (waiting.phone, waiting.flow) == (ANA, flow)
    stale = FlowState("pedido", 0, 0, clock())
    timeout = Decision("pedido", (Reply("adiós", 1, "sandbox"),), "t", flow_changed=True)
    assert await store.apply_decisions([FlowTimeout(ANA, timeout, stale)]) == []
    clock.advance(600)
    # A contact that is gone (forgotten meanwhile) is skipped, not the whole batch.
    [reply_id] = await store.apply_decisions(
        [FlowTimeout(LUIS, timeout, flow), FlowTimeout(ANA, timeout, flow)]
    )
    assert await store.contacts_in_flows() == []
    last = (await store.messages(ANA))[-1]
    assert (last.id, last.text, last.origin, last.rule, last.status) == (
        reply_id,
        "adiós",
        "auto",
        "pedido",
        "queued",
    )
    assert (await store.conversation(ANA)).last_message_at == clock()
    with pytest.raises(UnknownContactError):
        await store.conversation(LUIS)


async def test_flow_timeouts_end_many_flows_in_one_batch(store: Store, clock: Clock) -> None:
    """The sweep's batch: each contact's own reply (or none), flow cleared, in one commit;
    a contact whose flow moved on meanwhile is left as it is."""
    phones = [f"58412{i:07d}" for i in range(1, 8)]
    flow = FlowState("pedido", 1, 0, clock())
    for phone in phones:
        await inbound(
            store, clock, phone, "pedido", answer("¿talla?", flow=flow, flow_changed=True)
        )
    clock.advance(600)
    ended = Decision("pedido", (), "t", flow_changed=True)
    timeouts = [
        FlowTimeout(
            phone,
            replace(ended, replies=(Reply(f"adiós {n}", 1, "sandbox"),) * (n % 3)),
            flow if n != 3 else FlowState("otro", 0, 0, clock()),
        )
        for n, phone in enumerate(phones)
    ]
    ids = await store.apply_decisions(timeouts)
    assert len(ids) == sum(n % 3 for n in range(7) if n != 3) == 6
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert [c.phone for c in await store.contacts_in_flows()] == [phones[3]]
    for n, phone in enumerate(phones):
        texts = [m.text for m in await store.messages(phone)]
        assert texts[2:] == ([] if n == 3 else [f"adiós {n}"] * (n % 3)), (n, texts)
    sent = [m for p in phones for m in await store.messages(p) if m.text.startswith("adiós")]
    assert {m.id for m in sent} == set(ids)
    assert {(m.status, m.origin, m.rule) for m in sent} == {("queued", "auto", "pedido")}


SWEPT_FLOW = """
rules:
  - name: otro
    fallback: true
    reply: "No entendi."
flows:
  encuesta:
    trigger: {keywords: [encuesta]}
    timeout: 1h
    timeout_reply: "Se acabo el tiempo."
    steps:
      - ask: "Del 1 al 5?"
        save: puntaje
"""


async def test_the_flow_sweep_ends_every_overdue_flow_a_page_at_a_time(
    backend: str,
    make_settings: Callable[..., Settings],
    workdir: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pages of 2 waiting contacts, each page's flows ended in one transaction: every overdue
    flow ends once with its timeout reply queued; one still within its hour stays."""
    monkeypatch.setattr(service_module, "FLOW_BATCH", 2)
    (workdir / "rules.yaml").write_text(SWEPT_FLOW, encoding="utf-8")
    service = Service(make_settings(backend=backend), clock=clock)
    await service.open()
    try:
        phones = [f"58412{i:07d}" for i in range(5)]
        for phone in phones:
            await service.receive(InboundMessage(phone, "encuesta", clock()))
        clock.advance(2 * 3600)
        await service.receive(InboundMessage(LUIS, "encuesta", clock()))
        assert await service.expire_flows() == 5
        assert [c.phone for c in await service.store.contacts_in_flows()] == [LUIS]
        for phone in phones:
            last = (await service.store.messages(phone))[-1]
            assert (last.text, last.status, last.rule) == (
                "Se acabo el tiempo.",
                "queued",
                "flow:encuesta",
            )
        assert await service.expire_flows() == 0
    finally:
        await service.close()


# -- conversations, search, counts, messages ------------------------------------------------------


async def admin_inbound(
    store: Store, clock: Clock, phone: str, text: str, rule: str | None = "r", **kw: Any
) -> None:
    replies = (Reply(f"re: {text}", 1, "sandbox"),) if rule else ()
    kw.setdefault("needs_attention", rule is None)
    decision = Decision(rule, replies, "test", **kw)
    await store.receive_inbound(
        InboundJob(InboundMessage(phone, text, clock()), lambda c: decision)
    )


@pytest.fixture
async def filled(store: Store, clock: Clock) -> Store:
    await admin_inbound(store, clock, ANA, "precio del 100% algodón", "precio")
    clock.advance(60)
    await admin_inbound(store, clock, LUIS, "quiero un asesor", "asesor", mode="human")
    clock.advance(60)
    await admin_inbound(store, clock, EVA, "zzz_qq", None)
    await store.update_fields(ANA, {"nombre": "Ana María"})
    return store


# The search itself: tests/test_search_contract.py.


async def test_last_messages_are_each_numbers_newest_in_and_out(filled: Store) -> None:
    found = await filled.last_messages([ANA, EVA])
    assert [(m.phone, m.direction, m.text) for m in found] == [
        (ANA, "in", "precio del 100% algodón"),
        (ANA, "out", "re: precio del 100% algodón"),
        (EVA, "in", "zzz_qq"),
    ]
    assert await filled.last_messages([]) == []


async def test_waiting_counts_unread_conversations_a_person_must_answer(
    filled: Store, clock: Clock
) -> None:
    waiting = await filled.waiting()  # LUIS was handed over, EVA needs attention; ANA neither
    assert waiting.count == 2
    assert waiting.newest is not None
    assert (waiting.newest.phone, waiting.newest.text) == (EVA, "zzz_qq")
    await filled.mark_read(EVA)
    waiting = await filled.waiting()
    assert waiting.count == 1
    assert waiting.newest is not None and waiting.newest.phone == LUIS
    await filled.mark_read(LUIS)
    assert (await filled.waiting()).count == 0
    assert (await filled.waiting()).newest is None


async def test_conversations_filters_modes_fields_and_read_marks(filled: Store) -> None:
    assert [c.phone for c in await filled.conversations()] == [EVA, LUIS, ANA]
    assert [c.phone for c in await filled.conversations(1, 1)] == [LUIS]
    assert [c.phone for c in await filled.conversations(mode="human")] == [LUIS]
    assert [c.phone for c in await filled.conversations(needs_attention=True)] == [EVA]
    assert await filled.conversations(opted_out=True) == []
    assert await filled.conversation_counts() == {
        "all": 3,
        "human": 1,
        "needs_attention": 1,
        "opted_out": 0,
        "unread": 3,
        "unassigned": 3,
        "resolved": 0,
        "mine": 0,
    }
    await filled.mark_read(ANA)
    assert (await filled.conversation(ANA)).unread == 0
    assert (await filled.conversation_counts())["unread"] == 2
    before = await filled.conversation_counts()
    await filled.mark_read("580000000000")  # unknown: nothing happens, no contact appears
    assert await filled.conversation_counts() == before
    bot = await filled.set_mode(LUIS, "bot")
    assert (bot.mode, bot.unread, bot.needs_attention) == ("bot", 0, False)
    changed = await filled.update_fields(ANA, {"nombre": None, "talla": "M", "n": 2.5})
    assert changed.fields == {"talla": "M", "n": 2.5}
    for unknown in (filled.set_mode("580000000000", "human"), filled.conversation("58000")):
        with pytest.raises(UnknownContactError):
            await unknown
    with pytest.raises(UnknownContactError):
        await filled.update_fields("580000000000", {"a": 1})


# -- contact labels (DESIGN §12) ------------------------------------------------------------------


async def test_a_decision_s_labels_are_stored_with_its_message(store: Store, clock: Clock) -> None:
    await inbound(store, clock, ANA, "PROMO", answer("Listo", "promo", label=("promo", "vip")))
    labelled = await store.conversation(ANA)
    assert labelled.labels == ("promo", "vip")
    assert labelled.as_json()["labels"] == ["promo", "vip"]
    await inbound(store, clock, ANA, "PROMO", answer("Listo", "promo", label=("promo",)))
    assert (await store.conversation(ANA)).labels == ("promo", "vip")  # adding twice: once
    await inbound(store, clock, ANA, "NO PROMO", answer(None, "x", unlabel=("promo", "otra")))
    assert (await store.conversation(ANA)).labels == ("vip",)
    # A retried message (a duplicate) changes nothing.
    again = answer(None, "y", unlabel=("vip",))
    await inbound(store, clock, ANA, "NO PROMO", again, dedupe=60)
    assert (await store.conversation(ANA)).labels == ("vip",)
    assert [c.labels for c in await store.conversations(limit=5)] == [("vip",)]


async def test_labels_in_one_batch_end_as_the_last_message_left_them(
    store: Store, clock: Clock
) -> None:
    changes: list[dict[str, tuple[str, ...]]] = [{"label": ("promo",)}, {"unlabel": ("promo",)}]
    changes += [{"label": ("promo", "b")}]
    changes += [{"unlabel": ("b",)}]
    jobs = [
        InboundJob(InboundMessage(ANA, f"m{i}", clock()), answer(None, "r", **change))
        for i, change in enumerate(changes)
    ]
    await asyncio.gather(*(store.receive_inbound(job) for job in jobs))
    assert (await store.conversation(ANA)).labels == ("promo",)


async def test_labels_are_added_removed_or_replaced_by_staff(store: Store, clock: Clock) -> None:
    await inbound(store, clock, ANA, "hola")
    added = await store.update_labels(ANA, ["vip", "Promo-2", "vip"], [])
    assert added.labels == ("Promo-2", "vip")
    assert (await store.update_labels(ANA, ["a"], ["vip", "nunca"])).labels == ("Promo-2", "a")
    assert (await store.update_labels(ANA, ["z", "a"], [], only=True)).labels == ("a", "z")
    assert (await store.update_labels(ANA, [], [], only=True)).labels == ()
    with pytest.raises(UnknownContactError):
        await store.update_labels("580000000000", ["a"], [])
    assert await rows(store, "SELECT * FROM contact_labels") == []


async def test_labels_in_use_are_counted_without_opted_out_contacts(
    store: Store, clock: Clock
) -> None:
    assert await store.label_counts() == []
    for phone in (ANA, LUIS, EVA):
        await inbound(store, clock, phone, "hola")
    await store.update_labels(ANA, ["promo", "vip"], [])
    await store.update_labels(LUIS, ["promo", "Zona-b"], [])
    await store.update_labels(EVA, ["promo", "solo-eva"], [])
    await inbound(store, clock, EVA, "BAJA", answer("Listo", "opt_out", opted_out=True))
    assert await store.label_counts() == [("Zona-b", 1), ("promo", 2), ("vip", 1)]
    assert await store.label_counts(limit=1) == [("Zona-b", 1)]


# -- the team inbox: assignment, status, notes, typing (DESIGN §11) ----------------------------


async def test_assignment_filters_and_counts(filled: Store) -> None:
    assert (await filled.conversation(ANA)).assigned_to is None
    assigned = await filled.assign(ANA, "luisa")
    assert (assigned.assigned_to, assigned.as_json()["assigned_to"]) == ("luisa", "luisa")
    await filled.assign(EVA, "pedro")
    assert [c.phone for c in await filled.conversations(assigned="luisa")] == [ANA]
    assert [c.phone for c in await filled.conversations(assigned=UNASSIGNED)] == [LUIS]
    found = await filled.search(SearchQuery("re"), assigned="luisa")
    assert [c.phone for c in found.conversations] == [ANA]
    counts = await filled.conversation_counts("luisa")
    assert (counts["mine"], counts["unassigned"]) == (1, 1)
    assert (await filled.conversation_counts())["mine"] == 0
    assert (await filled.assign(ANA, None)).assigned_to is None
    with pytest.raises(UnknownContactError):
        await filled.assign("580000000000", "luisa")


async def test_resolving_clears_attention_and_a_message_reopens(
    filled: Store, clock: Clock
) -> None:
    assert (await filled.conversation(EVA)).status == "open"
    resolved = await filled.set_status(EVA, "resolved")
    assert (resolved.status, resolved.needs_attention) == ("resolved", False)
    assert [c.phone for c in await filled.conversations(status="resolved")] == [EVA]
    assert [c.phone for c in await filled.conversations(status="open")] == [LUIS, ANA]
    assert (await filled.conversation_counts())["resolved"] == 1
    await filled.assign(EVA, "luisa")
    clock.advance(60)
    await admin_inbound(filled, clock, EVA, "hola otra vez", "saludo")
    again = await filled.conversation(EVA)
    # Reopened by the customer, still with the person it was assigned to.
    assert (again.status, again.assigned_to, again.needs_attention) == ("open", "luisa", False)
    await filled.set_status(EVA, "resolved")
    assert (await filled.set_status(EVA, "open")).status == "open"
    with pytest.raises(UnknownContactError):
        await filled.set_status("580000000000", "resolved")


async def test_attention_stays_until_a_person_replies(filled: Store, clock: Clock) -> None:
    assert (await filled.conversation(EVA)).needs_attention is True
    clock.advance(60)
    await admin_inbound(filled, clock, EVA, "precio", "precio")  # the bot answers this one
    assert (await filled.conversation(EVA)).needs_attention is True
    await admin_inbound(filled, clock, ANA, "cerrado?", "cerrado", needs_attention=True)
    assert (await filled.conversation(ANA)).needs_attention is True
    await filled.queue_outbound(EVA, [Reply("Hola, soy Ana", 1, "sandbox")], "agent")
    assert (await filled.conversation(EVA)).needs_attention is False


async def test_notes_are_kept_apart_and_never_sent(filled: Store, clock: Clock) -> None:
    before = await filled.messages(ANA)
    note = await filled.add_note(ANA, "luisa", "Cliente frecuente: ofrecer envío gratis")
    assert (note.phone, note.author, note.text, note.created_at) == (
        ANA,
        "luisa",
        "Cliente frecuente: ofrecer envío gratis",
        clock(),
    )
    clock.advance(1)
    await filled.add_note(ANA, None, "segunda")
    assert [(n.author, n.text) for n in await filled.notes(ANA)] == [
        ("luisa", "Cliente frecuente: ofrecer envío gratis"),
        (None, "segunda"),
    ]
    assert await filled.notes(LUIS) == []
    assert await filled.messages(ANA) == before  # a note is no message
    clock.advance(3600)
    assert await filled.claim_outbox(100) != []  # the replies of `filled`, and nothing else
    assert not await filled.claim_outbox(100)
    with pytest.raises(UnknownContactError):
        await filled.add_note("580000000000", "luisa", "x")


async def test_typing_expires_and_is_seen_by_every_instance(
    filled: Store, open_store: OpenStore, clock: Clock
) -> None:
    other = await open_store("other")
    await filled.set_typing(ANA, "luisa", clock() + timedelta(seconds=8))
    await filled.set_typing(ANA, "ana", clock() + timedelta(seconds=4))
    await filled.set_typing(LUIS, "pedro", clock() + timedelta(seconds=8))
    assert await other.typing(ANA) == ["ana", "luisa"]
    clock.advance(5)
    assert await other.typing(ANA) == ["luisa"]
    await other.set_typing(ANA, "luisa", None)
    assert await filled.typing(ANA) == []
    assert await filled.typing(LUIS) == ["pedro"]
    clock.advance(10)
    assert await filled.typing(LUIS) == []


async def test_counts_are_empty_on_a_new_database(store: Store, clock: Clock) -> None:
    assert set((await store.conversation_counts()).values()) == {0}
    assert await store.message_counts_by_hour(clock()) == []
    assert await store.outbound_status_counts(clock()) == {}
    assert await store.top_rules(clock()) == []
    assert await store.conversations() == []
    assert await store.all_messages() == []
    assert await store.balances() == {}


async def test_dashboard_aggregates(store: Store, clock: Clock) -> None:
    start = clock()
    await admin_inbound(store, clock, ANA, "horario", "horario")
    await admin_inbound(store, clock, LUIS, "horario?", "horario")
    clock.advance(3600)
    await admin_inbound(store, clock, ANA, "precio", "precio")
    await admin_inbound(store, clock, EVA, "???", None)
    queued = await store.queue_outbound(ANA, [Reply("hola", 1, "sandbox")], "agent")
    out = [m for m in await store.all_messages() if m.direction == "out" and m.id != queued[0].id]
    sent = [SendOutcome(m.id, "sandbox", "sent", provider_id=f"p{m.id}") for m in out]
    await store.record_outcomes(sent)
    await store.apply_status(StatusUpdate("sandbox", f"p{out[0].id}", "delivered", None, clock()))
    await store.apply_status(StatusUpdate("sandbox", f"p{out[1].id}", "failed", "x", clock()))

    hours = await store.message_counts_by_hour(start)
    two, three = start, start + timedelta(hours=1)  # 14:00 and 15:00 UTC
    assert hours == [(two, "in", 2), (two, "out", 2), (three, "in", 2), (three, "out", 2)]
    assert await store.message_counts_by_hour(start + timedelta(hours=1)) == hours[2:]
    assert await store.outbound_status_counts(start) == {
        "delivered": 1,
        "failed": 1,
        "sent": 1,
        "queued": 1,
    }
    assert await store.top_rules(start) == [("horario", 2), ("precio", 1)]
    assert await store.top_rules(start, limit=1) == [("horario", 2)]


async def test_every_message_is_read_in_pages(store: Store, clock: Clock) -> None:
    for i in range(7):
        await inbound(store, clock, f"58412{i:07d}", f"m{i}", answer(None))
    read = [m async for m in store.iter_messages(batch=3)]
    assert [m.text for m in read] == [f"m{i}" for i in range(7)]
    assert read == await store.all_messages()


async def test_rejected_webhooks_are_kept_as_they_came(store: Store, clock: Clock) -> None:
    await store.reject_webhook("POST", "/webhooks/massiva/{token}", "a=1", b"\x00\xff", None, "bad")
    [kept] = await store.rejected_webhooks()
    assert kept["body"] == b"\x00\xff"
    assert (kept["method"], kept["query"], kept["reason"]) == ("POST", "a=1", "bad")
    assert kept["received_at"] == "2026-11-23T14:00:00.000000Z"


async def test_a_text_with_a_nul_character_is_stored(store: Store, clock: Clock) -> None:
    result = await inbound(store, clock, ANA, "ho\x00la", answer(None))
    [message] = await store.messages(ANA)
    assert message.id == result.message_id
    assert message.text in ("ho\x00la", "ho\ufffdla")  # PostgreSQL's text cannot hold NUL


async def test_export_pages_conversations_and_messages_by_key(store: Store, clock: Clock) -> None:
    """What `responder export` streams: conversations in phone order, and the messages of a
    range of numbers in (number, id) order, a page at a time after the last key seen (never an
    OFFSET)."""
    phones = [f"58412{i:07d}" for i in (3, 1, 2)]
    for phone in phones:
        for n in range(3):
            await inbound(store, clock, phone, f"hola {n}", answer(f"respuesta {n}"))
            clock.advance(1)
    assert await store.message_total() == 18
    seen: list[str] = []
    after = ""
    while page := await store.conversations_after(after, 2):
        seen += [c.phone for c in page]
        after = page[-1].phone
    assert seen == sorted(phones)
    first, second, third = sorted(phones)
    keys: list[tuple[str, int]] = []
    texts: list[str] = []
    key = (first, 0)
    while batch := await store.messages_after(key, second, 4):
        keys += [(m.phone, m.id) for m in batch]
        texts += [m.text for m in batch]
        key = keys[-1]
    assert keys == sorted(keys) and len(keys) == 12
    assert {phone for phone, _ in keys} == {first, second}  # never past `last`
    assert texts == 2 * [t for n in range(3) for t in (f"hola {n}", f"respuesta {n}")]
    assert [m.phone for m in await store.messages_after((second, keys[-1][1]), third, 4)] == [
        third
    ] * 4


# -- privacy: forgetting a person, retention (DESIGN §13) -----------------------------------------


async def test_forgetting_a_person_erases_their_messages_notes_and_fields(
    store: Store, clock: Clock
) -> None:
    await inbound(store, clock, ANA, "hola, soy Ana")
    await inbound(store, clock, LUIS, "hola")
    await store.update_fields(ANA, {"nombre": "Ana"})
    await store.update_labels(ANA, ["promo"], [])
    await store.update_labels(LUIS, ["promo"], [])
    await store.add_note(ANA, "eva", "cliente frecuente")
    await store.set_typing(ANA, "eva", clock() + timedelta(seconds=5))
    [sent] = await store.claim_outbox(1)
    await store.record_outcomes([SendOutcome(sent.id, "sandbox", "sent", "p-1")])
    forgotten = await store.forget_contact(ANA)
    assert forgotten is not None and forgotten.messages == 2 and not forgotten.kept_opted_out
    with pytest.raises(UnknownContactError):
        await store.conversation(ANA)
    assert await store.messages(ANA) == []
    assert await store.notes(ANA) == []
    assert await store.typing(ANA) == []
    assert await rows(store, f"SELECT 1 FROM attempts WHERE message_id = {sent.id}") == []
    assert [m.text for m in await store.messages(LUIS)] == ["hola", "re: hola"]  # untouched
    assert await rows(store, "SELECT phone, label FROM contact_labels") == [(LUIS, "promo")]
    assert await store.forget_contact(ANA) is None  # nothing left to forget
    # Writing again starts a new conversation, nothing of the old one in it.
    await inbound(store, clock, ANA, "otra vez")
    assert (await store.conversation(ANA)).fields == {}
    assert (await store.conversation(ANA)).labels == ()
    assert [m.text for m in await store.messages(ANA)] == ["otra vez", "re: otra vez"]


async def test_a_forgotten_number_that_had_opted_out_stays_opted_out(
    store: Store, clock: Clock
) -> None:
    await inbound(store, clock, ANA, "BAJA", answer("Listo", "opt_out", opted_out=True))
    forgotten = await store.forget_contact(ANA)
    assert forgotten is not None and forgotten.kept_opted_out
    with pytest.raises(UnknownContactError):
        await store.conversation(ANA)
    with pytest.raises(OptedOutError):
        await store.queue_outbound(ANA, [Reply("oferta", 1, "sandbox")], "cli")
    again = await store.forget_contact(ANA)  # nothing but the kept opt-out is left
    assert again is not None and again.kept_opted_out and again.messages == 0
    # A message from it starts a conversation that is opted out still; ALTA opts back in.
    await inbound(store, clock, ANA, "hola", answer(None))
    assert (await store.conversation(ANA)).opted_out
    await inbound(store, clock, ANA, "ALTA", answer("Bienvenido", "opt_in", opted_out=False))
    assert not (await store.conversation(ANA)).opted_out
    assert await store.forget_contact(ANA) is not None
    assert len(await store.queue_outbound(ANA, [Reply("hola", 1, "sandbox")], "cli")) == 1


async def test_a_forgotten_number_s_messages_no_longer_count_in_another_instance(
    open_store: OpenStore, clock: Clock
) -> None:
    """Dedupe and the reply limit read each number's recent messages; the SQLite backend keeps
    what it read: an erasure by another process on the same database must drop that."""
    first, second = await open_store(), await open_store()
    await inbound(second, clock, ANA, "hola", dedupe=60, history=3600)  # `second` read it
    assert await first.forget_contact(ANA) is not None
    clock.advance(5)
    seen: list[Contact] = []

    def remember(contact: Contact) -> Decision:
        seen.append(contact)
        return Decision("r", (), "t")

    again = await inbound(second, clock, ANA, "hola", remember, dedupe=60, history=3600)
    assert not again.duplicate
    assert seen[0].recent_replies == ()


async def sweep(store: Store, before: datetime, batch: int) -> int:
    """Clears texts older than `before`, batch by batch, as the retention sweep does: how many
    batches cleared something."""
    after = 0
    for batches in range(100):
        going_on = await store.clear_old_texts(before, after, batch)
        if going_on is None:
            return batches
        after = going_on
    raise AssertionError("the sweep never ended")


async def test_old_message_texts_are_cleared_in_batches_and_the_rows_stay(
    store: Store, clock: Clock
) -> None:
    for text in ("uno", "dos", "tres"):
        await inbound(store, clock, ANA, text)
    clock.advance(3600)
    cutoff = clock()
    clock.advance(60)
    await inbound(store, clock, ANA, "nuevo")
    counts = await store.conversation_counts()
    assert await sweep(store, cutoff, 2) == 3  # six old messages, two at a time
    texts = [m.text for m in await store.messages(ANA)]
    assert texts == ["", "", "", "", "", "", "nuevo", "re: nuevo"]
    assert (await store.search(SearchQuery("uno"))).conversations == []
    assert [c.phone for c in (await store.search(SearchQuery("nuevo"))).conversations] == [ANA]
    assert await store.conversation_counts() == counts
    assert await store.message_total() == 8
    # A conversation whose last message is old loses its last text too.
    await inbound(store, clock, LUIS, "secreto")
    clock.advance(7200)
    assert await sweep(store, clock(), 100) == 1
    assert (await store.conversation(LUIS)).last_text == ""


async def test_ids_of_forgotten_messages_are_never_given_again(store: Store, clock: Clock) -> None:
    """Forgetting the number that holds the newest messages must not hand their ids out again:
    an outcome or a claim still naming an erased message must never reach a new one."""
    await inbound(store, clock, ANA, "hola", answer("respuesta"))
    newest = await inbound(store, clock, LUIS, "hola", answer("respuesta"))
    highest = max(newest.message_id, *newest.reply_ids)
    assert await store.forget_contact(LUIS) is not None
    again = await inbound(store, clock, EVA, "hola", answer("respuesta"))
    assert again.message_id > highest
