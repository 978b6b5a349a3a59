"""Caches bounded in bytes, not only in entries: functools.lru_cache for functions of short
strings, where a call with a long string is computed and not kept.

A webhook's text may be 64 KiB (forms.MAX_BODY) and a phone field as long: an lru_cache of 8,192
such texts keyed and valued by them would hold a gigabyte. Keeping only strings of at most
`max_chars` characters bounds each cache at about `maxsize` × (key + value), at most 4 bytes a
character (CPython's widest strings); tests/test_bounded_memory.py measures it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")


def short_lru(maxsize: int, max_chars: int) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """functools.lru_cache(maxsize), for calls whose string arguments have at most `max_chars`
    characters; a longer one is answered by the function itself, not kept."""

    def wrap(function: Callable[..., R]) -> Callable[..., R]:
        cached = functools.lru_cache(maxsize=maxsize)(function)

        @functools.wraps(function)
        def call(*args: Any) -> R:
            for arg in args:
                if type(arg) is str and len(arg) > max_chars:
                    return function(*args)
            return cached(*args)

        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        call.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return call

    return wrap
