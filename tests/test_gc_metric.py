"""GET /metrics shows the garbage collector's pauses by generation (issue 16): every
collection while the service runs is timed, and the hook goes when the service stops."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from responder.config import Settings
from responder.service import Service
from tests.conftest import Clock, RunningApp
from tests.test_metrics import samples, value


def test_gc_pauses_are_counted_by_generation(start_app: Callable[..., RunningApp]) -> None:
    app = start_app()
    before = samples(app)
    for _ in range(3):
        gc.collect()  # full collections (generation 2), in this process: the app's too
    gc.collect(0)
    after = samples(app)
    full = value(after, "responder_gc_pause_seconds_count", generation="2") - value(
        before, "responder_gc_pause_seconds_count", generation="2"
    )
    assert full >= 3
    assert value(after, "responder_gc_pause_seconds_count", generation="0") > value(
        before, "responder_gc_pause_seconds_count", generation="0"
    )
    assert value(after, "responder_gc_pause_seconds_sum", generation="2") > 0
    assert value(after, "responder_gc_pause_max_seconds", generation="2") > 0
    assert value(after, "responder_gc_cpu_seconds_total", generation="2") > 0
    # Pauses under 10 ms land in the buckets up to it; the histogram has the 10 ms bound.
    assert value(after, "responder_gc_pause_seconds_bucket", generation="2", le="0.01") <= value(
        after, "responder_gc_pause_seconds_count", generation="2"
    )
    assert (
        "responder_gc_pause_seconds_bucket",
        frozenset({("generation", "1"), ("le", "0.01")}),
    ) in after


def test_the_hook_goes_with_the_service(
    make_settings: Callable[..., Settings], clock: Clock
) -> None:
    service = Service(make_settings(), clock=clock)
    hook = service.metrics._gc.callback

    async def run() -> bool:
        await service.start()
        try:
            return hook in gc.callbacks
        finally:
            await service.stop()

    assert asyncio.run(run())
    assert hook not in gc.callbacks
