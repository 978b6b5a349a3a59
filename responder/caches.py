"""Caches bounded in bytes, not only in entries, that the garbage collector does not walk: for
functions of short strings, where a call with a long string is computed and not kept.

A webhook's text may be 64 KiB (forms.MAX_BODY) and a phone field as long: a cache of 8,192
such texts keyed and valued by them would hold a gigabyte. Keeping only strings of at most
`max_chars` characters bounds each cache at about `maxsize` × (key + value), at most 4 bytes a
character (CPython's widest strings); tests/test_bounded_memory.py measures it.

A full collection follows every entry of a functools.lru_cache made after gc.freeze() (its
key, its result). Here the entries are two plain dicts, which CPython leaves untracked while
their keys and values are strings, numbers or None: the collector never sees them. So keys
are atoms too: the argument itself, or two string arguments joined into one string.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeVar, cast

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# Joins two string arguments into one key; a call whose strings hold it is not kept.
SEPARATOR = "\x00"
_MISSING: Any = object()


class CacheInfo(NamedTuple):
    maxsize: int
    currsize: int


class ShortCache(Protocol[R_co]):
    """A function with a cache of its latest results (short_lru)."""

    cache_info: Callable[[], CacheInfo]
    cache_clear: Callable[[], None]

    def __call__(self, *args: Any) -> R_co: ...


def _arity(function: Callable[..., Any]) -> int | None:
    """How many arguments every call passes, or None if calls may differ."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if all(p.kind in positional and p.default is p.empty for p in parameters):
        return len(parameters)
    return None


def short_lru(maxsize: int, max_chars: int) -> Callable[[Callable[..., R]], ShortCache[R]]:
    """A cache of about the `maxsize` latest results, for calls whose string arguments have at
    most `max_chars` characters; a longer one is answered by the function itself, not kept.

    Approximately least-recently-used, in O(1): new entries go to `young`; when it holds half
    of maxsize it becomes `old` (the previous old is dropped) and a new young begins; a hit in
    old moves the entry to young. The latest maxsize/2 results used are always kept, never
    more than maxsize. Exceptions are not kept. Called positionally only.
    """
    if maxsize < 2:
        raise ValueError(f"a cache keeps at least 2 entries, not {maxsize}")
    half = maxsize // 2

    def wrap(function: Callable[..., R]) -> ShortCache[R]:
        young: dict[Any, R] = {}
        old: dict[Any, R] = {}

        def miss(key: Any, args: tuple[Any, ...]) -> R:
            nonlocal young, old
            value: R = old.pop(key, _MISSING)  # one step: another thread may pop it too
            if value is _MISSING:
                value = function(*args)
            if len(young) >= half:
                old, young = young, {}
            young[key] = value
            return value

        # A local `kept` in each: another thread may start a new young meanwhile.
        def one(arg: Any) -> R:
            if type(arg) is str and len(arg) > max_chars:
                return function(arg)
            kept = young
            if arg in kept:
                return kept[arg]
            return miss(arg, (arg,))

        def two(first: Any, second: Any) -> R:
            if (
                type(first) is str
                and type(second) is str
                and len(first) <= max_chars
                and len(second) <= max_chars
            ):
                key = f"{first}{SEPARATOR}{second}"
                if key.count(SEPARATOR) == 1:  # else two calls could share it: not kept
                    kept = young
                    if key in kept:
                        return kept[key]
                    return miss(key, (first, second))
            return function(first, second)

        def any_arguments(*args: Any) -> R:
            # Other arguments than strings, or calls of different lengths: the tuple is the
            # key, which a collection untracks when it holds atoms only.
            for arg in args:
                if type(arg) is str and len(arg) > max_chars:
                    return function(*args)
            kept = young
            if args in kept:
                return kept[args]
            return miss(args, args)

        def cache_info() -> CacheInfo:
            return CacheInfo(maxsize, len(young) + len(old))

        def cache_clear() -> None:
            nonlocal young, old
            young, old = {}, {}

        arity = _arity(function)
        cached: Callable[..., R] = one if arity == 1 else two if arity == 2 else any_arguments
        functools.update_wrapper(cached, function)
        cache = cast(ShortCache[R], cached)
        cache.cache_info = cache_info
        cache.cache_clear = cache_clear
        return cache

    return wrap
