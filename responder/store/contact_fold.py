"""How the contacts search (DESIGN §12) compares fields, the same on both engines: accents of
Latin letters and case ignored. Each letter of the search becomes the set of its forms
(`jose` → `j[oOóò…]s[eEéè…]`), matched in the fields' JSON text by the engine itself: SQLite's
GLOB (`accent_glob`), PostgreSQL's case-insensitive regular expression (`accent_regex`). Both
are two to ten times faster than folding every row's text (a Python function in SQLite,
translate() in PostgreSQL)."""

from __future__ import annotations

ACCENTED = "áàâäãåéèêëíìîïóòôöõúùûüñçýÿÁÀÂÄÃÅÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÑÇÝ"
PLAIN = "aaaaaaeeeeiiiiooooouuuuncyyaaaaaaeeeeiiiiooooouuuuncy"
_TABLE = str.maketrans(ACCENTED, PLAIN)


def fold_contact(text: str | None) -> str:
    """Accents taken off, lowercase: what a search for `text` looks for."""
    return (text or "").translate(_TABLE).lower()


def _variants() -> dict[str, str]:
    found: dict[str, str] = {}
    for accented, plain in zip(ACCENTED, PLAIN):
        found[plain] = found.get(plain, plain + plain.upper()) + accented
    return found


_VARIANTS = _variants()


def accent_glob(text: str) -> str:
    """A SQLite GLOB pattern (case-sensitive, so both cases are listed) that finds `text`
    anywhere whatever its accents; `*`, `?`, `[` and `]` taken literally."""
    parts = ["*"]
    for char in fold_contact(text.strip()):
        if char in _VARIANTS:
            parts.append(f"[{_VARIANTS[char]}]")
        elif char.upper() != char:
            parts.append(f"[{char}{char.upper()}]")
        elif char in "*?[]":
            parts.append(f"[{char}]")
        else:
            parts.append(char)
    parts.append("*")
    return "".join(parts)


def accent_regex(text: str) -> str:
    """A PostgreSQL regular expression (for `~*`) that finds `text` whatever its accents:
    `jose` → `j[oOóò…]s[eEéè…]`; every other character taken literally."""
    parts = []
    for char in fold_contact(text.strip()):
        if char in _VARIANTS:
            parts.append(f"[{_VARIANTS[char]}]")
        elif char.isalnum():
            parts.append(char)
        else:
            parts.append("\\" + char)  # a backslash before a non-alphanumeric: itself
    return "".join(parts)
