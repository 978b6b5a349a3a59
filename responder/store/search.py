"""What the inbox search compares, and how a typed query becomes a full-text query.

A message's text is folded as the keyword matcher folds it (accents, case and punctuation;
`responder.text.normalize`) and kept in `messages.folded`; a full-text index over that column
(SQLite FTS5 `messages_fts`, PostgreSQL a GIN index on `to_tsvector('simple', folded)`) finds
the messages holding every word of a query. Contact fields are folded alike into
`contacts.folded`. Queries are built here from the words alone, so nothing a person types can
be read as the index's own syntax (quotes, `*`, `NEAR`, `-`, parentheses)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from responder.caches import short_lru
from responder.store.models import Conversation
from responder.text import normalize

# A query's words: runs of letters and digits of its folded form, as the indexes split text
# (FTS5's unicode61 tokenizer, PostgreSQL's parser). Everything else separates words.
_WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 8  # more words than this are ignored: each one narrows the search anyway
MAX_WORD = 40  # characters kept of a word (it stays a prefix of what it was)
PREFIX_FROM = 3  # words this long or longer also find longer words ("promo" → "promoción")
# A search gathers matching conversations up to this many for its counts, then stops: the
# counts say "at least" (the inbox shows "500+"), and a common word costs no more than that.
COUNT_LIMIT = 500
# Digits typed as part of a number are looked for from this many on: the shortest suffix of a
# number that SQLite's `contact_number_parts` holds (migration 0025), and a trigram, the
# shortest string PostgreSQL's index of the numbers finds (migration 0016).
PART_FROM = 3


def search_words(text: str) -> list[str]:
    """The folded words a search for `text` looks for, in order, without repeats."""
    words = (w[:MAX_WORD] for w in _WORD.findall(normalize(text[:2000])))
    return list(dict.fromkeys(words))[:MAX_WORDS]


def holds(folded: str, words: list[str]) -> bool:
    """Whether a folded text holds every word as the index finds them: a whole word, or (a
    word of PREFIX_FROM letters or more) the beginning of one."""
    found = set(_WORD.findall(folded))
    return all(
        w in found or (len(w) >= PREFIX_FROM and any(t.startswith(w) for t in found)) for w in words
    )


def fts5_query(words: list[str], prefixes: bool = True) -> str:
    """An FTS5 MATCH expression finding messages with every word (as a prefix when long
    enough, unless `prefixes` is False). Each word is a quoted string of letters and digits:
    never an operator."""
    return " AND ".join(
        f'"{w}"' + ("*" if prefixes and len(w) >= PREFIX_FROM else "") for w in words
    )


def tsquery(words: list[str]) -> str:
    """The same for PostgreSQL's `to_tsquery('simple', ...)`: quoted lexemes, `:*` a prefix."""
    return " & ".join(f"'{w}'" + (":*" if len(w) >= PREFIX_FROM else "") for w in words)


def like_pattern(text: str) -> str:
    """`text` anywhere, for LIKE with backslash as the escape character."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def number_fragments(fragments: Sequence[str]) -> list[str] | None:
    """The digits a search by part of a number looks for: `fragments` less any that holds
    another (the shorter finds every number the longer does: `0412` nothing `412` does not).
    None: one is shorter than PART_FROM, which neither store's index finds (`0012` is also
    looked for as `12`), and which most numbers hold anyway."""
    if any(len(f) < PART_FROM for f in fragments):
        return None
    return sorted({f for f in fragments if not any(g != f and g in f for g in fragments)})


def part_ranges(fragments: Sequence[str]) -> list[tuple[str, str]] | None:
    """SQLite: the ranges of `contact_number_parts.part` that hold the numbers containing any
    of `fragments` (number_fragments): a number holds digits when one of its suffixes begins
    with them, so each is the range from the digits to the next string of their length
    (bytewise, as SQLite compares `part`)."""
    kept = number_fragments(fragments)
    if kept is None:
        return None
    return [(f, f[:-1] + chr(ord(f[-1]) + 1)) for f in kept]


def _values(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [part for item in value.values() for part in _values(item)]
    if isinstance(value, list | tuple):
        return [part for item in value for part in _values(item)]
    return [] if value is None else [str(value)]


def fold_fields(fields: Mapping[str, Any]) -> str:
    """A contact's field values as a search compares them: folded like message texts, one
    space between values (the names of the fields are not searched)."""
    return normalize(" ".join(_values(fields)))


@short_lru(maxsize=4096, max_chars=320)  # the fields of most contacts are short, or `{}`
def fold_fields_json(fields: str) -> str:
    """fold_fields of fields stored as JSON (SQLite registers it as `fold_fields`); most
    contacts have none, or the same few: the second time is a lookup."""
    try:
        loaded = json.loads(fields, parse_constant=lambda _: None)
    except ValueError:
        return normalize(fields)
    return fold_fields(loaded) if isinstance(loaded, Mapping) else normalize(fields)


@dataclass(frozen=True)
class SearchQuery:
    """What a person typed, and what it may mean: words of messages or contact fields, a whole
    phone number (`phones`: its contact, by primary key, comes first), or digits a number
    contains (`fragments`)."""

    text: str
    phones: tuple[str, ...] = ()
    fragments: tuple[str, ...] = ()

    @functools.cached_property
    def words(self) -> list[str]:
        return search_words(self.text)


@dataclass(frozen=True)
class Hit:
    """A conversation a search found: when (the newest matching message's moment, or the
    conversation's last message for a match on its fields or number, as the engine stores
    moments) and which message matched, if one did."""

    phone: str
    at: Any
    message_id: int | None = None


@dataclass(frozen=True)
class SearchPage:
    """Conversations a search found, in order, and each one's newest matching message id."""

    conversations: list[Conversation]
    matched: dict[str, int]


@dataclass(frozen=True)
class SearchCounts:
    """COUNT_KEYS over what a search found; `complete` False: it found more than COUNT_LIMIT
    conversations and stopped, so each count is a lower bound."""

    counts: dict[str, int]
    complete: bool

    @classmethod
    def of(cls, found: Sequence[Conversation], me: str | None) -> SearchCounts:
        """The counts of a search whose every match is in `found` (it returned fewer than it
        was asked for, with no filter): read from the records, where search_counts would
        search again (the same index reads a second time, for a rare word most of a page)."""
        return cls(
            {
                "all": len(found),
                "human": sum(c.mode == "human" for c in found),
                "needs_attention": sum(c.needs_attention for c in found),
                "opted_out": sum(c.opted_out for c in found),
                "unread": sum(c.unread > 0 for c in found),
                "unassigned": sum(c.assigned_to is None for c in found),
                "resolved": sum(c.status == "resolved" for c in found),
                "mine": sum(me is not None and c.assigned_to == me for c in found),
            },
            complete=True,
        )


def ranked(exact: list[str], *found: list[Hit]) -> list[Hit]:
    """One list from the numbers typed in full (first, in order) and the other hits, newest
    first (a conversation found twice keeps its newest moment and its matching message)."""
    best: dict[str, Hit] = {}
    for hit in (h for hits in found for h in hits):
        kept = best.get(hit.phone)
        if kept is None:
            best[hit.phone] = hit
        else:
            newest = hit if hit.at > kept.at else kept
            message = kept.message_id if kept.message_id is not None else hit.message_id
            best[hit.phone] = Hit(hit.phone, newest.at, message)
    rest = sorted(
        (h for h in best.values() if h.phone not in exact),
        key=lambda h: (_neg(h.at), -(h.message_id or 0), h.phone),
    )
    return [best.get(p, Hit(p, None)) for p in exact] + rest


class _Reversed:
    """Sorts a moment (text or datetime) newest first."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return bool(self.value > other.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]


def _neg(value: Any) -> _Reversed:
    return _Reversed(value)
