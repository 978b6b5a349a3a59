"""The broadcast feeder (DESIGN §12): one holder in the whole deployment (the
`broadcast-feeder` lease) moves each running broadcast's recipients into the outbox a couple of
seconds' worth at a time, outside the quiet hours, only while no reply or staff message waits,
taking the provider's send budget first; and keeps the broadcasts' books (scheduled ones
started, opted-out numbers skipped, finished ones done). README "Broadcasts" tells the why."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from jinja2 import Template

from responder.broadcasts import BroadcastError, Broadcasts, quiet_wait
from responder.clock import Clock
from responder.outage import Outage
from responder.phone import InvalidPhoneNumber, normalize_phone
from responder.providers.base import Provider
from responder.rules.model import RulesSettings
from responder.store import Store
from responder.store.broadcast_models import FeedItem, FeedState, SegmentContact
from responder.store.broadcast_sql import SKIPPED_OPTED_OUT
from responder.templating import TemplateError
from responder.workers.outbox import NATIVE_SCHEDULE_AHEAD

log = logging.getLogger("responder.broadcasts")

FEED_EVERY = 0.5  # seconds between the feeder's looks
FEED_SOON = 0.1  # seconds to the next look after one that queued messages (keeps up)
FEED_LEASE = 5.0  # seconds: a feeder that stops is replaced within this
FEED_SECONDS = 2.0  # the outbox holds about this many seconds' worth of a broadcast
# A cancelled broadcast is still looked at this long: a message that was being sent when it
# was cancelled may come back from a failed try, and is cancelled then.
STRAYS_FOR = timedelta(hours=1)
# Without a send_rate for the provider: messages in the outbox at once. A reply never waits
# behind them for a claim (replies are handed to the sender as they are decided); at most it
# waits for one of the sender's slots, i.e. one provider request.
DEFAULT_CHUNK = 400
# A broadcast scheduled through a provider with its own scheduler (MasSMS) is handed to it from
# this long before its time, until NATIVE_SCHEDULE_AHEAD (plus a margin) before it.
NATIVE_LEAD = timedelta(hours=1)
NATIVE_MARGIN = timedelta(minutes=1)


class BroadcastFeeder:
    """Feeds running broadcasts into the outbox (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        broadcasts: Broadcasts,
        providers: dict[str, Provider],
        *,
        settings: Callable[[], RulesSettings],
        clock: Clock,
    ) -> None:
        self.store = store
        self.broadcasts = broadcasts
        self.providers = providers
        self.settings = settings
        self.clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A broadcast was made or changed: look at once rather than at the next tick."""
        self._wake.set()

    def _room(self, via: str, state: FeedState, settings: RulesSettings) -> int:
        """How many recipients to queue now: the outbox holds about FEED_SECONDS' worth of a
        broadcast, and half a second's worth at most is queued per look."""
        rate = settings.send_rate.get(via)
        if rate is None:
            return min(DEFAULT_CHUNK - state.outstanding, state.pending)
        return min(
            math.ceil(rate * FEED_SECONDS) - state.outstanding,
            max(1, int(rate * FEED_EVERY)),
            state.pending,
        )

    async def _paid(self, via: str, count: int, settings: RulesSettings) -> bool:
        """With a `send_rate`, the feeder takes its messages' budget before it queues them
        (never into debt: at most half a second's worth), so the outbox sends them at once and
        a reply never waits behind a broadcast's batch for budget."""
        rate = settings.send_rate.get(via)
        return rate is None or await self.store.take_send_budget(via, rate, count) == 0

    def _item(self, template: Template, contact: SegmentContact, now: datetime) -> FeedItem:
        """What one recipient gets, or why it is skipped."""
        if contact.opted_out:
            return FeedItem(contact.phone, skip=SKIPPED_OPTED_OUT)
        try:
            normalize_phone(contact.phone, self.settings().country)
        except InvalidPhoneNumber:
            return FeedItem(contact.phone, skip="skipped: not a valid mobile number")
        try:
            parts = self.broadcasts.parts(self.broadcasts.render(template, contact, now))
        except TemplateError as err:
            return FeedItem(contact.phone, skip=f"skipped: the text failed for it: {err}")
        if not parts:
            return FeedItem(contact.phone, skip="skipped: the text came out empty for it")
        return FeedItem(contact.phone, parts)

    async def feed_once(self) -> int:
        """One look: starts scheduled broadcasts whose time came, settles what is final, and
        moves the next recipients of each running broadcast into the outbox. Answers how many
        recipients it queued."""
        settings = self.settings()
        hours = settings.hours
        window = hours.quiet if hours else None
        await self.store.start_due_broadcasts()
        done = await self.store.settle_broadcasts()
        for broadcast_id in done:
            log.info("broadcast %d is done", broadcast_id)
        fed = 0
        replies_waiting: dict[str | None, bool] = {}
        for state in await self.store.broadcasts_to_feed():
            broadcast, now = state.broadcast, self.clock()
            send_at = due = None
            if broadcast.status == "scheduled":
                # Handed ahead to a provider that schedules by itself (MasSMS), within the lead.
                provider = self.providers.get(broadcast.via)
                if provider is None or not provider.schedules or broadcast.send_at is None:
                    continue
                ahead = broadcast.send_at - now
                if not NATIVE_SCHEDULE_AHEAD + NATIVE_MARGIN <= ahead <= NATIVE_LEAD:
                    continue
                if quiet_wait(window, broadcast.send_at, settings.timezone) is not None:
                    continue
                send_at, due = broadcast.send_at, now
            else:
                opens = quiet_wait(window, now, settings.timezone)
                if opens is not None:
                    await self.store.hold_broadcast(broadcast.id, opens)
                    continue
            if state.pending == 0:
                continue
            # Replies first: with a send rate, also those being sent through the same provider
            # (they may be waiting for its budget, which the feeder would take).
            rated = broadcast.via if broadcast.via in settings.send_rate else None
            if rated not in replies_waiting:
                replies_waiting[rated] = await self.store.reply_waiting(rated)
            if replies_waiting[rated]:
                continue
            room = self._room(broadcast.via, state, settings)
            if room <= 0:
                continue
            try:
                template = self.broadcasts.template(broadcast.text)
            except BroadcastError as err:  # checked at creation: only a changed sandbox
                log.error("broadcast %d: %s", broadcast.id, err.message)
                continue
            contacts = await self.store.pending_recipients(broadcast.id, room)
            items = [self._item(template, contact, now) for contact in contacts]
            paying = sum(1 for item in items if item.skip is None)
            if paying and not await self._paid(broadcast.via, paying, settings):
                items = [item for item in items if item.skip is not None]  # those cost nothing
            fed += await self.store.feed_broadcast(broadcast.id, items, send_at=send_at, due=due)
        return fed

    async def run(self) -> None:
        """Feeds while this instance holds the feeder's lease (one feeder per deployment)."""
        outage = Outage(log, "the broadcast feeder", FEED_EVERY, 10.0)
        wait = FEED_EVERY
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
            try:
                # Nothing to do (most of the time): one small read, no write, no lease.
                active = await self.store.broadcasts_active(self.clock() - STRAYS_FOR)
                fed = 0
                if active and await self.store.try_lease("broadcast-feeder", FEED_LEASE):
                    fed = await self.feed_once()
            except Exception as err:  # a locked or unreachable database must not stop it
                wait = outage.failed(err)
            else:
                outage.succeeded()
                wait = FEED_SOON if fed else FEED_EVERY
