"""The spool replayer: stores the webhooks the spool kept, in order, once the database takes
writes again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from responder.engine import InboundMessage
from responder.outage import Outage
from responder.spool import Entry, Spool, Spooled, SpoolSlot, UnreadableRecord, decode

log = logging.getLogger("responder.spool")

_NOT_RUN = object()


class SpoolReplayer:
    """Reads the spool in chunks; within a chunk each phone's records are stored one after
    another (in the order they came), different phones side by side. The position moves only
    over records stored, in order; a record that fails stops it there and the replayer waits
    (growing pauses, `first` to `cap` seconds) before trying again.

    A record that keeps failing while the database is otherwise healthy (`attempts` tries) is
    set aside (kept raw among the rejected webhooks, with the reason), so that one bad record
    cannot hold every later webhook in the spool."""

    def __init__(
        self,
        spool: Spool,
        store: Callable[[Spooled], Awaitable[object]],
        set_aside: Callable[[bytes, str], Awaitable[None]],
        healthy: Callable[[], Awaitable[bool]],
        *,
        first: float = 0.25,
        cap: float = 5.0,
        chunk: int = 256,
        attempts: int = 5,
        adopt_every: float = 5.0,
    ) -> None:
        self.spool = spool
        self.store = store
        self.set_aside = set_aside
        self.healthy = healthy
        self.chunk = chunk
        self.attempts = attempts
        self.adopt_every = adopt_every
        self.outage = Outage(log, "storing the spooled webhooks", first, cap)
        # Why the last try failed while the database was unavailable; None once one succeeds.
        self.problem: str | None = None
        self.replayed = 0  # since the spool was last empty
        self._strikes: dict[tuple[Path, int, int], int] = {}
        # Stored, but behind a record that failed, so the position could not move past them:
        # not stored again by this process when the chunk is tried again.
        self._stored: set[tuple[Path, int, int]] = set()

    async def run(self) -> None:
        while True:
            self.spool.adopt()
            if not self.spool.pending:
                written = self.spool.own.written
                written.clear()
                if not self.spool.pending:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(written.wait(), self.adopt_every)
                continue
            try:
                await self.replay()
            except Exception as err:
                await self._back_off(err)
                continue
            self.outage.succeeded()
            self.problem = None
            if not self.spool.pending and self.replayed:
                log.info("stored the %d webhook(s) the spool kept", self.replayed)
                self.replayed = 0

    async def replay(self) -> int:
        """Stores what the spool holds now, adopted slots (older) first; returns how many."""
        total = 0
        for slot in list(self.spool.adopted):
            while (stored := await self._replay_chunk(slot)) > 0:
                total += stored
            await self.spool.let_go(slot)  # read to its end (a failure raised above)
        while self.spool.own.pending and (stored := await self._replay_chunk(self.spool.own)):
            total += stored
        return total

    async def _replay_chunk(self, slot: SpoolSlot) -> int:
        """One chunk; raises the first failure after moving the position over what came before
        it. Returns how many records were replayed (0: nothing written yet to read)."""
        entries = slot.read(self.chunk)
        if not entries:
            if slot.appending:
                slot.written.clear()
                await slot.written.wait()  # appends under way: wait until they are on disk
            elif slot.pending:  # a count thrown off by a damaged line: nothing is left to read
                log.warning(
                    "the spool %s counted %d record(s) it does not hold", slot.folder, slot.pending
                )
                slot.pending = 0
            return 0
        outcomes: list[object] = [_NOT_RUN] * len(entries)
        groups: dict[str, list[int]] = {}
        items: list[Spooled | UnreadableRecord] = []
        for index, entry in enumerate(entries):
            try:
                item: Spooled | UnreadableRecord = decode(entry.line)
            except UnreadableRecord as err:
                item = err
            items.append(item)
            groups.setdefault(_key(item, index), []).append(index)

        async def run(indexes: list[int]) -> None:
            for index in indexes:
                key = _where(slot, entries[index])
                if key not in self._stored:  # else stored at a try that failed further on
                    try:
                        await self._store(items[index], entries[index])
                    except Exception as err:
                        outcomes[index] = err
                        return  # the phone's later records wait behind this one
                    self._stored.add(key)
                outcomes[index] = None

        await asyncio.gather(*(run(g) for g in groups.values()))
        done = 0
        for entry, outcome in zip(entries, outcomes):
            if outcome is not None:  # the first record not stored is one that failed
                slot.sync()
                failure = outcome if isinstance(outcome, Exception) else RuntimeError(outcome)
                await self._failed(slot, entry, failure)  # raises unless it set the record aside
                return done + 1
            slot.done(entry)
            self._stored.discard(_where(slot, entry))
            done += 1
            self.replayed += 1
        slot.sync()
        return done

    async def _store(self, item: Spooled | UnreadableRecord, entry: Entry) -> None:
        if isinstance(item, UnreadableRecord):
            log.error("a spool record could not be read (%s): kept among rejected webhooks", item)
            await self.set_aside(entry.line, str(item))
        else:
            await self.store(item)

    async def _failed(self, slot: SpoolSlot, entry: Entry, err: Exception) -> None:
        """The database may be away (wait and try again), or this record may be the problem
        (after `attempts` tries with the database healthy, set it aside)."""
        if not await self._healthy():
            raise err
        key = _where(slot, entry)
        strikes = self._strikes[key] = self._strikes.get(key, 0) + 1
        if strikes < self.attempts:
            raise err
        reason = f"could not be stored from the spool: {type(err).__name__}: {err}"
        await self.set_aside(entry.line, reason)
        log.error("a spooled webhook failed %d times and was set aside: %s", strikes, reason)
        del self._strikes[key]
        slot.done(entry)
        slot.sync()

    async def _healthy(self) -> bool:
        try:
            return await self.healthy()
        except Exception:
            return False

    async def _back_off(self, err: Exception) -> None:
        delay = self.outage.failed(err)
        if not await self._healthy():
            self.problem = f"{type(err).__name__}: {err}"
        await asyncio.sleep(delay)


def _where(slot: SpoolSlot, entry: Entry) -> tuple[Path, int, int]:
    return slot.folder, entry.segment, entry.end


def _key(item: Spooled | UnreadableRecord, index: int) -> str:
    """Records with one key are stored in order: one phone's messages; reports stand alone."""
    if isinstance(item, InboundMessage):
        return f"phone:{item.phone}"
    return f"record:{index}"
