"""The spool: where webhooks wait, on local disk, while the database cannot take them.

`RESPONDER_SPOOL` names a folder; each running process holds one numbered slot in it
(`0/`, `1/`, ...), so that two processes sharing a folder (an overlapping deploy on one SQLite
file) never write or replay the same records. A process starting takes the lowest free slot,
and so what a stopped or killed process left behind; a slot left behind while its successor
took another is adopted by the replayer as soon as its lock is free.
"""

from __future__ import annotations

import logging
from pathlib import Path

from responder.config import StartupError
from responder.spool.records import Spooled, UnreadableRecord, decode, encode
from responder.spool.slot import SEGMENT_BYTES, Entry, SpoolSlot, SpoolUnavailable

log = logging.getLogger("responder.spool")

MAX_BYTES = 256 * 1024 * 1024  # per slot: about half a million webhooks
MAX_SLOTS = 64


class Spool:
    """This process's slot of the spool folder, and the slots it adopted."""

    def __init__(
        self, folder: Path, max_bytes: int = MAX_BYTES, segment_bytes: int = SEGMENT_BYTES
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._own: SpoolSlot | None = None
        self.adopted: list[SpoolSlot] = []

    def open(self) -> None:
        """Takes the lowest free slot and reads what it holds."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for number in range(MAX_SLOTS):
                slot = SpoolSlot(self.folder / str(number), self.max_bytes, self.segment_bytes)
                if slot.try_lock():
                    slot.load()
                    self._own = slot
                    return
        except OSError as err:
            raise StartupError(f"RESPONDER_SPOOL: cannot use {self.folder}: {err}") from None
        raise StartupError(
            f"RESPONDER_SPOOL: {MAX_SLOTS} processes already use {self.folder}; "
            "give each instance its own folder"
        )

    async def close(self) -> None:
        for slot in (*self.adopted, *([self._own] if self._own else [])):
            await slot.close()
        self.adopted, self._own = [], None

    @property
    def is_open(self) -> bool:
        return self._own is not None

    @property
    def own(self) -> SpoolSlot:
        if self._own is None:
            raise RuntimeError("spool is not open")
        return self._own

    @property
    def pending(self) -> int:
        """Webhooks kept and not yet stored in the database (this process's and adopted)."""
        if self._own is None:
            return 0
        if not self.adopted:  # the usual case, asked once per webhook
            return self._own.pending
        return self._own.pending + sum(s.pending for s in self.adopted)

    async def append(self, item: Spooled) -> None:
        """Keeps `item` on disk (fsynced); SpoolUnavailable when it cannot."""
        await self.own.append(encode(item))

    def adopt(self) -> list[SpoolSlot]:
        """Takes every other slot of the folder that holds records and no process holds."""
        if self._own is None:
            return []
        held = {self._own.folder, *(s.folder for s in self.adopted)}
        try:
            paths = [p for p in self.folder.iterdir() if p.name.isdigit() and p not in held]
        except OSError:
            return self.adopted
        for path in sorted(paths, key=lambda p: int(p.name)):
            slot = SpoolSlot(path, self.max_bytes, self.segment_bytes)
            try:
                if not slot.try_lock():
                    continue
                slot.load()
            except OSError as err:  # tried again at the next pass
                log.warning("cannot read the spool slot %s: %s", path, err)
                slot.release()
                continue
            if slot.pending:
                log.warning("%d webhook(s) left in the spool %s are stored now", slot.pending, path)
                self.adopted.append(slot)
            else:
                slot.release()
        return self.adopted

    async def let_go(self, slot: SpoolSlot) -> None:
        """An adopted slot replayed to its end goes back to the folder."""
        self.adopted.remove(slot)
        await slot.close()


__all__ = [
    "Entry",
    "Spool",
    "SpoolSlot",
    "SpoolUnavailable",
    "Spooled",
    "UnreadableRecord",
    "decode",
    "encode",
]
