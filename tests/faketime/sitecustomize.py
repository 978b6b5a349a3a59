"""Loaded by every Python process of `make test-dates` (PYTHONPATH=tests/faketime), which runs
under Debian's libfaketime 0.9.10 with a shifted date and the monotonic clock left alone.

That libfaketime breaks one call Python 3.11 makes: `time.sleep` sleeps with
clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), and libfaketime shifts that deadline by the
fake offset even when told not to fake the monotonic clock, so the kernel answers EINVAL
(libfaketime issue 426). Here `time.sleep` waits in select() instead, whose timeout is relative
and passes through untouched. Nothing else is changed; outside libfaketime this file does nothing.
"""

from __future__ import annotations

import os
import select
import time
from typing import SupportsFloat, SupportsIndex


def _sleep(seconds: SupportsFloat | SupportsIndex) -> None:
    length = float(seconds)
    if length < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], length)


if "faketime" in os.environ.get("LD_PRELOAD", "") and os.environ.get("FAKETIME"):
    time.sleep = _sleep
