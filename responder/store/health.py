"""Whether the database can take writes, for /healthz: room left for it, and how the last
write went. Process-local, and safe so: each process reports on its own writes and room."""

from __future__ import annotations

import logging
import math
import shutil
import sqlite3
from pathlib import Path

log = logging.getLogger("responder.store")

# SQLite's primary result codes that mean "cannot write now" (disk full, read-only or failing
# storage, a lock held too long, no memory), as opposed to a bug in a statement.
UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOMEM,
    }
)
MIN_ROOM = 1024 * 1024  # with less room than this, writes are about to fail: report it
PROBE_EVERY = 1.0  # seconds between write probes while the last write failed


def unavailable(err: sqlite3.Error) -> bool:
    """The error says the database cannot write now, by its result code."""
    code = getattr(err, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in UNAVAILABLE


def room(db: sqlite3.Connection, path: Path) -> tuple[int, str]:
    """How many bytes the database can still grow by, and what limits it: the free space of
    its disk, or its own page limit (`PRAGMA max_page_count`, with the pages it has free)."""
    page_size, pages, free, limit = (
        int(db.execute(f"PRAGMA {name}").fetchone()[0])
        for name in ("page_size", "page_count", "freelist_count", "max_page_count")
    )
    in_file = (limit - pages + free) * page_size
    on_disk = shutil.disk_usage(path.resolve().parent).free
    if in_file < on_disk:
        return in_file, "under the database's page limit"
    return on_disk, f"on the disk holding {path}"


class WriteHealth:
    """How the last write went: a write that failed for want of room or storage is remembered
    until a write succeeds (a probe, at most every PROBE_EVERY seconds, checks it)."""

    def __init__(self) -> None:
        self.failure: str | None = None
        self._probed_at = -math.inf

    def failed(self, err: Exception) -> None:
        if self.failure is None:
            log.error("the database cannot write: %s", err)
        self.failure = f"the last write failed: {err}"

    def succeeded(self) -> None:
        if self.failure is not None:
            log.warning("the database writes again")
        self.failure = None

    def probe_due(self, now: float) -> bool:
        """A failure is remembered and the last probe is old enough to try another."""
        if self.failure is None or now - self._probed_at < PROBE_EVERY:
            return False
        self._probed_at = now
        return True
