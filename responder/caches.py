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
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class ShortCache(Generic[R]):
    """A function with a functools.lru_cache kept for short string arguments only."""

    def __init__(self, function: Callable[..., R], maxsize: int, max_chars: int) -> None:
        self.function = function
        self.cached = functools.lru_cache(maxsize=maxsize)(function)
        self.max_chars = max_chars
        self.cache_info = self.cached.cache_info
        self.cache_clear = self.cached.cache_clear
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any) -> R:
        for arg in args:
            if type(arg) is str and len(arg) > self.max_chars:
                return self.function(*args)
        return self.cached(*args)


def short_lru(maxsize: int, max_chars: int) -> Callable[[Callable[..., R]], ShortCache[R]]:
    """functools.lru_cache(maxsize), for calls whose string arguments have at most `max_chars`
    characters; a longer one is answered by the function itself, not kept."""

    def wrap(function: Callable[..., R]) -> ShortCache[R]:
        return ShortCache(function, maxsize, max_chars)

    return wrap
