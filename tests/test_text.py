from __future__ import annotations

import sys
import time
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responder import text as text_module
from responder.text import (
    _NORMALIZE_TABLE,
    GSM7_BASIC,
    GSM7_EXTENDED,
    UnsendableText,
    find_folded,
    is_gsm7,
    normalize,
    segments,
    sendable,
    shorten,
    smart_encode,
    sms_cost,
    split_text,
)

# Any str, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters(exclude_categories=()))

# --- normalize ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("¿A QUÉ HORA abren?", "a que hora abren"),
        ("¿Cuánto cuesta?", "cuanto cuesta"),
        ("Mañana", "manana"),
        ("ÁÉÍÓÚ", "aeiou"),
        ("Ñandú", "nandu"),
        ("Pingüino", "pinguino"),
        ("Canción", "cancion"),
        ("¡¡HOLA!!", "hola"),
        ("hola,mundo;  adiós:", "hola mundo adios"),
        ("precio: 10.50", "precio 10 50"),
        ("  info \n\t precios  ", "info precios"),
        ("hola-mundo", "hola-mundo"),
        ("Straße", "strasse"),
        ("ＡＹＵＤＡ", "ayuda"),
        ("ﬁn", "fin"),
        ("Nº 5", "no 5"),
        ("Ca\u0301ncion", "cancion"),
        ("İstanbul", "istanbul"),
        ("hola 😀", "hola 😀"),
        ("❤️ gracias", "❤️ gracias"),
        ("👍🏽 ok", "👍🏽 ok"),
        ("$100 #promo @tienda", "$100 #promo @tienda"),
        ("¿?¡!.,;:", ""),
        ("", ""),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@given(any_text)
def test_normalize_is_idempotent(raw: str) -> None:
    once = normalize(raw)
    assert normalize(once) == once


@pytest.mark.parametrize(
    ("text", "query", "found"),
    [
        ("Un CAFÉ con leche", "cafe", "CAFÉ"),
        ("Un CAFÉ con leche", "Café CON", "CAFÉ con"),
        ("¿Cuánto cuesta?  Gracias", "cuesta gracias", "cuesta?  Gracias"),
        ("Ca\u0301ncion nueva", "cancion", "Ca\u0301ncion"),
        ("Straße 5", "strasse", "Straße"),
        ("hola", "adiós", None),
        ("hola", "¿?", None),
    ],
)
def test_find_folded_spans_the_original_characters(
    text: str, query: str, found: str | None
) -> None:
    span = find_folded(text, query)
    assert (text[span[0] : span[1]] if span else None) == found


@given(any_text, any_text)
def test_find_folded_agrees_with_normalize(text: str, query: str) -> None:
    span = find_folded(text, query)
    wanted = normalize(query)
    assert (span is not None) == (bool(wanted) and wanted in normalize(text))
    if span is not None:
        assert wanted in normalize(text[span[0] : span[1]])


@given(any_text)
def test_normalize_output_is_collapsed_and_punctuation_free(raw: str) -> None:
    result = normalize(raw)
    assert result == " ".join(result.split())
    assert not set(result) & set("¿¡?!.,;:")


def test_normalize_is_idempotent_on_every_code_point() -> None:
    for code_point in range(sys.maxunicode + 1):
        once = normalize(chr(code_point))
        assert normalize(once) == once, hex(code_point)


def test_every_combining_mark_is_dropped_and_nothing_else() -> None:
    # normalize's table looks a code point up the first time it meets it (not all at import).
    every = "".join(chr(cp) for cp in range(sys.maxunicode + 1))
    kept = every.translate(_NORMALIZE_TABLE)
    marks = {c for c in every if unicodedata.combining(c)}
    assert len(marks) > 900 and not marks & set(kept)
    assert kept == "".join(
        " " if c in "¿¡?!.,;:" else c for c in every if not unicodedata.combining(c)
    )


# --- GSM-7 alphabet -------------------------------------------------------------------


def test_gsm7_tables() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes minus the escape to the extension table
    assert set("^{}\\[~]|€\f") == GSM7_EXTENDED
    assert not GSM7_BASIC & GSM7_EXTENDED
    assert "\x1b" not in GSM7_BASIC
    assert set("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r") <= GSM7_BASIC


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", True),
        ("Hola, ¿qué tal? Mañana a las 5pm.", True),
        ("Pingüino ÑANDÚ", False),  # Ú is not GSM-7
        ("Precio: 5€ {promo} [x] ~ | ^ \\", True),
        ("¿Cuánto cuesta?", False),
        ("ç", False),
        ("Ç", True),
        ("`", False),
        ("tab\there", False),
        ("hola 😀", False),
        ("\x1b", False),
    ],
)
def test_is_gsm7(raw: str, expected: bool) -> None:
    assert is_gsm7(raw) is expected


# --- smart_encode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("¿Cuánto cuesta?", "¿Cuanto cuesta?"),
        ("Mañana", "Mañana"),
        ("ÁÉÍÓÚ", "AÉIOU"),
        ("áéíóú", "aéiou"),
        ("âãêõçÂÃÊÕ", "aaeocAAEO"),
        ("ÑñÜüÇàèùìò¿¡", "ÑñÜüÇàèùìò¿¡"),
        ("ÀÈÌÒÙ", "AEIOU"),
        ("“Hola” „así‟", '"Hola" "asi"'),
        ("‘sí’ ‚no‛ `x´", "'si' 'no' 'x'"),
        ("«oferta»", '"oferta"'),
        ("10–20 — ok −5", "10-20 - ok -5"),
        ("Espera…", "Espera..."),
        ("• uno\n• dos", "- uno\n- dos"),
        ("a\u00a0b\u202fc\u2009d\u3000e", "a b c d e"),
        ("a\tb", "a b"),
        ("línea\u2028otra", "linea\notra"),
        ("soft\u00adhyphen\u200b", "softhyphen"),
        ("Cafe\u0301", "Café"),  # decomposed input is composed first, and é is GSM-7
        ("ＨＯＬＡ！", "HOLA!"),
        ("𝐇𝐨𝐥𝐚", "Hola"),
        ("½ ² ª º", "1/2 2 a o"),
        ("5€ {x}", "5€ {x}"),
        ("Día 😀", "Dia 😀"),
        ("中文", "中文"),
        ("25°C", "25°C"),
        ("", ""),
    ],
)
def test_smart_encode(raw: str, expected: str) -> None:
    assert smart_encode(raw) == expected


def test_smart_encode_table_only_produces_gsm7() -> None:
    for replacement in text_module._SMART_ENCODE_TABLE.values():
        assert replacement is None or is_gsm7(replacement)


# Latin-1 characters smart_encode deliberately leaves alone: no GSM-7 look-alike exists.
LATIN1_WITHOUT_EQUIVALENT = frozenset("¢¨©¬®¯°±µ¶¸Þþ") | frozenset(
    chr(cp) for cp in [*range(0x20), *range(0x7F, 0xA0)] if chr(cp) not in "\n\r\f\t\x85"
)


@pytest.mark.parametrize("char", sorted(LATIN1_WITHOUT_EQUIVALENT))
def test_smart_encode_keeps_characters_without_equivalent(char: str) -> None:
    assert not is_gsm7(char)
    assert smart_encode(char) == char


@given(st.text(st.characters(max_codepoint=0xFF)))
def test_smart_encode_latin1_is_gsm7_except_characters_without_equivalent(raw: str) -> None:
    encoded = smart_encode(raw)
    assert all(is_gsm7(char) or char in LATIN1_WITHOUT_EQUIVALENT for char in encoded)


@given(any_text)
def test_smart_encode_never_invents_non_gsm7_characters(raw: str) -> None:
    # Anything outside GSM-7 in the output was already in the input: content is never lost.
    encoded = smart_encode(raw)
    source = set(unicodedata.normalize("NFC", raw))
    assert all(is_gsm7(char) or char in source for char in encoded)


@given(any_text)
def test_smart_encode_is_idempotent(raw: str) -> None:
    once = smart_encode(raw)
    assert smart_encode(once) == once


# --- segments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", 1),
        ("Mañana", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost 2 septets: 160
        ("€" * 81, 2),
        ("a" * 159 + "{", 2),
        ("á" * 70, 1),
        ("á" * 71, 2),
        ("á" * 134, 2),
        ("á" * 135, 3),
        ("😀" * 35, 1),  # emoji are 2 UTF-16 units: 70
        ("😀" * 36, 2),
        ("¿Cuánto cuesta?", 1),
    ],
)
def test_segments(raw: str, expected: int) -> None:
    assert segments(raw) == expected


# --- split_text -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "limit", "expected"),
    [
        ("", 160, [""]),
        ("hola", 160, ["hola"]),
        ("hola mundo", 10, ["hola mundo"]),
        ("  hola  ", 10, ["  hola  "]),
        ("  hola mundo  ", 10, ["hola mundo"]),
        ("uno dos tres", 7, ["uno dos", "tres"]),
        ("uno dos tres", 4, ["uno", "dos", "tres"]),
        ("ab   cd\n\nef", 5, ["ab", "cd", "ef"]),
        ("uno\ndos tres", 7, ["uno\ndos", "tres"]),
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("supercalifragilistico es largo", 10, ["supercalif", "ragilistic", "o es largo"]),
        ("¿Cuánto cuesta? Mañana", 15, ["¿Cuánto cuesta?", "Mañana"]),
    ],
)
def test_split_text(raw: str, limit: int, expected: list[str]) -> None:
    assert split_text(raw, limit) == expected


def test_split_text_default_limit_is_one_sms() -> None:
    message = "Gracias por escribirnos. Nuestro horario es de lunes a viernes. " * 6
    parts = split_text(message)
    assert len(parts) == 3
    assert all(len(part) <= 160 for part in parts)
    assert " ".join(parts).split() == message.split()


def test_split_text_rejects_non_positive_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_text("hola", 0)


@given(st.text(st.sampled_from("abñ😀 \n\t\u00a0")), st.integers(min_value=1, max_value=12))
def test_split_text_parts_fit_and_carry_the_whole_text(raw: str, limit: int) -> None:
    parts = split_text(raw, limit)
    assert all(len(part) <= limit for part in parts)
    if len(raw) <= limit:
        assert parts == [raw]
        return
    source = raw.strip()
    if not source:
        assert parts == [""]
        return
    # The parts are consecutive slices of the stripped text, separated only by whitespace.
    position = 0
    for part in parts:
        assert part
        assert not part[0].isspace()
        assert not part[-1].isspace()
        assert source.startswith(part, position)
        position += len(part)
        while position < len(source) and source[position].isspace():
            position += 1
    assert position == len(source)
    if all(len(word) <= limit for word in raw.split()):
        # No hard splits: joining with spaces gives the text with cut whitespace collapsed.
        assert " ".join(parts).split() == raw.split()


# --- what may go out -------------------------------------------------------------------------

# (typed text, what a person is told (kind, code point, position) or None, template output)
SENDABLE_CASES = [
    ("plain", "Hola, ¿qué tal?", None, "Hola, ¿qué tal?"),
    ("newline-stays", "uno\ndos", None, "uno\ndos"),
    ("crlf-to-newline", "uno\r\ndos\rtres", None, "uno\ndos\ntres"),
    ("unicode-breaks-to-newline", "a\x85b\u2028c\u2029d", None, "a\nb\nc\nd"),
    ("tab-to-space", "a\tb", None, "a b"),
    ("form-feed", "hola\x0cmundo", ("control", "U+000C", 5), "holamundo"),
    ("nul", "\x00hola", ("control", "U+0000", 1), "hola"),
    ("escape", "5 \x1be", ("control", "U+001B", 3), "5 e"),
    ("delete", "ab\x7f", ("control", "U+007F", 3), "ab"),
    ("c1-control", "a\x9bb", ("control", "U+009B", 2), "ab"),
    ("lone-surrogate", "hola \ud800", ("control", "U+D800", 6), "hola ?"),
    ("noncharacter", "a\ufffeb\U0010ffff", ("control", "U+FFFE", 2), "ab"),
    ("zero-width-only", "\u200b\u200d \u2060", ("empty", "", 0), ""),
    ("blank-lines-only", "\n \r\n", ("empty", "", 0), ""),
    ("control-only", "\x00\x0c", ("control", "U+0000", 1), ""),
    ("zero-width-kept-inside-text", "👨\u200d👩 hola", None, "👨\u200d👩 hola"),
]


@pytest.mark.parametrize(
    ("raw", "refused", "cleaned"),
    [case[1:] for case in SENDABLE_CASES],
    ids=[case[0] for case in SENDABLE_CASES],
)
def test_sendable(raw: str, refused: tuple[str, str, int] | None, cleaned: str) -> None:
    assert sendable(raw, strict=False) == cleaned
    if refused is None:
        assert sendable(raw, strict=True) == cleaned
        return
    with pytest.raises(UnsendableText) as caught:
        sendable(raw, strict=True)
    err = caught.value
    assert (err.kind, err.code_point, err.position) == refused


def forbidden(char: str) -> bool:
    """What a gateway must never get: controls but the newline, surrogates, noncharacters."""
    cp = ord(char)
    control = unicodedata.category(char) == "Cc" and char != "\n"
    return control or 0xD800 <= cp <= 0xDFFF or 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE


@given(any_text)
def test_nothing_forbidden_survives_cleaning(raw: str) -> None:
    cleaned = sendable(raw, strict=False)
    assert not any(forbidden(c) for c in cleaned)
    try:
        typed = sendable(raw, strict=True)
    except UnsendableText:
        return
    assert typed == cleaned  # a text a person may send is sent as the cleaning would


def test_every_forbidden_code_point_is_caught() -> None:
    for cp in range(sys.maxunicode + 1):
        char = chr(cp)
        if forbidden(char) and char not in "\r\t\x85":  # line breaks and tabs are normalised
            with pytest.raises(UnsendableText):
                sendable(f"a{char}b", strict=True)


# --- cutting to a number of SMS -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "max_sms", "expected"),
    [
        ("corto", 1, "corto"),
        ("a" * 160, 1, "a" * 160),
        ("palabra " * 25, 1, ("palabra " * 19).strip() + "..."),  # 152 + 3 characters
        ("x" * 500, 1, "x" * 157 + "..."),  # one long word is cut inside
        ("ñandú " * 20, 1, ("ñandú " * 11).strip() + "\u2026"),  # UCS-2: 70 per SMS
        ("Hola 😀 " * 20, 1, "Hola 😀 " * 8 + "Hola\u2026"),  # an emoji is 2 UTF-16 units
    ],
    ids=["fits", "exactly-one", "words-gsm7", "one-word", "ucs2-ellipsis", "emoji"],
)
def test_shorten(raw: str, max_sms: int, expected: str) -> None:
    assert shorten(raw, max_sms) == expected


@given(
    st.text(st.sampled_from("ab ñ😀€\n"), max_size=2000),
    st.integers(min_value=1, max_value=5),
)
def test_shortened_text_never_costs_more_than_asked(raw: str, max_sms: int) -> None:
    result = shorten(raw, max_sms)
    assert sms_cost(result) <= max_sms
    if sms_cost(raw) <= max_sms:
        assert result == raw
    else:
        assert result.endswith(("...", "\u2026"))


def test_a_gsm7_text_is_never_made_ucs2_by_its_ellipsis() -> None:
    cut = shorten("palabra " * 100, 3)
    assert is_gsm7(cut) and cut.endswith("...") and sms_cost(cut) == 3


def test_shortening_megabytes_is_quick() -> None:
    started = time.perf_counter()
    assert sms_cost(shorten("x" * 5_000_000, 3)) == 3
    assert sms_cost(shorten("palabra " * 500_000, 3)) == 3
    assert time.perf_counter() - started < 1.0
