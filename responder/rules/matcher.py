"""Finds the first rule, in file order, that matches a normalised message, via a token index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein

from responder.caches import short_lru
from responder.rules.conditions import Facts
from responder.rules.model import Rule

# Keywords this short never fuzzy-match: `si` must not match `no`.
FUZZY_MIN_LENGTH = 4
# Words of messages whose fuzzy neighbours a Matcher remembers. Every webhook's words are
# looked up (a fifth of a webhook's CPU when computed each time: a word's deletion
# neighbourhood is some hundred strings); customers' words repeat, and only words of a
# length that can be near a keyword are kept, so the cache holds at most about 2 MiB.
NEAR_CACHE_WORDS = 16384


@dataclass(frozen=True)
class Match:
    rule: Rule
    how: str  # a human explanation: mode, keyword, distance, condition
    groups: dict[str, str] = field(default_factory=dict)


def _distance(a: str, b: str, limit: int) -> int | None:
    found: int = Levenshtein.distance(a, b, score_cutoff=limit)
    return found if found <= limit else None


def _keyword_hit(rule: Rule, keyword: str, text: str, tokens: Sequence[str]) -> str | None:
    """How `keyword` matches the message under the rule's mode, or None."""
    fuzzy = rule.fuzzy if len(keyword) >= FUZZY_MIN_LENGTH else 0
    if rule.mode == "contains":
        return f"contains '{keyword}'" if keyword in text else None
    if rule.mode == "exact":
        candidates = [text]
    else:
        width = keyword.count(" ") + 1
        if rule.mode == "first":
            candidates = [" ".join(tokens[:width])]
        else:  # word
            if f" {keyword} " in f" {text} ":
                return f"word '{keyword}'"
            if not fuzzy:
                return None
            candidates = [" ".join(tokens[i : i + width]) for i in range(len(tokens) - width + 1)]
    for candidate in candidates:
        if candidate == keyword:
            return f"{rule.mode} '{keyword}'"
        if fuzzy and (distance := _distance(candidate, keyword, fuzzy)) is not None:
            return f"{rule.mode} '{keyword}' ~ '{candidate}' (fuzzy distance {distance})"
    return None


def rule_match(rule: Rule, text: str, tokens: Sequence[str], facts: Facts) -> Match | None:
    """Checks one rule fully: keywords or pattern, then its condition."""
    how = "matches every message"
    groups: dict[str, str] = {}
    if rule.fallback:
        how = "fallback"
    if rule.keywords:
        for keyword in rule.keywords:
            if hit := _keyword_hit(rule, keyword, text, tokens):
                how = hit
                break
        else:
            return None
    elif rule.pattern is not None:
        found = rule.pattern.search(text)
        if not found:
            return None
        how = f"pattern '{rule.pattern.pattern}'"
        groups = {k: v for k, v in found.groupdict().items() if v is not None}
    if rule.when is not None:
        if not rule.when.holds(facts):
            return None
        how += f", when {rule.when.describe()}"
    return Match(rule, how, groups)


def _deletions(word: str, radius: int) -> set[str]:
    """`word` and every string left by deleting up to `radius` of its characters."""
    found = {word}
    edge = {word}
    for _ in range(radius):
        edge = {w[:i] + w[i + 1 :] for w in edge for i in range(len(w))}
        found |= edge
    return found


class Matcher:
    """Rules compiled for matching: token → candidate rules, built once per load.

    Typo-tolerant keywords are found through their deletion neighbourhoods (two words within
    N edits share a string reached by at most N deletions from each), so the work per message
    depends on its length, not on the number of rules.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(r for r in rules if not r.fallback)
        self.fallbacks = tuple(r for r in rules if r.fallback)
        self._by_token: dict[str, list[int]] = {}
        self._fuzzy_by_token: dict[str, list[int]] = {}
        self._radius: dict[str, int] = {}  # fuzzy token → the most typos a rule allows it
        self._always: list[int] = []  # patterns, `contains` and condition-only rules
        for i, rule in enumerate(self.rules):
            if not rule.keywords or rule.mode == "contains":
                self._always.append(i)
                continue
            for keyword in rule.keywords:
                first = keyword.split(" ", 1)[0]
                self._by_token.setdefault(first, []).append(i)
                if rule.fuzzy and len(keyword) >= FUZZY_MIN_LENGTH:
                    self._fuzzy_by_token.setdefault(first, []).append(i)
                    self._radius[first] = max(rule.fuzzy, self._radius.get(first, 0))
        self._near: dict[str, list[str]] = {}  # deletion variant → fuzzy tokens
        for token, radius in self._radius.items():
            for variant in _deletions(token, radius):
                self._near.setdefault(variant, []).append(token)
        self._max_fuzzy = max(self._radius.values(), default=0)
        # A word can be within N edits of a keyword only if their lengths differ by N at most.
        self._shortest = min((len(t) - r for t, r in self._radius.items()), default=0)
        self._longest = max((len(t) + r for t, r in self._radius.items()), default=-1)
        # The cache keeps a word's answer as its position in `_answers`: words and ints are
        # atoms, so the collector never walks it (a new tuple per word would make it tracked).
        # The distinct answers are sets of keywords near one word: a few, fixed by the rules.
        self._answers: list[tuple[str, ...]] = [()]
        self._answer_at: dict[tuple[str, ...], int] = {(): 0}
        self._near_cached = short_lru(NEAR_CACHE_WORDS, self._longest)(self._near_answer)

    def _near_tokens(self, token: str) -> tuple[str, ...]:
        """Indexed fuzzy tokens within their own typo allowance of `token`."""
        if not self._shortest <= len(token) <= self._longest:
            return ()
        return self._answers[self._near_cached(token)]

    def _near_answer(self, token: str) -> int:
        found: dict[str, None] = {}
        for variant in _deletions(token, self._max_fuzzy):
            for word in self._near.get(variant, ()):
                if word not in found and _distance(token, word, self._radius[word]) is not None:
                    found[word] = None
        answer = tuple(found)
        at = self._answer_at.get(answer)
        if at is None:  # safe in threads: each answer's first position, whoever appended it
            self._answers.append(answer)
            at = self._answer_at[answer] = self._answers.index(answer)
        return at

    def candidates(self, tokens: Sequence[str]) -> list[int]:
        """Positions of the rules that could match, in file order."""
        found = set(self._always)
        for token in set(tokens):
            found.update(self._by_token.get(token, ()))
            if self._near:
                for word in self._near_tokens(token):
                    found.update(self._fuzzy_by_token[word])
        return sorted(found)

    def match(self, text: str, facts: Facts) -> Match | None:
        """The first rule in file order that matches; fallbacks only when no other rule does."""
        tokens = text.split()
        for position in self.candidates(tokens):
            if found := rule_match(self.rules[position], text, tokens, facts):
                return found
        for rule in self.fallbacks:
            if found := rule_match(rule, text, tokens, facts):
                return found
        return None
