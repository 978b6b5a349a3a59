"""Asks providers without push reports (MasSMS) for the status of messages still in flight."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from responder.clock import Clock
from responder.outage import Outage
from responder.providers.base import Provider, ProviderError
from responder.store import Store
from responder.store.models import PollItem, PollResult

log = logging.getLogger("responder.poller")

FINAL = ("delivered", "failed")
OUTAGE_CAP = 60.0  # seconds between polls at most while the database is away


class StatusPoller:
    """Polls each message with growing pauses (`first`, doubling, at most `cap`) until it is
    delivered or failed, or until `give_up_after` has passed since it was queued."""

    def __init__(
        self,
        store: Store,
        providers: dict[str, Provider],
        *,
        clock: Clock,
        first: float = 10.0,
        cap: float = 600.0,
        give_up_after: float = 48 * 3600.0,
        interval: float = 2.0,
        batch: int = 200,
        concurrency: int = 4,
    ) -> None:
        self.store = store
        self.providers = {n: p for n, p in providers.items() if p.polls_status}
        self.clock = clock
        self.first = first
        self.cap = cap
        self.give_up_after = give_up_after
        self.interval = interval
        self.batch = batch
        self._slots = asyncio.Semaphore(concurrency)

    async def run(self) -> None:
        if not self.providers:
            return
        outage = Outage(log, "status polling", self.interval, OUTAGE_CAP)
        wait = self.interval
        while True:
            await asyncio.sleep(wait)
            try:
                await self.poll_due()
            except Exception as err:  # a locked database must not stop polling for good
                wait = outage.failed(err)
            else:
                outage.succeeded()
                wait = self.interval

    async def poll_due(self) -> int:
        """Polls every message now due; returns how many were asked about."""
        items = await self.store.claim_polls(list(self.providers), self.batch)
        if items:
            results = await asyncio.gather(*(self._poll(item) for item in items))
            await self.store.record_polls(results)
        return len(items)

    def _next(self, item: PollItem, now: datetime) -> datetime | None:
        # A message scheduled far ahead is only due then: count its age from its send time.
        start = max(item.created_at, item.send_at or item.created_at)
        if now - start > timedelta(seconds=self.give_up_after):
            log.warning("gave up polling message %d (%s)", item.id, item.provider)
            return None
        return now + timedelta(seconds=min(self.cap, self.first * 2.0 ** (item.polls + 1)))

    async def _poll(self, item: PollItem) -> PollResult:
        async with self._slots:
            now = self.clock()
            try:
                found = await self.providers[item.provider].query_status(item.provider_id)
            except ProviderError as err:
                log.warning("status query for message %d failed: %s", item.id, err.message)
                return PollResult(item.id, None, None, self._next(item, now))
        if found is None:  # NOTFOUND: the platform may not know it yet
            return PollResult(item.id, None, None, self._next(item, now))
        if found.status in FINAL:
            error = found.detail if found.status == "failed" else None
            return PollResult(item.id, found.status, error, None)
        return PollResult(item.id, found.status, None, self._next(item, now))
