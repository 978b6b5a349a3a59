"""Finds patterns that can backtrack catastrophically, for `responder check` to warn about.

A backtracking engine slows down exponentially when a repeated group can match the same text
in several ways: `(\\w+\\s?)+` can split `aaaa` into words in 8 ways, and tries them all
before it gives up on `aaaa#`. The check reads the pattern's parse tree (`re`'s own parser)
and flags a repeat whose body holds a part of variable length that nothing else in the body
keeps apart from the rest (`(a+)+`, `(\\w+\\s?)+`, `(.*a){20}`), or alternatives that can
match the same text (`(\\w|[a-z]\\d)+`). It is a heuristic: it may miss a slow pattern (the
time limit still stops it) and may flag a harmless one.
"""

from __future__ import annotations

import re
from functools import cache
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

Item = tuple[Any, Any]  # (opcode, argument) of re's parser

# Characters the check reasons about: what normalised messages are made of, and a few more.
ALPHABET = frozenset(chr(c) for c in range(128)) | frozenset("ñáéíóúü¿¡€中😀")
_CATEGORIES = {
    sre.CATEGORY_DIGIT: re.compile(r"\d"),
    sre.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    sre.CATEGORY_SPACE: re.compile(r"\s"),
    sre.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    sre.CATEGORY_WORD: re.compile(r"\w"),
    sre.CATEGORY_NOT_WORD: re.compile(r"\W"),
}
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT)  # possessive repeats never give back
_NEVER_GIVE_BACK = (sre.POSSESSIVE_REPEAT, sre.ATOMIC_GROUP)
_SINGLE = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN)

NESTED = (
    "can backtrack catastrophically: a repeated group holds a part that can match the same "
    "text in several ways (like (\\w+\\s?)+ or (a+)+), so a long message that almost matches "
    "takes exponential time; separate the repeats by something they cannot match, "
    "e.g. (\\w+\\s)+"
)
OVERLAP = (
    "can backtrack catastrophically: alternatives inside a repeat can match the same text "
    "(like (a|aa)+), so a long message that almost matches takes exponential time"
)


def backtracking_risk(source: str) -> str | None:
    """Why `source` can backtrack catastrophically, or None when no such shape is seen."""
    try:
        tree = _parser.parse(source)
    except re.error:
        return None
    return _scan(tree.state, list(tree.data))


def _width(state: Any, items: list[Item]) -> tuple[int, int]:
    lo, hi = _parser.SubPattern(state, items).getwidth()
    return int(lo), int(hi)


def _scan(state: Any, items: list[Item]) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            _, hi, body = av
            if hi > 1 and (why := _ambiguous(state, list(body))):
                return why
        for inner in _children(op, av):
            if why := _scan(state, inner):
                return why
    return None


def _children(op: Any, av: Any) -> list[list[Item]]:
    if op in (*_REPEATS, sre.POSSESSIVE_REPEAT):
        return [list(av[2])]
    if op is sre.SUBPATTERN:
        return [list(av[3])]
    if op is sre.BRANCH:
        return [list(alt) for alt in av[1]]
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        return [list(av[1])]
    if op is sre.ATOMIC_GROUP:
        return [list(av)]
    if op is sre.GROUPREF_EXISTS:
        return [list(part) for part in av[1:] if part is not None]
    return []


def _unwrapped(items: list[Item]) -> list[Item]:
    """A body that is one plain group is that group's inside."""
    while len(items) == 1 and items[0][0] is sre.SUBPATTERN:
        items = list(items[0][1][3])
    return items


def _ambiguous(state: Any, body: list[Item]) -> str | None:
    """Whether one pass of a repeated body can match the same text in several ways."""
    body = _unwrapped(body)
    if len(body) == 1 and body[0][0] is sre.BRANCH:
        alternatives = [_unwrapped(list(alt)) for alt in body[0][1][1]]
        if any(_nested(state, alt) for alt in alternatives):
            return NESTED
        # The next pass starts with one of these too: `a` then `b` may spell `ab`.
        starts = frozenset().union(*(_first(alt) for alt in alternatives))
        return OVERLAP if _overlapping(alternatives, starts) else None
    if _nested(state, body):
        return NESTED
    for op, av in body:
        # Within a longer body only the same text twice (`(a|a)`, parsed as `a(?:|)`) counts.
        if op is sre.BRANCH and _overlapping([_unwrapped(list(alt)) for alt in av[1]], None):
            return OVERLAP
    return None


def _nested(state: Any, body: list[Item]) -> bool:
    """A part of variable length that every other consuming part either may skip or may
    match the characters of: the body's passes can then share out the text in many ways."""
    parts = [item for item in body if _width(state, [item])[1] > 0]
    for i, part in enumerate(parts):
        lo, hi = _width(state, [part])
        if lo == hi or part[0] in _NEVER_GIVE_BACK:
            continue
        chars = _chars(part)
        others = parts[:i] + parts[i + 1 :]
        if all(_width(state, [o])[0] == 0 or chars & _chars(o) for o in others):
            return True
    return False


def _overlapping(alternatives: list[list[Item]], starts: frozenset[str] | None) -> bool:
    """Whether two alternatives, or one and what may follow it, can match the same text."""
    return any(
        _collide(first, second, starts)
        for i, first in enumerate(alternatives)
        for second in alternatives[i + 1 :]
    )


def _collide(first: list[Item], second: list[Item], starts: frozenset[str] | None) -> bool:
    """Whether two alternatives of a repeated choice can match the same text (a heuristic
    over their starts); `starts`: what may follow an alternative, None: only the same."""
    a, a_whole = _fixed_start(first)
    b, b_whole = _fixed_start(second)
    common = min(len(a), len(b))
    if any(not (x & y) for x, y in zip(a[:common], b[:common])):
        return False
    if len(a) > len(b):
        a, a_whole, b, b_whole, first, second = b, b_whole, a, a_whole, second, first
    if a_whole and len(a) == len(b) and b_whole:
        return True
    if starts is None:
        return False
    if a_whole:
        # `a` is a prefix of `b`: `a` and another pass may spell `b` when `b` goes on the
        # way an alternative starts.
        rest = b[len(a) :] if len(b) > len(a) else [_first(second[len(a) :])]
        return bool(rest and rest[0] & starts)
    return bool(_first(first[len(a) :]) & _first(second[len(a) :]))


def _fixed_start(items: list[Item]) -> tuple[list[frozenset[str]], bool]:
    """The character sets of the single characters an alternative starts with, and whether
    that is all of it."""
    sets: list[frozenset[str]] = []
    for op, av in items:
        if op not in _SINGLE:
            return sets, False
        sets.append(_chars((op, av)))
    return sets, True


def _first(items: list[Item]) -> frozenset[str]:
    """The characters a sequence can start with."""
    found: frozenset[str] = frozenset()
    for op, av in items:
        if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue
        if op in _SINGLE:
            return found | _chars((op, av))
        if op in (*_REPEATS, sre.POSSESSIVE_REPEAT):
            found |= _first(list(av[2]))
            if av[0] > 0:
                return found
            continue
        if op is sre.BRANCH:
            return found | frozenset().union(*(_first(list(alt)) for alt in av[1]))
        inner = _children(op, av)
        if inner:
            return found | _first(inner[0])
        return ALPHABET  # a back-reference: anything
    return found


def _chars(item: Item) -> frozenset[str]:
    """Every character an item can consume."""
    op, av = item
    if op is sre.LITERAL:
        return frozenset({chr(av)})
    if op is sre.NOT_LITERAL:
        return ALPHABET - {chr(av)}
    if op is sre.ANY:
        return ALPHABET - {"\n"}
    if op is sre.IN:
        return _set(tuple(av))
    if op in (sre.GROUPREF, sre.GROUPREF_EXISTS):
        return ALPHABET
    found: frozenset[str] = frozenset()
    for inner in _children(op, av):
        for part in inner:
            found |= _chars(part)
    return found


@cache
def _set(members: tuple[Item, ...]) -> frozenset[str]:
    found: set[str] = set()
    negate = False
    for op, av in members:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            found.add(chr(av))
        elif op is sre.RANGE:
            found |= {c for c in ALPHABET if av[0] <= ord(c) <= av[1]} | {chr(av[0])}
        elif op is sre.CATEGORY and av in _CATEGORIES:
            found |= {c for c in ALPHABET if _CATEGORIES[av].match(c)}
        else:
            return ALPHABET
    return ALPHABET - found if negate else frozenset(found)
