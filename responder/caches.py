"""Caches bounded in bytes, not only in entries, and that the garbage collector does not walk:
for functions of short strings, where a call with a long string is computed and not kept.

A webhook's text may be 64 KiB (forms.MAX_BODY) and a phone field as long: a cache of 8,192
such texts keyed and valued by them would hold a gigabyte. Keeping only strings of at most
`max_chars` characters bounds each cache at about `maxsize` × (key + value), at most 4 bytes a
character (CPython's widest strings); tests/test_bounded_memory.py measures it.

functools.lru_cache keeps each entry in a linked-list node the collector tracks (and a list
for a key of several arguments): a full phone cache was 130,000 tracked objects, and a full
collection's time grows with them (issue 16). Here entries are two plain dicts; CPython leaves
a dict untracked while its keys and values are strings, numbers or None, so a cache of those
costs a collection nothing. Keys are atoms too: the argument itself, or several string
arguments joined into one string.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

R = TypeVar("R")

# Joins the arguments of a call into one key; a call whose strings hold it is not kept.
SEPARATOR = "\x00"
_MISSING: Any = object()


class CacheInfo(NamedTuple):
    maxsize: int
    currsize: int


def _fixed_arity(function: Callable[..., Any]) -> bool:
    """Whether every call passes the same number of arguments: then joined keys of different
    calls have the same number of separators, and a joined key never equals another's."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return all(p.kind in positional and p.default is p.empty for p in parameters)


class ShortCache(Generic[R]):
    """A function with a cache of its latest results, kept for short string arguments only.

    Approximately least-recently-used, in O(1): new entries go to `young`; when it holds half
    of `maxsize`, it becomes `old` (the previous old is dropped) and a new young begins; a hit
    in old moves the entry to young. The latest maxsize/2 results used are always kept, never
    more than maxsize. Exceptions are not kept.
    """

    def __init__(self, function: Callable[..., R], maxsize: int, max_chars: int) -> None:
        if maxsize < 2:
            raise ValueError(f"a ShortCache keeps at least 2 entries, not {maxsize}")
        self.function = function
        self.maxsize = maxsize
        self.max_chars = max_chars
        self._half = maxsize // 2
        self._join = _fixed_arity(function)
        self._young: dict[Any, R] = {}
        self._old: dict[Any, R] = {}
        functools.update_wrapper(self, function)

    def __call__(self, *args: Any) -> R:
        if len(args) == 1:
            key = args[0]
            if type(key) is str and len(key) > self.max_chars:
                return self.function(key)
        else:
            key = self._key(args)
            if key is None:
                return self.function(*args)
        young = self._young  # a local: another thread may start a new young meanwhile
        if key in young:
            return young[key]
        return self._miss(key, args)

    def _key(self, args: tuple[Any, ...]) -> Any:
        """Several arguments as one key: their strings joined when all are strings (an atom,
        as the single argument is), else the tuple (tracked until a collection untracks it);
        None when one is too long to keep."""
        strings = True
        for arg in args:
            if type(arg) is str:
                if len(arg) > self.max_chars:
                    return None
            else:
                strings = False
        if not (strings and self._join):
            return args
        key = SEPARATOR.join(args)
        return key if key.count(SEPARATOR) == len(args) - 1 else None

    def _miss(self, key: Any, args: tuple[Any, ...]) -> R:
        value: R = self._old.pop(key, _MISSING)  # one step: another thread may pop it too
        if value is _MISSING:
            value = self.function(*args)
        young = self._young
        if len(young) >= self._half:
            self._old = young
            self._young = young = {}
        young[key] = value
        return value

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self.maxsize, len(self._young) + len(self._old))

    def cache_clear(self) -> None:
        self._young = {}
        self._old = {}


def short_lru(maxsize: int, max_chars: int) -> Callable[[Callable[..., R]], ShortCache[R]]:
    """A cache of `maxsize` results, for calls whose string arguments have at most `max_chars`
    characters; a longer one is answered by the function itself, not kept."""

    def wrap(function: Callable[..., R]) -> ShortCache[R]:
        return ShortCache(function, maxsize, max_chars)

    return wrap
