"""How a loop that needs the database lives through the database going away: it waits longer
and longer between tries, and says so once, not on every try."""

from __future__ import annotations

import logging

from responder.store.models import StoreUnavailable


class Outage:
    """One WARNING when `what` starts failing, or fails differently (with the traceback when
    the failure is not the store's StoreUnavailable: that may be a bug), one INFO when it works
    again, DEBUG in between; pauses from `first` doubling up to `cap` seconds meanwhile."""

    def __init__(self, log: logging.Logger, what: str, first: float, cap: float) -> None:
        self.log = log
        self.what = what
        self.first = first
        self.cap = cap
        self.failures = 0
        self._kind: type[BaseException] | None = None

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def failed(self, err: BaseException) -> float:
        """Notes a failed try; returns how long to wait before the next."""
        self.failures += 1
        if type(err) is not self._kind:  # the first failure, or a different one
            self._kind = type(err)
            if isinstance(err, StoreUnavailable):
                self.log.warning("%s failed (%s); trying again", self.what, err)
            else:
                self.log.warning("%s failed; trying again", self.what, exc_info=err)
        else:
            self.log.debug("%s failed again (%d): %s", self.what, self.failures, err)
        delay: float = min(self.cap, self.first * 2.0 ** (self.failures - 1))
        return delay

    def succeeded(self) -> None:
        if self.failures:
            self.log.info("%s works again after %d failed tries", self.what, self.failures)
        self.failures = 0
        self._kind = None
