"""What the provider tables share: an expected failure, and the check of a pure call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from responder.providers.base import ProviderError


@dataclass(frozen=True)
class Raises:
    """An expected failure: the exact error class, its `retryable` and its `code`."""

    error: type[ProviderError]
    retryable: bool
    code: str | None


def check(expected: Raises | object, call: Callable[[], object], provider: str) -> None:
    """Asserts that `call()` returns `expected`, or raises exactly what `expected` describes,
    with a message naming the provider."""
    if isinstance(expected, Raises):
        with pytest.raises(ProviderError) as caught:
            call()
        err = caught.value
        assert type(err) is expected.error, err
        assert (err.retryable, err.code) == (expected.retryable, expected.code), err
        assert str(err).startswith(f"{provider}: ")
    else:
        assert call() == expected
