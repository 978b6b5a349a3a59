"""Webhooks in: stored at once, or, while the database cannot take them, kept in the spool on
local disk and stored by the replayer when it can (DESIGN §9)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from responder.engine import InboundMessage
from responder.spool import Spool, Spooled
from responder.store import Store
from responder.store.models import InboundResult, StatusUpdate, StoreUnavailable
from responder.workers.replay import SpoolReplayer

log = logging.getLogger("responder")


class Intake:
    """Takes inbound messages and delivery reports through `receive(message, replayed)` and
    `record_status(update)` (the service's). While the spool holds anything, new ones join it
    behind the older ones: each phone's messages are decided in the order they came."""

    def __init__(
        self,
        folder: Path,
        store: Store,
        receive: Callable[[InboundMessage, bool], Awaitable[InboundResult]],
        record_status: Callable[[StatusUpdate], Awaitable[bool]],
    ) -> None:
        self.store = store
        self.receive = receive
        self.record_status = record_status
        self.spool = Spool(folder)
        self.replayer = SpoolReplayer(
            self.spool, self._store_spooled, self._set_aside, self._healthy
        )

    def open(self) -> None:
        """Takes a slot of the spool folder (StartupError when it cannot)."""
        self.spool.open()
        if self.spool.pending:
            log.warning(
                "%d webhook(s) kept in the spool %s are stored first",
                self.spool.pending,
                self.spool.folder,
            )

    async def close(self) -> None:
        if self.spool.pending:
            log.warning(
                "%d webhook(s) stay in the spool %s until the next start",
                self.spool.pending,
                self.spool.folder,
            )
        await self.spool.close()

    async def take_inbound(self, message: InboundMessage) -> InboundResult | None:
        """Stored with its replies, or None: kept in the spool, to be stored when it can be.
        SpoolUnavailable (a StoreUnavailable) when neither can keep it."""
        # The usual path written out, not through a shared helper taking a lambda: it runs
        # for every webhook, and each coroutine layer costs a little.
        if not self.spool.pending:
            try:
                return await self.receive(message, False)
            except StoreUnavailable as err:
                if not self._spool_instead(err):
                    raise
        await self.spool.append(message)
        return None

    async def take_status(self, update: StatusUpdate) -> bool | None:
        """True when applied, False when no message has its id yet (kept for later), None when
        kept in the spool."""
        if not self.spool.pending:
            try:
                return await self.record_status(update)
            except StoreUnavailable as err:
                if not self._spool_instead(err):
                    raise
        await self.spool.append(update)
        return None

    def _spool_instead(self, err: StoreUnavailable) -> bool:
        """Whether a webhook the database could not take goes to the spool (one is open)."""
        if not self.spool.is_open:
            return False
        if not self.spool.pending:  # once per outage, not once per webhook
            log.warning(
                "the database cannot store webhooks (%s): keeping them in the spool %s",
                err,
                self.spool.folder,
            )
        return True

    async def _store_spooled(self, item: Spooled) -> None:
        if isinstance(item, InboundMessage):
            await self.receive(item, True)
        else:
            await self.record_status(item)

    async def _set_aside(self, line: bytes, reason: str) -> None:
        """A spool record that cannot be stored is kept raw among the rejected webhooks."""
        await self.store.reject_webhook(
            "SPOOL", str(self.spool.folder), "", line, "application/json", reason
        )

    async def _healthy(self) -> bool:
        return await self.store.ping() and await self.store.write_problem() is None
