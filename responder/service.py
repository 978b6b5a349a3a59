"""The service: what a running responder is made of, and the one way in to it. Web handlers,
the CLI and the workers' owner call `Service`; only `Service` (and the workers and the intake
it builds) calls the store."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from responder import budget, engine
from responder.accounts import Accounts
from responder.broadcasts import (
    Broadcast,
    BroadcastPreview,
    Broadcasts,
    Recipient,
    Segment,
)
from responder.budget import Budget, OverrunRecord
from responder.clock import Clock, thread_cpu_time
from responder.config import Settings
from responder.contacts import ContactBook
from responder.engine import Contact, Decision, InboundMessage
from responder.inbox import TeamInbox
from responder.intake import Intake
from responder.metrics import Metrics
from responder.moments import SEND_HORIZON, SIMULATE_HORIZON, within_horizon
from responder.outage import Outage
from responder.phone import normalize_phone
from responder.providers import build_providers
from responder.providers.base import Provider
from responder.rules.publish import FileDiff, RulesCheck, RulesRefused, diff
from responder.rules.reload import RulesHolder
from responder.saved_replies import SavedReplies
from responder.search_query import search_query
from responder.store import Store, make_store
from responder.store.models import (
    Conversation,
    FlowTimeout,
    Forgotten,
    InboundJob,
    InboundResult,
    Message,
    RuleSource,
    RuleVersion,
    StatusUpdate,
    StoreUnavailable,
    UnknownContactError,
    Waiting,
    to_iso,
)
from responder.store.search import SearchCounts, SearchPage, SearchQuery
from responder.text import sendable
from responder.web.balances import Balance, ask_balances
from responder.web.sessions import Sessions, SignInLimiter
from responder.workers.feeder import BroadcastFeeder
from responder.workers.outbox import NATIVE_SCHEDULE_AHEAD, OutboxWorker
from responder.workers.poller import StatusPoller

log = logging.getLogger("responder")

# A replayed record is the message already stored when phone, line and text match and it was
# received within this many seconds of it (the same moment, read back from the spool): so a
# record replayed again after a crash is never stored twice, even with `dedupe_window: 0`.
REPLAY_MATCH = 0.001
# Allocations between collections of the youngest generation (Python's default: 700).
GC_YOUNG = 2000
# The retention sweep: how often, and how many messages each of its transactions touches.
RETENTION_EVERY = 86400.0
RETENTION_BATCH = 500
FLOW_BATCH = 200  # contacts in flows the flow sweep reads, decides and ends in one transaction
FOLD_COUNTS_EVERY = 5.0  # seconds between folds of the dashboard's count changes
INDEX_NUMBERS_EVERY = 1.0  # seconds between moves of PostgreSQL's search pending lists
# A customer's message answers a broadcast when the number's last outbound message before it
# was that broadcast's, at most this long before.
BROADCAST_REPLY_WINDOW = timedelta(days=7)
BROADCAST_LOOKBACK = 50  # messages before a page of a thread read for the broadcast it answers


async def repeat(every: float, what: str, sweep: Callable[[], Awaitable[object]]) -> None:
    """Runs `sweep` every `every` seconds until cancelled; a failure is logged as an outage
    of `what` (once, and once more when it works again) and never stops the loop."""
    outage = Outage(log, what, every, every)
    while True:
        await asyncio.sleep(every)
        try:
            await sweep()
        except Exception as err:  # a bad moment must not stop the sweeps for good
            outage.failed(err)
        else:
            outage.succeeded()


class Service:
    """What a running responder is made of: settings, rules, store, providers, workers."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock,
        providers: dict[str, Provider] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rules = RulesHolder(settings.rules, settings.templates, clock)
        self.providers = providers if providers is not None else build_providers(settings)
        self.default_provider = (
            settings.provider if settings.provider in self.providers else next(iter(self.providers))
        )
        self.store: Store = make_store(settings.database, clock)
        # What patterns and templates may spend on the event loop (responder.budget).
        self.budget = Budget(
            clock.monotonic,
            thread_cpu_time,
            per_message=budget.MESSAGE_SECONDS,
            burst=budget.BURST_SECONDS,
            share=budget.SHARE,
        )
        # What GET /metrics shows: this instance's counts (responder.metrics).
        self.metrics = Metrics()
        self.worker = OutboxWorker(
            self.store,
            self.providers,
            clock=clock,
            settings=lambda: self.rules.current.settings,
            metrics=self.metrics,
        )
        self.poller = StatusPoller(self.store, self.providers, clock=clock)
        self.store.on_outbox = self.worker.wake
        self.store.hand_over = self.worker.take
        self.webhook_token = ""
        self.admin_token = ""
        self._sessions: Sessions | None = None
        # People, personal tokens and the audit trail (DESIGN §11).
        self.accounts = Accounts(self.store, clock, lambda: self.admin_token)
        # Assignment, open/resolved, internal notes, typing (DESIGN §11).
        self.inbox = TeamInbox(self.store, self.accounts, clock)
        self.saved_replies = SavedReplies(self.store, self.accounts, self.rules, clock)
        # Broadcasts and their feeder (DESIGN §12, responder/broadcasts.py).
        self.broadcasts = Broadcasts(
            self.store,
            self.accounts,
            self.providers,
            settings=lambda: self.rules.current.settings,
            default_provider=lambda: self.default_provider,
            clock=clock,
        )
        self.feeder = BroadcastFeeder(
            self.store,
            self.broadcasts,
            self.providers,
            settings=lambda: self.rules.current.settings,
            clock=clock,
        )
        self.broadcasts.on_change = self.feeder.wake
        # The Contactos page, its CSV import and export, labels for many (DESIGN §12).
        self.contacts = ContactBook(self.store, self.accounts, self.rules)
        # The tokens open() created just now (first start): only those may be shown in full.
        self.generated_tokens: set[str] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None  # set by start(); for tests and tools
        self.sign_in_limiter = SignInLimiter(self.store, clock)
        self._balance_lock = asyncio.Lock()
        # Webhooks wait in its spool while the database cannot take them (opened by `start`).
        self.intake = Intake(
            settings.spool,
            self.store,
            lambda message, replayed: self.receive(message, replayed=replayed),
            self.record_status,
        )
        self.spool, self.replayer = self.intake.spool, self.intake.replayer

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Opens the database and settles the tokens (generated once, then kept there)."""
        await self.store.open()

        def generate(key: str) -> Callable[[], str]:
            def new_token() -> str:
                self.generated_tokens.add(key)
                return secrets.token_urlsafe(24)

            return new_token

        self.webhook_token = self.settings.webhook_token or await self.store.meta_value(
            "webhook_token", generate("webhook_token")
        )
        self.admin_token = self.settings.admin_token or await self.store.meta_value(
            "admin_token", generate("admin_token")
        )
        await self.rules.attach(self.store)
        secret = await self.store.meta_value("session_secret", lambda: secrets.token_urlsafe(32))
        self._sessions = Sessions(self.store, self.clock, secret, self.admin_token)

    async def close(self) -> None:
        """Closes the database `open` opened (for commands that run no workers)."""
        await self.store.close()

    @property
    def sessions(self) -> Sessions:
        """Staff sign-ins (after `open`)."""
        if self._sessions is None:
            raise RuntimeError("service is not open")
        return self._sessions

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.open()
        try:
            self.intake.open()
        except BaseException:
            await self.store.close()
            raise
        try:
            # Sessions past their end, or opened with an admin token that changed, end here.
            ended = await self.sessions.purge()
            if ended:
                log.info("ended %d staff sessions (expired, or the admin token changed)", ended)
        except StoreUnavailable as err:  # webhooks are spooled meanwhile: start all the same
            log.warning("could not end old staff sessions: %s", err)
        self._tasks = [
            asyncio.create_task(self.replayer.run(), name="spool-replay"),
            asyncio.create_task(self.worker.run(), name="outbox"),
            asyncio.create_task(self.poller.run(), name="status-poller"),
            asyncio.create_task(self.rules.watch(), name="rules-watch"),
            asyncio.create_task(self._expire_flows_forever(), name="flow-timeouts"),
            asyncio.create_task(self._check_balances_forever(), name="balances"),
            asyncio.create_task(self._expire_texts_forever(), name="retention"),
            asyncio.create_task(self._fold_counts_forever(), name="fold-counts"),
            asyncio.create_task(self._index_numbers_forever(), name="number-parts"),
            asyncio.create_task(self.feeder.run(), name="broadcast-feeder"),
        ]
        # What start-up built lives as long as the process: keep the collector off it.
        gc.collect()
        gc.freeze()
        # Fewer young collections: with 50 webhooks in flight, one every 700 allocations
        # mostly walks (and promotes) objects still in use. Measured: 3 to 5% more webhooks.
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
        # Every pause from here on: responder_gc_pause_seconds in GET /metrics.
        self.metrics.watch_gc()

    async def stop(self) -> None:
        self.metrics.unwatch_gc()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.store.is_open:
            try:
                await self.worker.stop()
            except StoreUnavailable as err:  # their leases run out; the next start takes them
                log.error("could not hand back the messages in flight: %s", err)
        for provider in self.providers.values():
            await provider.aclose()
        await self.intake.close()
        await self.store.close()

    # -- behaviour ----------------------------------------------------------------------------

    def route(self, via: str | None) -> str:
        """The provider a reply goes through: the rule's `via` when configured, else the default."""
        if via in self.providers:
            return via
        if via is not None:
            log.warning("via %s is not configured; using %s", via, self.default_provider)
        return self.default_provider

    def _routed(self, decision: Decision) -> Decision:
        """The decision with every reply on a configured provider; what the engine had to
        change in its replies (cleaned, cut short) is logged, by rule and never by text."""
        for warning in decision.warnings:
            log.warning("rule %s: %s", decision.rule, warning)
        if not decision.replies:
            return decision
        replies = tuple(replace(r, via=self.route(r.via)) for r in decision.replies)
        # Not dataclasses.replace: it reads the class's fields again on every call, and this
        # runs for every webhook (every field of Decision is an __init__ argument).
        return Decision(**{**vars(decision), "replies": replies})

    async def receive(self, message: InboundMessage, *, replayed: bool = False) -> InboundResult:
        """Stores an inbound message and queues its replies, committed together. A message
        `replayed` from the spool is decided as of when it was received (business hours,
        flows and limits as the customer met them), and recognised if it was stored already."""
        rules = self.rules.current
        now = message.received_at if replayed else self.clock()

        def decide(contact: Contact) -> Decision:
            # Runs on the event loop, in the store's writer: within the message's budget.
            with self.budget.message():
                return self._routed(engine.decide(rules, message, contact, now))

        settings = rules.settings
        history = max(settings.reply_limit.per, settings.loop_guard.per)
        window = max(settings.dedupe_window, REPLAY_MATCH) if replayed else settings.dedupe_window
        job = InboundJob(message, decide, window, history)
        try:
            result = await self.store.receive_inbound(job)
            if not result.duplicate:
                self.metrics.rule_matched(result.decision.rule)
            return result
        finally:
            if self.budget.pending:  # seldom: no coroutine for it on every webhook
                await self._save_overruns()

    async def _save_overruns(self) -> None:
        """Remembers in the store the rules that ran over their budget, for /api/rules and
        `responder check`; losing a count to a failed write is better than failing a reply."""
        overruns = self.budget.take_pending()
        if not overruns:
            return
        try:
            await self.store.record_overruns(overruns)
        except Exception as err:
            log.warning("could not record %d budget overrun(s): %s", len(overruns), err)

    async def overruns(self) -> list[OverrunRecord]:
        """Overruns recorded for the rules in force: the same rule with the same pattern or
        template; an edited rule starts afresh."""
        return self.rules.current.own_overruns(await self.store.overruns())

    def take_inbound(self, message: InboundMessage) -> Awaitable[InboundResult | None]:
        """A webhook's message: stored with its replies, or, while the database cannot take
        it (or older webhooks wait in the spool), kept in the spool (None). The intake's own
        coroutine, handed back: one layer less on every webhook."""
        return self.intake.take_inbound(message)

    def take_status(self, update: StatusUpdate) -> Awaitable[bool | None]:
        """A webhook's delivery report: True when applied, False when no message has its id
        yet (kept for later), None when kept in the spool."""
        return self.intake.take_status(update)

    async def send(
        self,
        phone: str,
        text: str,
        via: str | None,
        origin: str,
        send_at: datetime | None = None,
        author: str | None = None,
    ) -> list[Message]:
        """Queues a message written by a person (signed by `author`, their name); an agent's
        reply hands the chat to people, which the audit trail records as a hand-off.
        With `send_at` it waits in the outbox until then, or, far enough ahead on a provider
        that schedules by itself (MasSMS), goes to the provider's scheduler at once. A text
        with a control character, or nothing visible, raises UnsendableText: a person typed
        it, so it is refused rather than changed behind their back."""
        settings = self.rules.current.settings
        normalize_phone(phone, settings.country)  # InvalidPhoneNumber before anything is queued
        text = sendable(text, strict=True)
        provider = self.route(via)
        prepared = engine.prepare(text, settings.smart_encoding)
        replies = [replace(r, via=provider) for r in prepared.replies]
        due = None
        if send_at is not None:
            now = self.clock()
            within_horizon(send_at, now, SEND_HORIZON)  # BadMoment before anything is queued
            if send_at <= now:
                send_at = None
            elif self.providers[provider].schedules and send_at - now >= NATIVE_SCHEDULE_AHEAD:
                due = now
        handoff = origin == "agent"
        was_bot = handoff and author is not None and await self._with_bot(phone)
        queued = await self.store.queue_outbound(
            phone, replies, origin, handoff=handoff, send_at=send_at, due=due, author=author
        )
        if was_bot:
            await self.accounts.record(author, "mode_changed", phone, mode="human", by="reply")
        return queued

    async def _with_bot(self, phone: str) -> bool:
        """Whether the bot answers `phone` now (a number never seen: it would)."""
        try:
            return (await self.store.conversation(phone)).mode == "bot"
        except UnknownContactError:
            return True

    # -- rules: drafts, versions (DESIGN §10) ----------------------------------------------

    def rules_source(self) -> tuple[str, dict[str, str], int | None]:
        """The rules text and templates in force, and the id of their version."""
        return self.rules.source()

    async def check_rules(self, rules: str, templates: dict[str, str] | None) -> RulesCheck:
        return await self.rules.check(rules, templates)

    async def publish_rules(
        self,
        rules: str,
        templates: dict[str, str] | None,
        *,
        base: int | None,
        note: str,
        author: str | None,
        source: RuleSource,
    ) -> tuple[RuleVersion, RulesCheck]:
        """A new version in force, with the warnings its check found (RulesRefused,
        StaleRuleVersion: nothing changed)."""
        version, check = await self.rules.publish(
            rules, templates, base=base, note=note, author=author, source=source
        )
        await self.accounts.record(
            author, "rules_published", str(version.id), source=source, note=note
        )
        return version, check

    async def restore_rules(self, version_id: int, *, note: str, author: str | None) -> RuleVersion:
        """An older version's content published again as the newest (KeyError: unknown)."""
        version = await self.rules.restore(version_id, note=note, author=author)
        await self.accounts.record(
            author, "rules_published", str(version.id), source="restore", restored=version_id
        )
        return version

    async def rule_versions(self, limit: int = 100) -> list[RuleVersion]:
        return await self.store.rule_versions(limit)

    async def rule_version(self, version_id: int) -> RuleVersion | None:
        return await self.store.rule_version(version_id)

    def active_rule_version(self) -> int | None:
        return self.rules.version_id

    def rules_writable(self) -> bool:
        """Whether publishing writes the files back (else the browser is the way to edit)."""
        return self.rules.writable()

    async def rules_diff(self, old_id: int, new_id: int) -> list[FileDiff] | None:
        """What changed between two versions, file by file; None when one is unknown."""
        old, new = await self.store.rule_version(old_id), await self.store.rule_version(new_id)
        if old is None or new is None:
            return None
        return diff(old, new, self.settings.rules.name)

    async def simulate(
        self,
        phone: str,
        text: str,
        at: datetime | None = None,
        *,
        rules: str | None = None,
        templates: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """What the rules would answer, without storing or sending anything: the rules in
        force, or a draft (`rules`, `templates`; RulesRefused when it has errors)."""
        ruleset = self.rules.current
        if rules is not None or templates is not None:
            draft = rules if rules is not None else self.rules.source()[0]
            compiled = await asyncio.to_thread(self.rules.compile_draft, draft, templates)
            if isinstance(compiled, RulesCheck):
                raise RulesRefused(compiled.problems)
            if compiled.errors:
                raise RulesRefused(compiled.errors)
            ruleset = compiled
        try:
            conversation = await self.store.conversation(phone)
            contact = Contact(
                phone, conversation.mode, conversation.opted_out, conversation.fields, False
            )
        except UnknownContactError:
            contact = Contact(phone)
        now = within_horizon(at, self.clock(), SIMULATE_HORIZON) if at is not None else self.clock()
        with self.budget.message():
            decision = engine.decide(ruleset, InboundMessage(phone, text, now), contact, now)
        await self._save_overruns()
        return simulation_json(decision)

    async def check_balances(self) -> dict[str, dict[str, Any]]:
        """Asks every provider for its credits and keeps the answers in the store (every
        instance reads them there); warns below `settings.low_credit`."""
        low_credit = self.rules.current.settings.low_credit
        for balance in await ask_balances(self.providers):
            credits = None if balance.unlimited else balance.credits
            if balance.error:
                log.warning("balance of %s unknown: %s", balance.provider, balance.error)
            elif low_credit is not None and credits is not None and credits < low_credit:
                log.warning(
                    "%s has %g credits left, below low_credit %g",
                    balance.provider,
                    credits,
                    low_credit,
                )
            await self.store.save_balance(balance.provider, balance.credits, balance.error)
        return await self.balances()

    async def balances(self) -> dict[str, dict[str, Any]]:
        """The last known balance of each configured provider, as every instance sees it."""
        low_credit = self.rules.current.settings.low_credit
        found = {}
        for name, (credits, error, checked_at) in (await self.store.balances()).items():
            if name not in self.providers:
                continue
            shown = None if credits is not None and math.isinf(credits) else credits
            low = low_credit is not None and shown is not None and shown < low_credit
            found[name] = {
                "credits": shown,
                "low": low,
                "error": error,
                "checked_at": to_iso(checked_at),
            }
        return found

    async def fresh_balances(self, max_age: float = 60.0) -> list[Balance]:
        """Balances for a page: asked again when older than `max_age` seconds (two pages
        opened together in this process ask once)."""
        async with self._balance_lock:
            known = await self.store.balances()
            now = self.clock()
            stale = [
                name
                for name in self.providers
                if name not in known or (now - known[name][2]).total_seconds() > max_age
            ]
            if stale:
                await self.check_balances()
                known = await self.store.balances()
        return [
            Balance(name, known[name][0], known[name][1])
            for name in self.providers
            if name in known
        ]

    async def _check_balances_forever(self, every: float = 60.0, period: float = 900.0) -> None:
        """One instance (the lease holder) asks the providers every `period` seconds."""
        outage = Outage(log, "checking balances", every, every)
        while True:
            try:
                if await self.store.try_lease("balance-check", 3 * every):
                    known = await self.store.balances()
                    now = self.clock()
                    if any(
                        name not in known or (now - known[name][2]).total_seconds() >= period
                        for name in self.providers
                    ):
                        await self.check_balances()
            except Exception as err:
                outage.failed(err)
            else:
                outage.succeeded()
            await asyncio.sleep(every)

    async def expire_flows(self) -> int:
        """Ends flows whose answer is overdue, sending their timeout_reply; returns how many.
        A page of FLOW_BATCH waiting contacts at a time: read, decided, its overdue flows ended
        in one transaction, then a pause for the event loop (SQLite's writer runs on it). One
        transaction per flow took 28.5 s of the loop for 26,219 flows after a long stop."""
        rules, now = self.rules.current, self.clock()
        ended = 0
        after = ""
        while waiting := await self.store.contacts_in_flows(after, FLOW_BATCH):
            batch: list[FlowTimeout] = []
            for contact in waiting:
                with self.budget.message():
                    decision = engine.expire_flow(rules, contact, now)
                if decision is not None:
                    batch.append(FlowTimeout(contact.phone, self._routed(decision), contact.flow))
            if batch:
                await self.store.apply_decisions(batch)
                ended += len(batch)
            after = waiting[-1].phone
            await asyncio.sleep(0)
        await self._save_overruns()
        return ended

    async def _expire_flows_forever(self, interval: float = 30.0) -> None:
        """One instance (the lease holder) sweeps; another takes over if it goes away. Not
        while this instance's spool holds webhooks: one of them may be the awaited answer."""
        outage = Outage(log, "expiring flows", interval, interval)
        while True:
            await asyncio.sleep(interval)
            if self.spool.pending:
                continue
            try:
                if await self.store.try_lease("flow-timeouts", 3 * interval):
                    await self.expire_flows()
            except Exception as err:  # a bad moment must not stop the sweeps for good
                outage.failed(err)
            else:
                outage.succeeded()

    async def _fold_counts_forever(self, every: float = FOLD_COUNTS_EVERY) -> None:
        """Moves the dashboard's appended count changes into its counts, so that a report
        reads few of them (readers add both: nothing waits for this). Every instance tries;
        one folds at a time."""
        await repeat(every, "folding the dashboard's counts", self.store.fold_counts)

    async def _index_numbers_forever(self, every: float = INDEX_NUMBERS_EVERY) -> None:
        """PostgreSQL: moves new contacts' numbers and new messages' words from the search
        indexes' pending lists into the indexes (every instance looks; one moves a list at a
        time). SQLite: a no-op (its checkpointer writes the numbers' parts)."""
        await repeat(every, "indexing new numbers", self.store.index_new_numbers)

    # -- privacy (DESIGN §13) -----------------------------------------------------------------

    async def forget(self, phone: str, actor: str | None) -> Forgotten | None:
        """Erases a person (store.forget_contact), on the record; None: nothing was known."""
        forgotten = await self.store.forget_contact(phone)
        if forgotten is not None:
            await self.accounts.record(
                actor,
                "contact_forgotten",
                phone,
                messages=forgotten.messages,
                kept_opted_out=forgotten.kept_opted_out,
            )
        return forgotten

    async def expire_texts(self, batch: int = RETENTION_BATCH) -> int:
        """Erases the texts of messages older than settings.retention, one short transaction
        per `batch` messages (the writer waits at most one); returns how many batches."""
        kept = self.rules.current.settings.retention
        if kept is None:
            return 0
        before = self.clock() - timedelta(seconds=kept)
        after, batches = 0, 0
        while (going_on := await self.store.clear_old_texts(before, after, batch)) is not None:
            after, batches = going_on, batches + 1
            await asyncio.sleep(0)  # webhooks between batches
        if batches:
            await self.accounts.record(None, "messages_expired", None, before=before.isoformat())
        return batches

    async def _expire_texts_forever(self, every: float = 3600.0) -> None:
        """Once a day, by one instance: the lease holder keeps it (renewed every `every`) and
        sweeps when its last sweep is a day old; another takes over a day after it stops."""
        outage = Outage(log, "erasing old message texts", every, every)
        swept: datetime | None = None
        while True:
            await asyncio.sleep(every)
            if self.rules.current.settings.retention is None:
                continue
            try:
                if not await self.store.try_lease("retention", RETENTION_EVERY):
                    continue
                if swept is None or self.clock() - swept >= timedelta(seconds=RETENTION_EVERY):
                    await self.expire_texts()
                    swept = self.clock()
            except Exception as err:  # a bad moment must not stop the sweeps for good
                outage.failed(err)
            else:
                outage.succeeded()

    # -- reads and small writes for the web pages, the API and the CLI -----------------------

    async def ping(self) -> bool:
        return await self.store.ping()

    async def write_problem(self) -> str | None:
        return await self.store.write_problem()

    async def reject_webhook(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        content_type: str | None,
        reason: str,
    ) -> None:
        await self.store.reject_webhook(method, path, query, body, content_type, reason)

    async def record_status(self, update: StatusUpdate) -> bool:
        """A delivery report; False when no message has that id yet (it is kept for later)."""
        applied = await self.store.apply_status(update)
        if applied and update.status == "delivered":
            sent_at = await self.store.sent_at(update.provider, update.provider_id)
            if sent_at is not None:
                self.metrics.delivered(sent_at, update.at)
        return applied

    async def metrics_text(self) -> bytes:
        """GET /metrics: this instance's counts, and the outbox as the database has it."""
        queued, oldest = await self.store.outbox_backlog()
        return self.metrics.exposition(queued, oldest, self.clock())

    async def conversations(
        self, limit: int = 100, offset: int = 0, **filters: Any
    ) -> list[Conversation]:
        return await self.store.conversations(limit, offset, **filters)

    def search_query(self, text: str) -> SearchQuery:
        """What `text` typed in a search box means (numbers read with the shop's country)."""
        return search_query(text, self.rules.current.settings.country)

    async def search(
        self, query: SearchQuery, limit: int, offset: int = 0, **filters: Any
    ) -> SearchPage:
        """Conversations found by words, numbers or contact fields (store/search.py)."""
        return await self.store.search(query, limit, offset, **filters)

    async def search_counts(self, me: str | None, query: SearchQuery) -> SearchCounts:
        """The counts of the inbox's filters over what a search finds (up to COUNT_LIMIT)."""
        return await self.store.search_counts(me, query)

    async def conversation(self, phone: str) -> Conversation:
        """The conversation with `phone`; UnknownContactError when there is none."""
        return await self.store.conversation(phone)

    async def conversation_counts(self, me: str | None = None) -> dict[str, int]:
        """COUNT_KEYS; "mine": the conversations assigned to `me`."""
        return await self.store.conversation_counts(me)

    async def last_messages(self, phones: Sequence[str]) -> list[Message]:
        """Each number's newest inbound and newest outbound message."""
        return await self.store.last_messages(phones)

    async def waiting(self) -> Waiting:
        """What waits for a person: the tab title's count and the notifications' message."""
        return await self.store.waiting()

    async def messages(self, phone: str) -> list[Message]:
        return await self.store.messages(phone)

    async def messages_by_id(self, ids: Sequence[int]) -> list[Message]:
        return await self.store.messages_by_id(ids)

    async def message_page(
        self, phone: str, before: int | None = None, limit: int = 200, since_id: int = 0
    ) -> list[Message]:
        """The newest `limit` messages below `before` (and from `since_id`), oldest first."""
        return await self.store.message_page(phone, before, limit, since_id)

    async def message_with_attempts(
        self, message_id: int
    ) -> tuple[Message | None, list[dict[str, Any]]]:
        # Attempts first: the message read after them is never older than its last attempt.
        attempts = await self.store.message_attempts(message_id)
        found = await self.store.messages_by_id([message_id])
        return (found[0] if found else None), attempts

    async def retry_message(self, message_id: int, actor: str) -> Message:
        """Queues a failed message again (MessageStateError for any other status, OptedOutError
        when the number opted out), on the audit trail."""
        message = await self.store.retry_message(message_id, actor)
        await self.accounts.record(actor, "message_retried", message.phone, message=message_id)
        return message

    async def cancel_message(self, message_id: int, actor: str) -> Message:
        """A queued or scheduled message is never sent (MessageStateError once it is on its
        way), on the audit trail."""
        message = await self.store.cancel_message(message_id, actor)
        await self.accounts.record(actor, "message_cancelled", message.phone, message=message_id)
        return message

    async def failed_phones(self, phones: Sequence[str]) -> set[str]:
        """Which of `phones` have a failure nobody retried, with nothing sent since."""
        return await self.store.failed_phones(phones)

    def iter_messages(self) -> AsyncIterator[Message]:
        return self.store.iter_messages()

    async def set_mode(self, phone: str, mode: str, actor: str | None = None) -> Conversation:
        """Hands the conversation to people (`human`) or back to the bot, on the record."""
        conversation = await self.store.set_mode(phone, mode)
        await self.accounts.record(actor, "mode_changed", conversation.phone, mode=mode)
        return conversation

    async def update_fields(self, phone: str, changes: dict[str, Any]) -> Conversation:
        return await self.store.update_fields(phone, changes)

    async def update_labels(
        self, phone: str, add: Sequence[str], remove: Sequence[str], only: bool = False
    ) -> Conversation:
        return await self.store.update_labels(phone, add, remove, only)

    async def label_counts(self) -> list[tuple[str, int]]:
        """Labels in use (by contacts that may get a broadcast), with how many carry each."""
        return await self.store.label_counts()

    async def mark_read(self, phone: str) -> None:
        await self.store.mark_read(phone)

    async def dashboard_numbers(self, since: datetime, until: datetime) -> dict[str, Any]:
        """What the dashboard shows for the period from `since` to `until` (exclusive): read
        from the counts the writer keeps, never from the messages themselves."""
        return {
            "hourly": await self.store.message_counts_by_hour(since, until),
            "statuses": await self.store.outbound_status_counts(since, until),
            "providers": await self.store.provider_counts(since, until),
            "top_rules": await self.store.top_rules(since, until=until),
            "attention": await self.store.conversations(10, 0, needs_attention=True),
            "counts": await self.store.conversation_counts(),
        }

    # -- broadcasts (DESIGN §12; responder/broadcasts.py) ---------------------------------------

    async def preview_broadcast(
        self, text: str, segment: Segment, via: str | None = None
    ) -> BroadcastPreview:
        return await self.broadcasts.preview(text, segment, via)

    async def create_broadcast(
        self,
        text: str,
        segment: Segment,
        *,
        send_at: datetime | None = None,
        via: str | None = None,
        name: str | None = None,
        by: str | None = None,
    ) -> Broadcast:
        return await self.broadcasts.create(
            text, segment, send_at=send_at, via=via, name=name, by=by
        )

    async def get_broadcast(self, broadcast_id: int) -> Broadcast:
        return await self.broadcasts.get(broadcast_id)

    async def list_broadcasts(
        self, before_id: int | None = None, limit: int = 50
    ) -> list[Broadcast]:
        return await self.broadcasts.page(before_id, limit)

    async def broadcast_recipients(
        self,
        broadcast_id: int,
        *,
        status: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Recipient]:
        return await self.broadcasts.recipients(
            broadcast_id, status=status, after=after, limit=limit
        )

    async def change_broadcast(self, broadcast_id: int, action: str, by: str | None) -> Broadcast:
        """`action` "pause", "resume" or "cancel" (the admin, API and CLI pass their own)."""
        return await self.broadcasts.change(broadcast_id, action, by)

    async def pause_broadcast(self, broadcast_id: int, by: str | None) -> Broadcast:
        return await self.broadcasts.change(broadcast_id, "pause", by)

    async def resume_broadcast(self, broadcast_id: int, by: str | None) -> Broadcast:
        return await self.broadcasts.change(broadcast_id, "resume", by)

    async def cancel_broadcast(self, broadcast_id: int, by: str | None) -> Broadcast:
        return await self.broadcasts.change(broadcast_id, "cancel", by)

    async def thread_broadcasts(self, phone: str, messages: Sequence[Message]) -> dict[int, Any]:
        """What the thread of `phone` shows of broadcasts, by message id: `broadcast` for a
        broadcast's message, `in_reply_to_broadcast` for an inbound message whose number's last
        outbound message before it was a broadcast's, sent at most REPLY_WINDOW earlier."""
        if not messages:
            return {}
        # Only the messages shown, and the last few before them (the outbound message a reply
        # at the top of the page may answer): a page of a long conversation, not all of it.
        first = min(m.id for m in messages)
        before = await self.store.message_page(phone, first, BROADCAST_LOOKBACK)
        names = await self.store.broadcast_names(phone, before[0].id if before else first)
        if not names:
            return {}
        shown: dict[int, Any] = {}
        last_out: Message | None = None
        for message in sorted([*before, *messages], key=lambda m: m.id):
            if message.direction == "out":
                last_out = message
                if message.id in names:
                    broadcast_id, name = names[message.id]
                    shown[message.id] = {"broadcast": {"id": broadcast_id, "name": name}}
            elif (
                last_out is not None
                and last_out.id in names
                and message.created_at - last_out.created_at <= BROADCAST_REPLY_WINDOW
            ):
                broadcast_id, name = names[last_out.id]
                shown[message.id] = {"in_reply_to_broadcast": {"id": broadcast_id, "name": name}}
        return {k: v for k, v in shown.items() if k >= first}

    def webhook_urls(self, base_url: str, shown_token: str | None = None) -> dict[str, str]:
        """The webhook URLs, with `shown_token` (a masked token) in place of the token."""
        token = self.webhook_token if shown_token is None else shown_token
        base = f"{base_url.rstrip('/')}/webhooks/massiva/{token}"
        return {"inbound": f"{base}/inbound", "status": f"{base}/status", "both": base}


def simulation_json(decision: Decision) -> dict[str, Any]:
    return {
        "rule": decision.rule,
        "replies": [{"text": r.text, "segments": r.segments} for r in decision.replies],
        "explanation": decision.explanation,
        "mode": decision.mode,
        "error": decision.error,
        "warnings": list(decision.warnings),
    }
