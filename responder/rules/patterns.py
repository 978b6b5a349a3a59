"""Rules' regular expressions, searched with a time limit so that none can stall the service.

Python's `re` cannot be stopped once a search starts, and a pattern such as `(\\w+\\s?)+$`
takes seconds on a 28-character message. The `regex` module reads the same syntax and takes a
`timeout`; `re` still checks the pattern first, so errors read as they always did.
"""

from __future__ import annotations

import re
from typing import Protocol

import regex

from responder import budget
from responder.budget import Overrun, Owner
from responder.rules.conditions import BadValue

ENGINE_REFUSES = "bad regular expression: the matching engine cannot use it"


class Found(Protocol):
    def groupdict(self) -> dict[str, str | None]: ...


class BadPattern(BadValue):
    """The pattern cannot be used; the message says why."""


class Pattern:
    """A compiled rule pattern; `search` stays within the current message's allowance."""

    def __init__(self, source: str, owner: Owner) -> None:
        try:
            checked = re.compile(source)
        except re.error as err:
            # re's own words only as the detail; where it stopped is ours to say.
            where = "" if err.pos is None else f" at character {err.pos + 1}"
            position = 0 if err.pos is None else err.pos + 1
            raise BadPattern(
                f"bad regular expression{where}: {err.msg}",
                code="bad_regex",
                position=position,
                char=source[position - 1] if 0 < position <= len(source) else "",
            ) from None
        try:
            self._compiled = regex.compile(source)
        except regex.error:
            raise BadPattern(ENGINE_REFUSES, code="regex_engine") from None
        self.pattern = source
        self.owner = owner
        self.group_names = tuple(checked.groupindex)  # what `match` holds in its reply

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"

    def search(self, text: str) -> Found | None:
        """The first match in `text`; None also when the search ran out of time."""
        allowance = budget.current()
        if allowance is None:
            found: Found | None = self._compiled.search(text)
            return found
        try:
            found = self._compiled.search(text, timeout=allowance.limit())
        except TimeoutError:
            allowance.overran(Overrun("pattern", self.owner, "out of time"))
            return None
        return found
