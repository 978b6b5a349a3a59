"""The outbox worker: sends queued messages in as few provider requests as allowed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from responder.clock import Clock
from responder.metrics import Metrics
from responder.outage import Outage
from responder.providers.base import (
    NoCredits,
    OutboundSMS,
    Provider,
    ProviderError,
    SendResult,
    Unconfirmed,
)
from responder.rules.model import RulesSettings
from responder.store import Store
from responder.store.broadcast_models import BROADCAST_ORIGIN
from responder.store.models import OutboxItem, SendOutcome, StoreUnavailable
from responder.text import segments

log = logging.getLogger("responder.outbox")

# A MasSMS message due this far ahead is handed to its own scheduler (smstype=p) at once.
NATIVE_SCHEDULE_AHEAD = timedelta(minutes=10)
OUTAGE_CAP = 10.0  # seconds between tries at most while the database is away


def backoff(attempts: int, rng: random.Random, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before the next try: exponential with ±20% jitter so retries do not stampede."""
    delay: float = min(cap, base * 2.0 ** max(0, attempts - 1))
    jitter: float = rng.uniform(0.8, 1.2)
    return delay * jitter


def batches(items: Sequence[OutboxItem], provider: Provider) -> Iterable[list[OutboxItem]]:
    """Groups one provider's messages into requests: any texts together when the provider takes
    a text per number, else one group per distinct text (and send time); never more than
    `max_batch`."""
    if provider.per_message_texts:
        groups: Iterable[list[OutboxItem]] = [list(items)]
    else:
        by_text: dict[tuple[str, datetime | None], list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_text[(item.text, item.send_at)].append(item)
        groups = by_text.values()
    for group in groups:
        for start in range(0, len(group), provider.max_batch):
            yield group[start : start + provider.max_batch]


class OutboxWorker:
    """Claims due messages (marking them 'sending' first), sends them, records every outcome."""

    def __init__(
        self,
        store: Store,
        providers: dict[str, Provider],
        *,
        clock: Clock,
        settings: Callable[[], RulesSettings] = RulesSettings,
        claim_limit: int = 1000,
        concurrency: int = 8,
        poll_interval: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.providers = providers
        self.clock = clock
        self.settings = settings
        self.claim_limit = claim_limit
        self.poll_interval = poll_interval
        self.metrics = metrics if metrics is not None else Metrics()
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pending: list[OutboxItem] = []
        self._pump: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        # Ids claimed by this instance and not yet recorded: their leases are renewed.
        self.in_flight_ids: set[int] = set()
        self._recording = Outage(log, "recording send outcomes", 0.5, OUTAGE_CAP)

    def wake(self) -> None:
        """Something was queued: look at once rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Sends what is due, at once when woken, else every `poll_interval` seconds; while the
        database is away, with growing pauses (a commit still wakes it at once)."""
        outage = Outage(log, "the outbox", self.poll_interval, OUTAGE_CAP)
        self._renewer = asyncio.create_task(self._renew_leases_forever(), name="outbox-leases")
        released, wait = False, 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            try:
                if not released:
                    await self._release_interrupted()
                    released = True
                await self.drain()
            except Exception as err:  # a locked or full database must not stop sending for good
                wait = outage.failed(err)
            else:
                outage.succeeded()
                wait = self.poll_interval

    async def _release_interrupted(self) -> None:
        """Sends left 'sending' by an instance that is gone go back to the queue (or fail)."""
        at_most_once = self.settings().delivery == "at_most_once"
        interrupted = await self.store.release_expired(at_most_once)
        if interrupted:
            fate = "failed (at-most-once)" if at_most_once else "queued again"
            log.warning(
                "%d message(s) left sending by a stopped instance were %s", interrupted, fate
            )

    def take(self, items: list[OutboxItem]) -> None:
        """Sends messages already claimed for this worker (replies committed as 'sending').
        While every send slot is busy they wait together, so a slow provider gets them in
        full batches rather than one request each."""
        self.in_flight_ids.update(i.id for i in items)
        self._pending.extend(items)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._pump_pending())
            self._in_flight.add(self._pump)
            self._pump.add_done_callback(self._in_flight.discard)

    async def _pump_pending(self) -> None:
        while self._pending:
            # Wait for a free slot before taking what is pending: whatever arrives meanwhile
            # joins the same batches.
            await self._slots.acquire()
            self._slots.release()
            items, self._pending = self._pending, []
            await self._dispatch(items)

    async def drain(self) -> None:
        """Claims and dispatches until nothing is due; sends run concurrently, bounded."""
        while True:
            at_most_once = self.settings().delivery == "at_most_once"
            items = await self.store.claim_outbox(self.claim_limit, at_most_once)
            if not items:
                return
            await self._dispatch(items)

    async def _record(self, outcomes: list[SendOutcome]) -> None:
        """Records what became of a send. While the database is away it is tried again: only
        this process knows what the gateway answered (its lease is renewed meanwhile)."""
        while True:
            try:
                await self.store.record_outcomes(outcomes)
            except StoreUnavailable as err:
                await asyncio.sleep(self._recording.failed(err))
                continue
            self._recording.succeeded()
            break
        for outcome in outcomes:
            self.metrics.outcome(outcome.failover_from or outcome.provider, outcome.status)
        self.in_flight_ids.difference_update(o.id for o in outcomes)

    async def _renew_leases_forever(self, every: float = 10.0) -> None:
        """A send may wait on a slow gateway longer than a lease: keep the claims alive."""
        outage = Outage(log, "renewing outbox leases", every, every)
        while True:
            await asyncio.sleep(every)
            try:
                await self.store.renew_leases(sorted(self.in_flight_ids))
            except Exception as err:
                outage.failed(err)
            else:
                outage.succeeded()

    async def _dispatch(self, items: list[OutboxItem]) -> None:
        """Fails expired messages, then sends the rest in provider-sized batches."""
        self.in_flight_ids.update(i.id for i in items)
        settings, now = self.settings(), self.clock()
        expired = [i for i in items if self._expired(i, settings, now)]
        if expired:
            await self._record(
                [SendOutcome(i.id, i.provider, "failed", error=_expiry_error(i)) for i in expired]
            )
        by_provider: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            if item not in expired:
                by_provider[item.provider].append(item)
        for name, group in by_provider.items():
            provider = self.providers.get(name)
            if provider is None:
                await self._fail_unconfigured(name, group)
                continue
            for batch in batches(group, provider):
                await self._slots.acquire()
                task = asyncio.create_task(self._send(provider, batch, settings))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    def _expired(self, item: OutboxItem, settings: RulesSettings, now: datetime) -> bool:
        """An answer an hour late confuses customers: auto-replies have a shorter limit."""
        if item.origin == BROADCAST_ORIGIN:  # paced and held on purpose (responder.broadcasts)
            return False
        limit = settings.reply_max_age if item.origin == "auto" else settings.agent_reply_max_age
        start = item.send_at or item.created_at
        return (now - start).total_seconds() > limit

    async def wait_idle(self) -> None:
        """Waits for the sends in flight (tests and graceful shutdown)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def stop(self, grace: float = 5.0) -> None:
        """Lets sends in flight finish for up to `grace` seconds, then cancels them; what this
        instance still holds goes back to the queue (or fails, with `delivery: at_most_once`).
        Other instances' sends are theirs: never touched."""
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.store.release_own(self.settings().delivery == "at_most_once")

    async def _fail_unconfigured(self, name: str, items: list[OutboxItem]) -> None:
        error = f"provider {name} is not configured"
        log.error("%s: %d message(s) failed", error, len(items))
        await self._record([SendOutcome(i.id, name, "failed", error=error) for i in items])

    async def _wait_for_budget(self, provider: str, count: int, settings: RulesSettings) -> None:
        """`settings.send_rate`: a budget per provider shared by every instance (in the store)."""
        rate = settings.send_rate.get(provider)
        if rate is None:
            return
        while (wait := await self.store.take_send_budget(provider, rate, count)) > 0:
            await asyncio.sleep(wait)

    async def _send(
        self, provider: Provider, batch: list[OutboxItem], settings: RulesSettings
    ) -> None:
        try:
            # A broadcast's messages took their budget when the feeder queued them.
            paying = sum(1 for i in batch if i.origin != BROADCAST_ORIGIN)
            if paying:
                await self._wait_for_budget(provider.name, paying, settings)
            now = self.clock()
            sms = [
                OutboundSMS(i.id, i.phone, i.text, self._native_time(provider, i, now, settings))
                for i in batch
            ]
            no_credits = False
            started = self.clock.monotonic()
            try:
                results = await provider.send(sms)
            except ProviderError as err:
                unconfirmed = isinstance(err, Unconfirmed)
                if not unconfirmed:  # that one is logged below, with the per-message ones
                    level = logging.WARNING if err.retryable else logging.ERROR
                    log.log(level, "%s: %d message(s): %s", provider.name, len(batch), err.message)
                results = [
                    SendResult(i.id, None, err.message, err.retryable, unconfirmed=unconfirmed)
                    for i in batch
                ]
                no_credits = isinstance(err, NoCredits)
            except Exception as err:  # a bug must not leave messages stuck in 'sending'
                log.exception("%s: sending failed unexpectedly", provider.name)
                results = [SendResult(i.id, None, f"internal error: {err}", True) for i in batch]
            self.metrics.send_seconds.observe(self.clock.monotonic() - started)
            by_id = {i.id: i for i in batch}
            accepted = sum(segments(by_id[r.id].text) for r in results if r.accepted)
            if accepted:
                self.metrics.segments(provider.name, accepted)
            scheduled = {s.id for s in sms if s.send_at is not None}
            # One pause for the whole batch: the parts of a long reply stay in order.
            retry_at = self.clock() + timedelta(
                seconds=backoff(max(i.attempts for i in batch), self.clock.random)
            )
            outcomes = [
                self._outcome(
                    provider.name, by_id[r.id], r, settings, no_credits, r.id in scheduled, retry_at
                )
                for r in results
            ]
            await self._record(outcomes)
            doubtful = [r for r in results if r.unconfirmed]
            if doubtful:
                log.error(
                    "%s: %d message(s) left unconfirmed, not sent again (check them in the "
                    "provider's panel): %s",
                    provider.name,
                    len(doubtful),
                    doubtful[0].error,
                )
            if any(o.failover_from for o in outcomes):
                self.wake()
        finally:
            self._slots.release()

    def _native_time(
        self, provider: Provider, item: OutboxItem, now: datetime, settings: RulesSettings
    ) -> datetime | None:
        """The send time to hand to a provider that schedules by itself, in local time."""
        if not provider.schedules or not item.send_at:
            return None
        send_at = item.send_at
        if send_at - now < NATIVE_SCHEDULE_AHEAD:
            return None
        return send_at.astimezone(settings.timezone)

    def _outcome(
        self,
        provider: str,
        item: OutboxItem,
        result: SendResult,
        settings: RulesSettings,
        no_credits: bool,
        scheduled: bool,
        retry_at: datetime,
    ) -> SendOutcome:
        if result.accepted:
            status = "delivered" if result.delivered else "scheduled" if scheduled else "sent"
            return SendOutcome(item.id, provider, status, result.provider_id)
        if result.unconfirmed:
            # Neither retried nor failed over: either could send it twice.
            return SendOutcome(item.id, provider, "unconfirmed", result.provider_id, result.error)
        if (no_credits or result.retryable) and settings.failover and not item.failover_from:
            other = next((n for n in self.providers if n not in (provider, "sandbox")), None)
            if other is not None:
                log.warning("message %d fails over from %s to %s", item.id, provider, other)
                error = f"{result.error} (failing over to {other})"
                return SendOutcome(item.id, other, "queued", None, error, self.clock(), provider)
        age = (self.clock() - item.created_at).total_seconds()
        if (
            result.retryable
            and item.attempts < settings.retry.attempts
            and age < settings.retry.max_age
        ):
            return SendOutcome(item.id, provider, "queued", None, result.error, retry_at)
        return SendOutcome(item.id, provider, "failed", result.provider_id, result.error)


def _expiry_error(item: OutboxItem) -> str:
    if item.origin == "auto":
        return "expired: the auto-reply waited too long to be sent (reply_max_age)"
    return "expired: the message waited too long to be sent (agent_reply_max_age)"
