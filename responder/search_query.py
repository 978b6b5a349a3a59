"""What a search typed in the inbox or the API may mean: words, a whole phone number in any
form (read with the shop's `country`, as every number is), or digits of one."""

from __future__ import annotations

import contextlib
import re

from responder.phone import InvalidPhoneNumber, normalize_phone
from responder.store.search import SearchQuery

_PHONE_CHARS = re.compile(r"^[\d\s+().-]+$")
MIN_FRAGMENT = 3  # fewer digits than this are not looked for in numbers
MAX_QUERY = 200  # characters of a query that are read (the admin's box takes 100)


def phone_fragments(query: str, country: str) -> list[str]:
    """The digits to look for in numbers when a search looks like (part of) a phone number:
    `0412-123` finds `584121234...`, a full local number finds its international form."""
    query = query.strip()
    if not _PHONE_CHARS.match(query):
        return []
    digits = re.sub(r"\D", "", query)
    if len(digits) < MIN_FRAGMENT:
        return []
    found = {digits, digits.lstrip("0") or digits}
    with contextlib.suppress(InvalidPhoneNumber):
        found.add(normalize_phone(query, country))
    return sorted(found)


def search_query(text: str, country: str) -> SearchQuery:
    """The query for `text`. A whole number (`+52 55 1234 5678`, `5512345678`,
    `(55) 1234-5678`) is looked up by the contacts' primary key, in its international form and
    as typed (short codes are stored as they came); only a part of one (`1234`) is looked for
    inside the numbers."""
    text = text.strip()[:MAX_QUERY]
    if not _PHONE_CHARS.match(text):
        return SearchQuery(text)
    digits = re.sub(r"\D", "", text)
    try:
        whole = normalize_phone(text, country)
    except InvalidPhoneNumber:
        return SearchQuery(text, fragments=tuple(phone_fragments(text, country)))
    return SearchQuery(text, phones=tuple(dict.fromkeys((whole, digits))))
