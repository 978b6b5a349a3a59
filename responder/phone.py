"""Phone number normalization to the international digits (no ``+``) the gateways expect."""

from __future__ import annotations

import re

import phonenumbers

from responder.caches import short_lru

__all__ = ["InvalidPhoneNumber", "inbound_phone", "normalize_phone", "validate_region"]

# Separators people type between digit groups; whitespace is handled separately.
_SEPARATORS = frozenset("-.()/")
_ASCII_DIGITS = frozenset("0123456789")
# E.164 allows at most 15 digits; "00" or a national trunk prefix can add two more.
_MAX_TYPED_DIGITS = 17
_MAX_E164_DIGITS = 15
# The shortest sender a gateway reports: short codes have 3 digits or more.
_MIN_SENDER_DIGITS = 3
# National significant numbers are at most 10 digits in Latin America; 11+ carry a country code.
_MIN_STORED_DIGITS = 11


class InvalidPhoneNumber(ValueError):
    """Raised when a string is not a valid phone number for a region."""

    def __init__(self, raw: str, region: str) -> None:
        # Keep both values in args so the exception pickles and unpickles intact.
        super().__init__(raw, region)
        self.raw = raw
        self.region = region

    def __str__(self) -> str:
        return f"{self.raw!r} is not a valid phone number for region {self.region}"


def validate_region(region: str) -> str:
    """Return the region code uppercased, or raise ValueError if phonenumbers does not know it."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"unknown phone region {region!r}: expected an ISO 3166 alpha-2 code such as 'VE'"
        )
    return code


def _typed_digits(raw: str) -> str | None:
    """The digits of a number as typed: one leading `+`, then only digits, whitespace and
    common separators; None when anything else is there (letters: vanity numbers, "ext")."""
    text = raw.strip().removeprefix("+")
    if not all(char in _ASCII_DIGITS or char in _SEPARATORS or char.isspace() for char in text):
        return None
    return "".join(char for char in text if char in _ASCII_DIGITS)


def _international_digits(number: phonenumbers.PhoneNumber) -> str | None:
    if not phonenumbers.is_valid_number(number):
        return None
    # E.164 is "+" followed by the digits; the gateways want them without the "+".
    e164: str = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164.removeprefix("+")


def _international(digits: str) -> str | None:
    """The international digits of `digits` read after a `+` (as `_parse_digits("+" +
    digits, None)` reads them), or None when not a valid number.

    Most numbers a gateway reports are already in this form: their country code and national
    number are read off the digits and checked by `_international_digits`, without
    `phonenumbers.parse` (its regular expressions cost about three times as much, and every
    new sender pays them). Whatever parse would read differently goes to parse: a national
    number starting with 0 (kept as a leading zero), one starting with what the country's
    national prefix may be (parse may strip it), and calling codes of no country.
    """
    if digits[:1] in ("", "0"):  # no country code starts with 0
        return _parse_digits("+" + digits, None)
    for size in (1, 2, 3):
        code, national = int(digits[:size]), digits[size:]
        if code in _CALLING_CODES:
            break
    else:
        return _parse_digits("+" + digits, None)
    if len(national) < 2 or national[0] == "0" or code not in _NATIONAL_PREFIX:
        return _parse_digits("+" + digits, None)
    prefix = _NATIONAL_PREFIX[code]
    if prefix is not None and prefix.match(national):
        return _parse_digits("+" + digits, None)
    return _international_digits(
        phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    )


def _national_prefixes() -> dict[int, re.Pattern[str] | None]:
    """Per country calling code, the pattern parse strips as a national prefix (None: none).
    A code of no one country (`001`, international services) is left out."""
    found: dict[int, re.Pattern[str] | None] = {}
    for code in _CALLING_CODES:
        region = phonenumbers.region_code_for_country_code(code)
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is not None:  # None for 001 (international services)
            pattern = metadata.national_prefix_for_parsing
            found[code] = re.compile(pattern) if pattern else None
    return found


_CALLING_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_NATIONAL_PREFIX = _national_prefixes()


def _parse_digits(digits: str, region: str | None) -> str | None:
    """Return the international digits if ``digits`` parse as a valid number, else None."""
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    return _international_digits(number)


@short_lru(maxsize=65536, max_chars=32)  # a phone field may be 64 KiB long: not kept
def normalize_phone(raw: str, region: str) -> str:
    """Return the number as international digits without "+", e.g. ``"584121234567"``.

    Raises InvalidPhoneNumber unless it is a valid number, national to ``region`` or international.
    """
    region = validate_region(region)
    has_plus = raw.strip().startswith("+")
    digits = _typed_digits(raw)
    if not digits or len(digits) > _MAX_TYPED_DIGITS:
        raise InvalidPhoneNumber(raw, region)

    if has_plus:
        international = _international(digits)
    elif digits.startswith("00"):
        international = _international(digits[2:])
    elif len(digits) >= _MIN_STORED_DIGITS and not digits.startswith("0"):
        # Long digits without a trunk 0 are most likely the stored international form
        # (`584121234567`, or a `+` lost to form-decoding): read them as such first.
        international = _international(digits) or _parse_digits(digits, region)
    else:
        # A national number wins; only then try digits that start with a country code.
        international = _parse_digits(digits, region) or _international(digits)
    if international is None:
        raise InvalidPhoneNumber(raw, region)
    return international


def inbound_phone(raw: str, region: str) -> str:
    """Return the sender reported by a gateway, normalized if valid, else its bare digits.

    Short codes (`2020`) and numbers the phone library does not know yet are still the
    sender. Raises InvalidPhoneNumber when the field holds anything but a number as typed
    (letters: `584armed` is not the number 584), or fewer than 3 or more than 15 digits.
    """
    try:
        return normalize_phone(raw, region)
    except InvalidPhoneNumber:
        digits = _typed_digits(raw)
        if digits is None or not _MIN_SENDER_DIGITS <= len(digits) <= _MAX_E164_DIGITS:
            raise
        return digits
