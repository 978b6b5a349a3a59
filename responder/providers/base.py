"""The interface every provider implements, with typed results and one error hierarchy."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class OutboundSMS:
    """One SMS to hand to a provider; `id` is our message id."""

    id: int
    phone: str
    text: str
    send_at: datetime | None = None  # scheduled delivery, when the provider supports it


@dataclass(frozen=True)
class SendResult:
    """The provider's verdict on one message of a batch."""

    id: int
    provider_id: str | None
    error: str | None = None
    retryable: bool = False
    delivered: bool = False  # final already (the sandbox), no delivery report will follow
    # The provider answered, but not readably about this message: it may have gone out, so it
    # is neither sent again nor failed (status 'unconfirmed').
    unconfirmed: bool = False

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class DeliveryStatus:
    """What a status query answered: `status` is sent, delivered, failed or scheduled."""

    status: str
    detail: str | None = None


class ProviderError(Exception):
    """A whole request failed. `retryable` says whether trying again later may succeed."""

    retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        if retryable is not None:
            self.retryable = retryable


class ConnectionFailed(ProviderError):
    """Could not reach the provider, or it did not answer in time."""

    retryable = True


class Throttled(ProviderError):
    """The provider asked us to slow down."""

    retryable = True


class Rejected(ProviderError):
    """The provider refused the request with one of its documented codes."""


class NoCredits(Rejected):
    """The account has no credits left; the message fails as "no credits"."""


class BadResponse(ProviderError):
    """The provider answered something its manual does not describe (an HTTP 5xx error page,
    an unreadable balance or status): asking again may help."""

    retryable = True


# Why a message is left 'unconfirmed', in every such error.
UNCONFIRMED = "it may have gone out, so it is not sent again"


class Unconfirmed(ProviderError):
    """The provider answered a send with HTTP 2xx, but in words we cannot read: it may well
    have sent every message, so none is sent again (a retry could multiply the batch)."""

    retryable = False


class Provider(ABC):
    """Sends batches of SMS; optionally reports balance and delivery status."""

    name: str
    max_batch: int = 1
    # True when one request carries a different text per number (Massiva); False when one
    # request carries one text to many numbers (MasSMS).
    per_message_texts: bool = True
    # True when delivery is learnt by asking (`query_status`), not from a pushed report.
    polls_status: bool = False
    # True when the provider can hold a message until `OutboundSMS.send_at` by itself.
    schedules: bool = False

    @abstractmethod
    async def send(self, batch: Sequence[OutboundSMS]) -> list[SendResult]:
        """One result per message, in order; raises ProviderError when the request fails."""

    @abstractmethod
    async def balance(self) -> float:
        """Credits left at the provider."""

    async def query_status(self, provider_id: str) -> DeliveryStatus | None:
        """The message's current status, for providers without push reports (None: unknown)."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Releases connections."""
