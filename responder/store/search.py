"""What the inbox search compares: a message's text folded as the keyword matcher folds it
(accents, case and punctuation; `responder.text.normalize`), kept in `messages.folded`."""

from __future__ import annotations

from responder.text import normalize


def like_pattern(text: str) -> str:
    """`text` anywhere, for LIKE with backslash as the escape character."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def folded_pattern(text: str) -> str | None:
    """The LIKE pattern for `messages.folded`; None when nothing is left to look for (a search
    for "¿?" folds to nothing)."""
    folded = normalize(text)
    return like_pattern(folded) if folded else None
