"""The sandbox: records sends and marks them delivered, calling nothing. For trying responder."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence

from responder.providers.base import OutboundSMS, Provider, SendResult

log = logging.getLogger("responder.sandbox")

# The latest sends it remembers (for a look in a debugger or a test); a sandbox that serves for
# weeks must not keep every one of them.
KEEP = 1000


class SandboxProvider(Provider):
    name = "sandbox"
    max_batch = 100
    per_message_texts = True

    def __init__(self) -> None:
        self.sent: deque[OutboundSMS] = deque(maxlen=KEEP)

    async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
        self.sent.extend(batch)
        for sms in batch:
            log.debug("sandbox: would send to %s: %s", sms.phone, sms.text)
        return [SendResult(sms.id, f"sandbox-{sms.id}", delivered=True) for sms in batch]

    async def balance(self) -> float:
        return float("inf")
