from __future__ import annotations

import pickle
import random

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from responder.phone import InvalidPhoneNumber, inbound_phone, normalize_phone, validate_region


@pytest.mark.parametrize(
    "raw",
    [
        "04121234567",
        "4121234567",
        "+58 412-123.45.67",
        "+584121234567",
        "58 412 1234567",
        "584121234567",
        "(0412) 123-4567",
        "0412/123 45 67",
        "00584121234567",
        "0058 412 1234567",
        " 584121234567",  # "+" turned into a space by form-decoding
        "\u00a0+58 412 1234567\n",
        "+58 (0412) 1234567",
    ],
)
def test_normalize_phone_venezuelan_formats(raw: str) -> None:
    assert normalize_phone(raw, "VE") == "584121234567"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("04141234567", "VE", "584141234567"),
        ("04161234567", "VE", "584161234567"),
        ("04221234567", "VE", "584221234567"),
        ("04241234567", "VE", "584241234567"),
        ("04261234567", "VE", "584261234567"),
        ("0212 123 4567", "VE", "582121234567"),  # Caracas landline
        ("04121234567", "ve", "584121234567"),
        ("573001234567", "VE", "573001234567"),  # Colombian number without its "+"
        ("+57 300 123 4567", "VE", "573001234567"),
        ("+1 (800) 356-9377", "VE", "18003569377"),
        ("300 123 4567", "CO", "573001234567"),
        ("55 1234 5678", "MX", "525512345678"),
        ("011 15 2345-6789", "AR", "5491123456789"),  # AR mobile "15" becomes "9"
        ("+54 9 11 2345 6789", "AR", "5491123456789"),
        ("987 654 321", "PE", "51987654321"),
    ],
)
def test_normalize_phone(raw: str, region: str, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "+",
        "12345",
        "abc",
        "0412-ABC-4567",
        "+58 412 1234567 ext 5",
        "0412#1234567",
        "+58 +4121234567",
        "041212345678",  # one digit too many
        "0412123456",  # one digit short
        "9" * 30,
        "+999 412 1234567",  # no such country code
        "00 999 1234567",
    ],
)
def test_normalize_phone_rejects(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw, "VE")


def test_invalid_phone_number_message_and_attributes() -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        normalize_phone("12345", "ve")
    error = caught.value
    assert isinstance(error, ValueError)
    assert str(error) == "'12345' is not a valid phone number for region VE"
    assert (error.raw, error.region) == ("12345", "VE")


def test_invalid_phone_number_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(InvalidPhoneNumber("12345", "VE")))
    assert str(error) == "'12345' is not a valid phone number for region VE"


def test_normalize_phone_unknown_region_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError, match="'XX'") as caught:
        normalize_phone("04121234567", "XX")
    assert not isinstance(caught.value, InvalidPhoneNumber)


def test_normalize_phone_answers_each_text_and_region_on_its_own() -> None:
    # Answers are cached: the same digits in another region, asked before or after, keep
    # their own answer, and a number invalid in a region still raises there.
    answers = {
        ("3001234567", "CO"): "573001234567",
        ("3001234567", "MX"): "523001234567",
        ("2123456789", "VE"): "582123456789",
        ("2123456789", "US"): "12123456789",
        ("2123456789", "us"): "12123456789",
    }
    for (raw, region), expected in [*answers.items(), *reversed(answers.items())]:
        assert normalize_phone(raw, region) == expected
        with pytest.raises(InvalidPhoneNumber):
            normalize_phone(raw, "PE")


# International digits, their region and how people there write them nationally.
NUMBERS = [
    ("584121234567", "VE", "04121234567"),
    ("582121234567", "VE", "02121234567"),
    ("573001234567", "CO", "3001234567"),
    ("525512345678", "MX", "5512345678"),
    ("51987654321", "PE", "987654321"),
]


@st.composite
def written_numbers(draw: st.DrawFn) -> tuple[str, str, str]:
    """A valid number as someone might type it: (typed text, region, international digits)."""
    digits, region, national = draw(st.sampled_from(NUMBERS))
    typed = draw(st.sampled_from([national, "+" + digits, "00" + digits, digits]))
    gaps = st.sampled_from(["", "", " ", "-", ".", "(", ")", "/"])
    between = draw(st.lists(gaps, min_size=len(typed) - 1, max_size=len(typed) - 1))
    raw = typed[0] + "".join(gap + char for gap, char in zip(between, typed[1:], strict=True))
    edges = st.sampled_from(["", " ", "\n", "\u00a0"])
    region = draw(st.sampled_from([region, region.lower()]))
    return draw(edges) + raw + draw(edges), region, digits


@given(written_numbers())
def test_normalize_phone_ignores_how_a_valid_number_is_written(
    case: tuple[str, str, str],
) -> None:
    raw, region, digits = case
    assert normalize_phone(raw, region) == digits


@given(st.text(st.sampled_from("0123456789+-() .x"), max_size=25))
def test_normalize_phone_fails_only_with_invalid_phone_number(raw: str) -> None:
    # Random text is almost never a valid number: what this proves is that nothing else is
    # raised; valid numbers are the previous test's.
    try:
        result = normalize_phone(raw, "VE")
    except InvalidPhoneNumber:
        return
    assert phonenumbers.is_valid_number(phonenumbers.parse("+" + result))


# --- inbound_phone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+584121234567", "584121234567"),
        (" 584121234567", "584121234567"),
        ("04121234567", "584121234567"),
        ("12345", "12345"),  # short code
        ("+58 12", "5812"),
        ("2000", "2000"),
        ("1" * 15, "1" * 15),
    ],
)
def test_inbound_phone(raw: str, expected: str) -> None:
    assert inbound_phone(raw, "VE") == expected


@pytest.mark.parametrize(
    "raw",
    ["", "  ", "+", "MOVISTAR", "1" * 16, "584armed", "58412abc4567", "12", "58+412", "2020#"],
)
def test_inbound_phone_rejects(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match="not a valid phone number for region VE"):
        inbound_phone(raw, "VE")


# --- validate_region --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [("VE", "VE"), ("ve", "VE"), (" co ", "CO"), ("mx", "MX")]
)
def test_validate_region(raw: str, expected: str) -> None:
    assert validate_region(raw) == expected


@pytest.mark.parametrize("raw", ["", "XX", "VEN", "58", "001"])
def test_validate_region_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="unknown phone region"):
        validate_region(raw)


def _examples() -> list[str]:
    """Every region's example numbers of every type in international digits, and variants
    of each: a digit more or less, a national prefix after the country code, a 0, other
    last digits; random digit strings of every length; and the shortest strings."""
    rng = random.Random(7)
    found: set[str] = set()
    types = [getattr(phonenumbers.PhoneNumberType, n) for n in dir(phonenumbers.PhoneNumberType)]
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        prefix = (metadata.national_prefix if metadata else None) or ""
        for kind in (t for t in types if isinstance(t, int)):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            digits = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
            code = str(example.country_code)
            national = digits[len(code) :]
            found.update(
                {
                    digits,
                    digits + "1",
                    digits[:-1],
                    code + prefix + national,
                    code + "0" + national,
                    code + "1" + national,
                    code + "9" + national,
                    digits[:-3] + f"{rng.randrange(1000):03d}",
                }
            )
    for _ in range(20_000):
        size = rng.randrange(3, 18)
        found.add(str(rng.randrange(1, 10)) + "".join(rng.choices("0123456789", k=size - 1)))
    found.update({"", "0", "1", "58", "584", "5841", "800", "0584121234567"})
    return sorted(found)


def test_the_international_digits_are_read_as_phonenumbers_parse_reads_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_international` reads most international numbers without phonenumbers.parse: for
    every example number of every region, variants of them and random digits, it gives what
    parse gives (the number, or None)."""
    from responder import phone

    examples = _examples()
    parse = phone._parse_digits
    parsed: list[str] = []

    def counted(digits: str, region: str | None) -> str | None:
        parsed.append(digits)
        return parse(digits, region)

    monkeypatch.setattr(phone, "_parse_digits", counted)
    differ = [d for d in examples if phone._international(d) != parse("+" + d, None)]
    assert differ == []
    assert len(examples) > 25_000
    # The shortcut is taken for most of them (parse for the rest): it can be wrong, or unused.
    assert len(parsed) < len(examples) / 2
    parsed.clear()
    venezuelan = [f"58{n}1234567" for n in (412, 414, 416, 424, 426)]
    assert [phone._international(d) for d in venezuelan] == venezuelan
    assert parsed == []
