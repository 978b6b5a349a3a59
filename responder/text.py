"""Text helpers: keyword-matching normalization and GSM-7 aware SMS encoding."""

from __future__ import annotations

import math
import re
import unicodedata

import gsm0338

from responder.caches import short_lru

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENDED",
    "UnsendableText",
    "find_folded",
    "find_words",
    "is_gsm7",
    "normalize",
    "segments",
    "sendable",
    "shorten",
    "smart_encode",
    "smart_encode_table",
    "sms_cost",
    "split_text",
]

# --- normalize ---------------------------------------------------------------

_KEYWORD_PUNCTUATION = "¿¡?!.,;:"


class _FoldTable(dict[int, str | int | None]):
    """normalize's table for str.translate: keyword punctuation becomes a space and every code
    point with a non-zero canonical combining class (accents, tildes, cedillas...) is dropped.
    A code point is looked up the first time it is seen, not all of them at import (that scan
    was 12 ms of every start). Variation selectors and emoji modifiers have class 0 and stay."""

    def __missing__(self, cp: int) -> int | None:
        kept = None if unicodedata.combining(chr(cp)) else cp
        self[cp] = kept
        return kept


_NORMALIZE_TABLE = _FoldTable({ord(char): " " for char in _KEYWORD_PUNCTUATION})


def normalize(text: str) -> str:
    """Return the accent-, case- and punctuation-insensitive form used for keyword matching.

    Idempotent: ``normalize(normalize(x)) == normalize(x)``.
    """
    if text.isascii():
        # NFKD and casefold are no-ops on ASCII beyond lowercasing; skip them on the hot path.
        return " ".join(text.lower().translate(_NORMALIZE_TABLE).split())
    # NFKD is NFKC followed by NFD in one pass, so marks end up as separate code points.
    folded = unicodedata.normalize("NFKD", text).casefold()
    return " ".join(folded.translate(_NORMALIZE_TABLE).split())


# A message's text is normalised to be matched, then again to be stored for search (`folded`),
# and the same auto-replies are stored again and again: the second time is a lookup.
# Only texts of up to two SMS are kept (responder.caches): a cache bounded in bytes.
normalize_cached = short_lru(maxsize=4096, max_chars=320)(normalize)


def _folded_with_origin(text: str) -> tuple[str, list[int]]:
    """`normalize(text)`, and for each of its characters the index of the original character
    it came from (whitespace runs, and the punctuation that became spaces, collapse to one
    space, as normalize does)."""
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        for folded in unicodedata.normalize("NFKD", char).casefold().translate(_NORMALIZE_TABLE):
            if folded.isspace():
                if not chars or chars[-1] == " ":
                    continue
                folded = " "
            chars.append(folded)
            origin.append(index)
    if chars and chars[-1] == " ":
        chars.pop()
        origin.pop()
    return "".join(chars), origin


def find_folded(text: str, query: str) -> tuple[int, int] | None:
    """Where `query` occurs in `text` once both are normalized, as a `text[start:end]` span of
    the original characters; None when it does not occur."""
    wanted = normalize(query)
    if not wanted:
        return None
    folded, origin = _folded_with_origin(text)
    at = folded.find(wanted)
    if at < 0:
        return None
    return origin[at], origin[at + len(wanted) - 1] + 1


def find_words(text: str, words: list[str], prefix_from: int = 3) -> list[tuple[int, int]]:
    """Where the folded `words` (the inbox search's) begin words of `text`, as sorted
    `text[start:end]` spans of the original characters, each a whole word: a word of
    `prefix_from` characters or more also finds longer words ("promo": "Promoción"), a
    shorter one only itself."""
    folded, origin = _folded_with_origin(text)
    spans: list[tuple[int, int]] = []
    for word in words:
        # A long word marks the whole word it begins; a short one, no letter or digit after.
        rest = r"[^\W_]*" if len(word) >= prefix_from else r"(?![^\W_])"
        pattern = rf"(?<![^\W_]){re.escape(word)}{rest}"
        for found in re.finditer(pattern, folded):
            spans.append((origin[found.start()], origin[found.end() - 1] + 1))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# --- GSM-7 alphabet ------------------------------------------------------------

_GSM7_ESCAPE = 0x1B


def _gsm7_alphabet() -> tuple[frozenset[str], frozenset[str]]:
    """Read the 3GPP 23.038 default alphabet and its extension table from gsm0338."""
    codec = gsm0338.Codec()
    basic: set[str] = set()
    extended: set[str] = set()
    for septet in range(0x80):
        if septet != _GSM7_ESCAPE:
            basic.add(codec.decode(bytes([septet]))[0])
        try:
            extended.add(codec.decode(bytes([_GSM7_ESCAPE, septet]))[0])
        except UnicodeDecodeError:
            continue
    return frozenset(basic), frozenset(extended)


# The default alphabet costs 1 septet per character, the extension table 2 (escape + code).
GSM7_BASIC, GSM7_EXTENDED = _gsm7_alphabet()

_GSM7_ALL = GSM7_BASIC | GSM7_EXTENDED


def is_gsm7(text: str) -> bool:
    """Return whether the whole text can be sent in the GSM-7 encoding."""
    return _GSM7_ALL.issuperset(text)


# --- smart_encode ----------------------------------------------------------------

# Typography that Unicode decomposition does not map to something in GSM-7.
_TYPOGRAPHY: dict[str, str] = {
    **dict.fromkeys("“”„‟«»″〝〞", '"'),
    **dict.fromkeys("‘’‚‛‹›′´`", "'"),
    **dict.fromkeys("‐‑‒–—―−⁃", "-"),
    **dict.fromkeys("•‣◦∙⦁", "-"),
    "·": ".",
    "…": "...",
    "×": "x",
    "÷": "/",
    "⁄": "/",
    "∕": "/",
    "¦": "|",
    "\t": " ",
    # Spaces outside the scanned blocks below; the others are found by category.
    "\u1680": " ",
    "\u3000": " ",
    "\x85": "\n",
    "\u2028": "\n",
    "\u2029": "\n",
    "đ": "d",
    "Đ": "D",
    "ð": "d",
    "Ð": "D",
    "ł": "l",
    "Ł": "L",
    "ı": "i",
    "œ": "oe",
    "Œ": "OE",
}

# Invisible formatting (soft hyphen, zero-width space, word joiner, BOM) that would
# otherwise force UCS-2. ZWJ and variation selectors are kept: emoji sequences need them.
_INVISIBLE = "\u00ad\u200b\u2060\ufeff"

# Blocks where look-alikes of GSM-7 characters live: Latin and its extensions,
# punctuation, super/subscripts, ligatures, fullwidth forms, "fancy font" math letters.
_SMART_ENCODE_RANGES = (
    range(0x0000, 0x0250),
    range(0x1E00, 0x1F00),
    range(0x2000, 0x20A0),
    range(0xFB00, 0xFB07),
    range(0xFF00, 0xFFF0),
    range(0x1D400, 0x1D800),
)


def _gsm7_equivalent(char: str) -> str | None:
    """Return the closest GSM-7 spelling of a character, or None if there is none."""
    if char in _TYPOGRAPHY:
        return _TYPOGRAPHY[char]
    category = unicodedata.category(char)
    if category == "Zs":
        return " "
    if category[0] in "LN":
        # Letters and digits: drop accents and compatibility styling (á→a, ﬁ→fi, ²→2).
        decomposed = unicodedata.normalize("NFKD", char)
        candidate = "".join(part for part in decomposed if not unicodedata.combining(part))
    else:
        # Symbols keep their marks, so spacing accents like ¨ do not turn into spaces.
        candidate = unicodedata.normalize("NFKC", char)
    candidate = "".join(_TYPOGRAPHY.get(part, part) for part in candidate)
    if candidate and candidate != char and is_gsm7(candidate):
        return candidate
    return None


def _smart_encode_table() -> dict[int, str | None]:
    table: dict[int, str | None] = dict.fromkeys(map(ord, _INVISIBLE))
    # Combining accents left over after NFC composition (e.g. "q̃") are dropped like others.
    table.update(dict.fromkeys(range(0x0300, 0x0370)))
    candidates = {chr(cp) for block in _SMART_ENCODE_RANGES for cp in block} | set(_TYPOGRAPHY)
    for char in candidates:
        if char in _GSM7_ALL:
            continue
        equivalent = _gsm7_equivalent(char)
        if equivalent is not None:
            table[ord(char)] = equivalent
    return table


_SMART_ENCODE_TABLE = _smart_encode_table()


def smart_encode(text: str) -> str:
    """Replace characters outside GSM-7 with their closest GSM-7 equivalents.

    Characters without an equivalent (emoji, CJK...) are kept, making the message UCS-2.
    """
    if is_gsm7(text):
        return text
    # NFC first so that decomposed input ("e" + U+0301) becomes a GSM-7 letter ("é").
    return unicodedata.normalize("NFC", text).translate(_SMART_ENCODE_TABLE)


def smart_encode_table() -> dict[str, str]:
    """What smart_encode replaces each character with ("" drops it), for counters that run
    where Python does not (the admin's reply box)."""
    return {chr(cp): value or "" for cp, value in _SMART_ENCODE_TABLE.items()}


# --- segment counting and splitting -------------------------------------------------

_GSM7_SINGLE_SEGMENT = 160
_GSM7_CONCATENATED_SEGMENT = 153
_UCS2_SINGLE_SEGMENT = 70
_UCS2_CONCATENATED_SEGMENT = 67


# The reply limit counts the segments of a number's recent auto-replies on every message it
# sends: the same few texts, again and again.
@short_lru(maxsize=4096, max_chars=480)
def segments(text: str) -> int:
    """Return how many SMS the text costs, in GSM-7 if possible, otherwise in UCS-2."""
    if is_gsm7(text):
        units = len(text) + sum(text.count(char) for char in GSM7_EXTENDED)
        single, concatenated = _GSM7_SINGLE_SEGMENT, _GSM7_CONCATENATED_SEGMENT
    else:
        # UCS-2 on the wire is really UTF-16: characters outside the BMP take two units.
        units = len(text.encode("utf-16-le")) // 2
        single, concatenated = _UCS2_SINGLE_SEGMENT, _UCS2_CONCATENATED_SEGMENT
    if units <= single:
        return 1
    return math.ceil(units / concatenated)


def split_text(text: str, limit: int = 160) -> list[str]:
    """Split text at whitespace into parts of at most ``limit`` characters.

    Whitespace at each cut is removed; a word longer than ``limit`` is cut inside.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if len(text) <= limit:
        return [text]
    parts: list[str] = []
    # Leading/trailing whitespace would only produce blank or padded parts.
    rest = text.strip()
    while len(rest) > limit:
        # rest[0] is never whitespace, so a cut found here leaves a non-empty part.
        cut = next((i for i in range(limit, 0, -1) if rest[i].isspace()), None)
        if cut is None:
            parts.append(rest[:limit])
            rest = rest[limit:]
            continue
        part_end = cut
        while rest[part_end - 1].isspace():
            part_end -= 1
        rest_start = cut + 1
        while rest[rest_start].isspace():
            rest_start += 1
        parts.append(rest[:part_end])
        rest = rest[rest_start:]
    parts.append(rest)
    return parts


def sms_cost(text: str, limit: int = 160) -> int:
    """What the text costs once split into parts of at most `limit` characters, in SMS."""
    return sum(segments(part) for part in split_text(text, limit))


# --- what may go out ---------------------------------------------------------------

# C0 and C1 controls (line breaks and tabs are normalised first, see below), lone surrogates
# and Unicode noncharacters. GSM-7 has CR and, in its escape table, a form feed, but a
# gateway that echoes the text back in XML (Massiva) answers something unreadable with any
# of them, and a phone shows them as nothing or as boxes.
_NONCHARACTERS = "".join(
    chr(cp)
    for cp in [
        *range(0xFDD0, 0xFDF0),
        *(p * 0x10000 + x for p in range(17) for x in (0xFFFE, 0xFFFF)),
    ]
)
_SURROGATES = "\ud800-\udfff"
_FORBIDDEN = re.compile(
    f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f{_SURROGATES}{re.escape(_NONCHARACTERS)}]"
)
# Every line break becomes \n (CR LF from browsers, CR, NEL, the Unicode separators); a tab
# is a space.
_LINE_BREAKS = str.maketrans({"\r": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n", "\t": " "})


class UnsendableText(ValueError):
    """A person's text that cannot go out as it is: `kind` is "control" (an invisible control
    character: `char` and its 1-based `position` say which) or "empty" (nothing visible)."""

    def __init__(self, kind: str, char: str = "", position: int = 0) -> None:
        self.kind = kind
        self.char = char
        self.position = position
        super().__init__(self.describe())

    @property
    def code_point(self) -> str:
        return f"U+{ord(self.char):04X}" if self.char else ""

    def describe(self) -> str:
        if self.kind == "empty":
            return "the text has nothing visible to send"
        return (
            f"the text contains an invisible control character ({self.code_point}) at "
            f"position {self.position}; remove it and send again"
        )


def _visible(text: str) -> bool:
    return any(not c.isspace() and unicodedata.category(c) != "Cf" for c in text)


def sendable(text: str, *, strict: bool) -> str:
    """The text as it may go out: line breaks as \n, no control characters, lone surrogates
    or noncharacters. `strict` (text a person typed) raises UnsendableText for any of those,
    or for a text with nothing visible (only spaces or zero-width characters); otherwise
    (template output) they are removed (a lone surrogate becomes "?") and an invisible-only
    text becomes ""."""
    found = _FORBIDDEN.search(text)
    if found is not None:
        if strict:
            raise UnsendableText("control", found.group(), found.start() + 1)
        text = _FORBIDDEN.sub(lambda m: "?" if "\ud800" <= m.group() <= "\udfff" else "", text)
    text = text.replace("\r\n", "\n").translate(_LINE_BREAKS)
    if not _visible(text):
        if strict:
            raise UnsendableText("empty")
        return ""
    return text


# Where a cut may step back to the previous space: a longer word is cut inside.
_LONGEST_WORD = 40


def _cut(text: str, length: int) -> str:
    """The first `length` characters, ended at a word boundary, with an ellipsis."""
    head = text[:length]
    if length < len(text) and not text[length].isspace():
        space = max(head.rfind(" "), head.rfind("\n"))
        if space >= 0 and length - space <= _LONGEST_WORD:
            head = head[:space]
    head = head.rstrip()
    # "…" is not GSM-7: after a GSM-7 text it would make every part cost UCS-2 rates.
    return head + ("..." if is_gsm7(head) else "\u2026")


def shorten(text: str, max_sms: int, limit: int = 160) -> str:
    """The text unchanged when its parts cost at most `max_sms` SMS; otherwise its longest
    beginning, cut at a word boundary and ended with an ellipsis, that does (measured on the
    text as given: encode before shortening)."""
    if max_sms < 1:
        raise ValueError(f"max_sms must be at least 1, got {max_sms}")
    window = max_sms * limit
    # More than `window` visible characters can never fit: no need to split megabytes to
    # find that out. Whitespace does not count: it may fall where parts are cut.
    if len("".join(text.split())) <= window and sms_cost(text, limit) <= max_sms:
        return text
    low, high, best = 0, min(len(text), window), _cut(text, 0)
    while low <= high:
        middle = (low + high) // 2
        candidate = _cut(text, middle)
        if sms_cost(candidate, limit) <= max_sms:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best
