"""The outbox worker: sends queued messages in as few provider requests as allowed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from responder.providers.base import OutboundSMS, Provider, ProviderError, SendResult
from responder.store.models import OutboxItem, SendOutcome
from responder.store.sqlite import SQLiteStore

log = logging.getLogger("responder.outbox")


def backoff(attempts: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before the next try: exponential with ±20% jitter so retries do not stampede."""
    delay: float = min(cap, base * 2.0 ** max(0, attempts - 1))
    jitter: float = random.uniform(0.8, 1.2)
    return delay * jitter


def batches(items: Sequence[OutboxItem], provider: Provider) -> Iterable[list[OutboxItem]]:
    """Groups one provider's messages into requests: any texts together when the provider takes
    a text per number, else one group per distinct text; never more than `max_batch`."""
    if provider.per_message_texts:
        groups: Iterable[list[OutboxItem]] = [list(items)]
    else:
        by_text: dict[str, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_text[item.text].append(item)
        groups = by_text.values()
    for group in groups:
        for start in range(0, len(group), provider.max_batch):
            yield group[start : start + provider.max_batch]


class OutboxWorker:
    """Claims due messages (marking them 'sending' first), sends them, records every outcome."""

    def __init__(
        self,
        store: SQLiteStore,
        providers: dict[str, Provider],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        claim_limit: int = 1000,
        concurrency: int = 8,
        max_attempts: int = 8,
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.providers = providers
        self.clock = clock
        self.claim_limit = claim_limit
        self.max_attempts = max_attempts
        self.poll_interval = poll_interval
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Something was queued: look at once rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        requeued = await self.store.requeue_interrupted()
        if requeued:
            log.warning("%d message(s) interrupted while sending were queued again", requeued)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()
            await self.drain()

    async def drain(self) -> None:
        """Claims and dispatches until nothing is due; sends run concurrently, bounded."""
        while True:
            items = await self.store.claim_outbox(self.claim_limit)
            if not items:
                return
            by_provider: dict[str, list[OutboxItem]] = defaultdict(list)
            for item in items:
                by_provider[item.provider].append(item)
            for name, group in by_provider.items():
                provider = self.providers.get(name)
                if provider is None:
                    await self._fail_unconfigured(name, group)
                    continue
                for batch in batches(group, provider):
                    await self._slots.acquire()
                    task = asyncio.create_task(self._send(provider, batch))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)

    async def wait_idle(self) -> None:
        """Waits for the sends in flight (tests and graceful shutdown)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def stop(self, grace: float = 5.0) -> None:
        """Lets sends in flight finish for up to `grace` seconds, then cancels them; whatever
        stays 'sending' goes back to the queue."""
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.store.requeue_interrupted()

    async def _fail_unconfigured(self, name: str, items: list[OutboxItem]) -> None:
        error = f"provider {name} is not configured"
        log.error("%s: %d message(s) failed", error, len(items))
        await self.store.record_outcomes(
            [SendOutcome(i.id, name, "failed", error=error) for i in items]
        )

    async def _send(self, provider: Provider, batch: list[OutboxItem]) -> None:
        try:
            sms = [OutboundSMS(i.id, i.phone, i.text) for i in batch]
            try:
                results = await provider.send(sms)
            except ProviderError as err:
                level = logging.WARNING if err.retryable else logging.ERROR
                log.log(level, "%s: %d message(s): %s", provider.name, len(batch), err.message)
                results = [SendResult(i.id, None, err.message, err.retryable) for i in batch]
            except Exception as err:  # a bug must not leave messages stuck in 'sending'
                log.exception("%s: sending failed unexpectedly", provider.name)
                results = [SendResult(i.id, None, f"internal error: {err}", True) for i in batch]
            by_id = {i.id: i for i in batch}
            await self.store.record_outcomes(
                [self._outcome(provider.name, by_id[r.id], r) for r in results]
            )
        finally:
            self._slots.release()

    def _outcome(self, provider: str, item: OutboxItem, result: SendResult) -> SendOutcome:
        if result.accepted:
            status = "delivered" if result.delivered else "sent"
            return SendOutcome(item.id, provider, status, result.provider_id)
        if result.retryable and item.attempts < self.max_attempts:
            retry_at = self.clock() + timedelta(seconds=backoff(item.attempts))
            return SendOutcome(item.id, provider, "queued", None, result.error, retry_at)
        return SendOutcome(item.id, provider, "failed", result.provider_id, result.error)
