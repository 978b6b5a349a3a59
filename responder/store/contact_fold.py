"""How the contacts search (DESIGN §12) folds fields for comparison, the same on both engines:
the accents of Latin letters taken off, then lowercase. SQLite runs `fold_contact` (registered
on the reading connection); PostgreSQL runs the same mapping as `translate(...)` and `lower`."""

from __future__ import annotations

from responder.store.search import like_pattern

ACCENTED = "áàâäãåéèêëíìîïóòôöõúùûüñçýÿÁÀÂÄÃÅÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÑÇÝ"
PLAIN = "aaaaaaeeeeiiiiooooouuuuncyyaaaaaaeeeeiiiiooooouuuuncy"
_TABLE = str.maketrans(ACCENTED, PLAIN)


def fold_contact(text: str | None) -> str:
    return (text or "").translate(_TABLE).lower()


def contact_pattern(text: str) -> str:
    """The LIKE pattern (backslash escapes) for folded fields containing `text`."""
    return like_pattern(fold_contact(text.strip()))
