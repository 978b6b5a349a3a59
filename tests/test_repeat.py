"""The service's periodic sweeps (service.repeat): a failing sweep is logged once, the loop
goes on, and its recovery is logged; the loop ends only when cancelled."""

from __future__ import annotations

import asyncio
import logging

import pytest

from responder.service import repeat


async def test_a_failing_sweep_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "responder")
    calls = 0
    done = asyncio.Event()

    async def sweep() -> int:
        nonlocal calls
        calls += 1
        if calls in (2, 3):
            raise RuntimeError("the server went away")
        if calls == 5:
            done.set()
        return calls

    task = asyncio.create_task(repeat(0.001, "indexing new numbers", sweep))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 5  # failures did not stop it
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["indexing new numbers failed; trying again"]  # once, with its traceback
    assert "indexing new numbers works again after 2 failed tries" in caplog.text
